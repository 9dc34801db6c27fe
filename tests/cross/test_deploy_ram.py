"""The planner predicts the RAM of the exported model ELF (issue 5: .data + .bss of et_deploy
within 5 % of the plan). The runtime RAM it adds (``edgetrain.memory.runtime``: descriptor
struct sizes, the fixed C library / runtime / model.c statics) is measured here from what
arm-none-eabi-gcc and newlib-nano produce, for every Cortex-M family the catalogue uses."""

import json
import subprocess
from pathlib import Path

import pytest

from edgetrain.export.exporter import export_project
from edgetrain.export.toolchains import C_FLAGS, available, find_tool, run_tool, target
from edgetrain.ir import GraphBuilder
from edgetrain.memory import devices, runtime
from edgetrain.memory.plan import plan

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")

# a core of each architecture, on a device of the catalogue with that core
CORES = {"cortex-m0plus": "rp2040", "cortex-m4": "nrf52840", "cortex-m7": "imxrt1062"}
RAM_START = 0x20000000
PROBE = """#include "et_engine.h"
#include "et_float.h"
et_tensor probe_et_tensor; et_wlayer probe_et_wlayer; et_intop probe_et_intop;
et_range probe_et_range; et_observation probe_et_observation;
et_ftensor probe_et_ftensor; et_flayer probe_et_flayer;
"""


def symbols(path: Path) -> dict[str, tuple[int, int]]:
    """name -> (address, size) of the data/bss symbols of an object or ELF."""
    nm = find_tool("arm-none-eabi-nm", "")
    out = run_tool([nm, "-S", str(path)], f"reading symbols of {path.name}").stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdDC":
            table[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return table


def compile_object(core: str, source: Path, include: Path) -> Path:
    t = target(core)
    out = source.with_suffix(f".{core}.o")
    run_tool([find_tool(t.compiler, ""), *C_FLAGS, *t.cpu_flags, f"-I{include}", "-c",
              str(source), "-o", str(out)], f"compiling {source.name} for {core}")
    return out


def tiny_graph():
    b = GraphBuilder("tiny", (16,), seed=0)
    return b.build(b.add("linear", b.add("relu", b.add("linear", "input", out_features=8)),
                         out_features=4))


_DEPLOYED: dict = {}


def deployed(core: str, tmp_path_factory):
    """(project, plan, ELF, ELF RAM symbols, model.o symbol names) of the tiny model's
    et_deploy for ``core`` (built once per core)."""
    import numpy as np

    if core not in _DEPLOYED:
        g, device = tiny_graph(), CORES[core]
        project = tmp_path_factory.mktemp(core)
        calib = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
        export_project(g, device, project, policy="full", calibration=calib)
        run_tool(["make", "-s", f"build/{core}/et_deploy.elf"], f"building et_deploy for {core}",
                 cwd=project)
        elf = project / "build" / core / "et_deploy.elf"
        ram = {k: v for k, v in symbols(elf).items() if v[0] >= RAM_START}
        model = set(symbols(compile_object(core, project / "model.c", project)))
        _DEPLOYED[core] = (project, plan(g, device, "full", "int8"), elf, ram, model)
    return _DEPLOYED[core]


@pytest.mark.parametrize("core", CORES)
def test_descriptor_sizes_are_the_compilers(tmp_path, core):
    from edgetrain.export import sources

    sources.copy_runtime(tmp_path)
    (tmp_path / "probe.c").write_text(PROBE)
    sizes = {name.removeprefix("probe_"): size for name, (_, size) in
             symbols(compile_object(core, tmp_path / "probe.c", tmp_path)).items()}
    assert sizes == {**runtime.STRUCT_BYTES, "et_range": runtime.RANGE_BYTES,
                     "et_observation": runtime.OBSERVATION_BYTES}


@pytest.mark.parametrize("core", CORES)
def test_fixed_runtime_ram_is_what_the_toolchain_links(tmp_path_factory, core):
    """Outside model.c the deploy ELF holds exactly the C library's and the runtime's
    statics; model.c holds its buffers, its descriptors and its fixed statics, exactly."""
    project, p, _, ram, model = deployed(core, tmp_path_factory)
    fixed = runtime.fixed_ram(devices.get(CORES[core]).core.arch)
    outside = {k: size for k, (_, size) in ram.items() if k not in model}
    assert sum(outside.values()) == fixed.c_library + fixed.runtime, outside
    manifest = json.loads((project / "export.json").read_text())
    descriptors = p.runtime_ram_bytes - fixed.total
    inside = sum(size for k, (_, size) in ram.items() if k in model)
    assert inside == (manifest["arena_bytes"] + manifest["state_bytes"] + descriptors
                      + fixed.model)


@pytest.mark.parametrize("core", CORES)
def test_elf_ram_is_the_planned_ram(tmp_path_factory, core):
    """.data + .bss of et_deploy against the plan: the plan rounds each state buffer up to
    8 bytes, the linker pads each symbol to its own alignment only, so the plan is at most
    8 bytes per state buffer above, never below."""
    from edgetrain.export.toolchains import elf_size

    _, p, elf, _, _ = deployed(core, tmp_path_factory)
    ram = elf_size(elf).ram_bytes
    assert 0 <= p.peak_ram_bytes - ram <= 8 * len(p.state)
    assert abs(p.peak_ram_bytes - ram) <= 0.05 * p.peak_ram_bytes


@pytest.mark.parametrize("core", CORES)
def test_deploy_links_no_semihosting_stdio_or_heap(tmp_path_factory, core):
    _, _, elf, _, _ = deployed(core, tmp_path_factory)
    nm = find_tool("arm-none-eabi-nm", "")
    names = {line.split()[-1] for line in run_tool([nm, str(elf)], "symbols").stdout.splitlines()}
    assert not names & {"initialise_monitor_handles", "_malloc_r", "__sinit", "_write_r",
                        "exit"}


def test_plan_fits_exactly_when_the_deploy_program_links(tmp_path):
    """With the stack reservation the plan's verdict is the linker's: a device just large
    enough for the plan links; one a byte too small for the ELF's .data + .bss + stack does
    not, and the plan says so too (its peak is never below the ELF's RAM)."""
    import dataclasses

    import numpy as np

    from edgetrain.export.toolchains import elf_size

    g = tiny_graph()
    calib = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)
    stack, base = runtime.STACK_RESERVE_BYTES, devices.get("nrf52840")
    sram = plan(g, base, "full", "int8").peak_ram_bytes + stack
    for links in (True, False):
        device = dataclasses.replace(base, sram_bytes=sram)
        project = tmp_path / str(sram)
        export_project(g, device, project, policy="full", calibration=calib)
        make = subprocess.run(["make", "-s", "build/cortex-m4/et_deploy.elf"], cwd=project,
                              check=False, capture_output=True, text=True)
        assert (make.returncode == 0) == links, make.stderr[-300:]
        assert links or "overflowed" in make.stderr
        assert plan(g, device, "full", "int8").fits == links
        if links:  # next: a byte less than what the link needs
            elf = project / "build" / "cortex-m4" / "et_deploy.elf"
            sram = elf_size(elf).ram_bytes + stack - 1


# ---- the float exports (mixed, float32): model-only ELFs against their plans, one of each
# precision (a residual model with a frozen prefix; partial updates on the int8 forward)
FLOAT_CASES = {"float32": ("mbednet", "last-2"), "mixed": ("motion-cnn1d", "partial")}
_FLOAT: dict = {}


def deployed_float(precision: str, tmp_path_factory):
    """(project, plan, ELF RAM symbols, model.o symbol names, ELF) of a float et_deploy."""
    import numpy as np

    from edgetrain import zoo

    if precision not in _FLOAT:
        model, policy = FLOAT_CASES[precision]
        g, core = zoo.build(model), "cortex-m4"
        project = tmp_path_factory.mktemp(precision)
        calib = np.random.default_rng(0).standard_normal((32, *g.input_shape)).astype(np.float32)
        export_project(g, CORES[core], project, policy=policy, calibration=calib,
                       precision=precision)
        run_tool(["make", "-s", f"build/{core}/et_deploy.elf"], f"building et_deploy ({precision})",
                 cwd=project)
        elf = project / "build" / core / "et_deploy.elf"
        ram = {k: v for k, v in symbols(elf).items() if v[0] >= RAM_START}
        model_syms = set(symbols(compile_object(core, project / "model.c", project)))
        _FLOAT[precision] = (project, plan(g, CORES[core], policy, precision), ram, model_syms,
                             elf)
    return _FLOAT[precision]


@pytest.mark.parametrize("precision", FLOAT_CASES)
def test_float_program_ram_is_the_planned_ram(tmp_path_factory, precision):
    """As at int8: outside model.c only the fixed C library and runtime statics; inside, the
    emitted arena and state, the planned descriptors and model.c's fixed statics, exactly;
    the ELF's .data + .bss at most 8 bytes per state buffer below the plan, never above."""
    from edgetrain.export.toolchains import elf_size

    project, p, ram, model, elf = deployed_float(precision, tmp_path_factory)
    fixed = runtime.fixed_ram(devices.get(CORES["cortex-m4"]).core.arch)
    outside = {k: size for k, (_, size) in ram.items() if k not in model}
    assert sum(outside.values()) == fixed.c_library + fixed.runtime, outside
    manifest = json.loads((project / "export.json").read_text())
    assert manifest["arena_bytes"] == p.arena_bytes
    inside = sum(size for k, (_, size) in ram.items() if k in model)
    assert inside == (manifest["arena_bytes"] + manifest["state_bytes"]
                      + p.runtime_ram_bytes - fixed.total + fixed.model)
    elf_ram = elf_size(elf).ram_bytes
    assert 0 <= p.peak_ram_bytes - elf_ram <= 8 * len(p.state)


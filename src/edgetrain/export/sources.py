"""The C runtime shipped as package data (``export/runtime/``) and the files rendered from
it for one device: the linker script whose FLASH and RAM are the device's.

>>> names = runtime_files()
>>> "et_startup.c" in names and "et_platform.h" in names
True
>>> script = linker_script("nrf52840", 262144, 1048576)
>>> "RAM_SIZE   = 262144;" in script and "FLASH_SIZE = 1048576;" in script
True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edgetrain.errors import EdgetrainError
from edgetrain.io.atomic import write_bytes, write_text
from edgetrain.memory.runtime import STACK_RESERVE_BYTES

LINKER_TEMPLATE = "et_cortexm.ld.in"
LINKER_SCRIPT = "et_cortexm.ld"
DEFAULT_STACK_BYTES = STACK_RESERVE_BYTES  # the planner adds it when checking the device
DEFAULT_HEAP_BYTES = 0  # the generated code never mallocs; harnesses that use stdio add some


def _runtime():
    return resources.files("edgetrain.export").joinpath("runtime")


def runtime_files() -> list[str]:
    """Names of the runtime sources copied into every generated project."""
    return sorted(p.name for p in _runtime().iterdir()
                  if p.name.endswith((".c", ".h")) and not p.name.startswith("."))


def runtime_source(name: str) -> str:
    return _runtime().joinpath(name).read_text()


def copy_runtime(dest: str | Path, names: list[str] | None = None) -> list[Path]:
    """Copy runtime sources into ``dest`` (atomically, file by file); returns the paths."""
    out = []
    for name in names if names is not None else runtime_files():
        out.append(write_bytes(Path(dest) / name, _runtime().joinpath(name).read_bytes()))
    return out


def linker_script(device: str, ram_bytes: int, flash_bytes: int, core: str = "",
                  stack_bytes: int = DEFAULT_STACK_BYTES,
                  heap_bytes: int = DEFAULT_HEAP_BYTES) -> str:
    """The linker script text for a device with this RAM and flash (bytes)."""
    for label, value in (("RAM", ram_bytes), ("flash", flash_bytes)):
        if value <= 0:
            raise EdgetrainError(f"device '{device}': {label} size must be positive, got {value}")
    text = runtime_source(LINKER_TEMPLATE)
    values = {"DEVICE": device, "CORE": core or "?", "RAM_BYTES": ram_bytes,
              "FLASH_BYTES": flash_bytes, "STACK_BYTES": stack_bytes, "HEAP_BYTES": heap_bytes}
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def write_linker_script(dest: str | Path, device: str, ram_bytes: int, flash_bytes: int,
                        core: str = "", stack_bytes: int = DEFAULT_STACK_BYTES,
                        heap_bytes: int = DEFAULT_HEAP_BYTES, name: str = LINKER_SCRIPT) -> Path:
    return write_text(Path(dest) / name,
                      linker_script(device, ram_bytes, flash_bytes, core, stack_bytes,
                                    heap_bytes))

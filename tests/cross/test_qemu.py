"""The bare-metal runtime on emulated Cortex-M: startup, semihosting stdout and host files,
exit codes, faults, instruction counts, the stack high-water mark, and a linker script that
refuses what does not fit."""

import re

import pytest

from edgetrain.errors import EdgetrainError
from edgetrain.export import qemu, sources
from edgetrain.export.toolchains import available, compile_program, elf_size, target

OK, WHY = available("cortex-m4")
pytestmark = pytest.mark.skipif(not OK, reason=f"cross toolchain missing: {WHY}")

PROGRAM = r"""
#include <stdio.h>
#include <stdint.h>
#include "et_platform.h"
static volatile uint32_t sink;
static uint8_t big[BIG_BYTES];
__attribute__((noinline)) static void spin(uint32_t n)   /* 2 instructions per iteration */
{ __asm volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc"); }
__attribute__((noinline)) static void deep(void)          /* STACK_BYTES of stack written */
{
    volatile uint8_t a[STACK_BYTES];
    for (int i = 0; i < STACK_BYTES; i++) a[i] = (uint8_t)i;
    sink = a[STACK_BYTES / 2];
}
int main(void)
{
    unsigned char buf[4] = {0};
    FILE *f = fopen("in.bin", "rb");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    big[BIG_BYTES - 1] = buf[0];
    deep();
    et_mark_begin(); spin(1000); et_mark_end();
    et_mark_begin(); spin(500); et_mark_end();
    FILE *o = fopen("out.bin", "wb");
    fwrite(buf, 1, n, o);
    fclose(o);
    printf("read %u bytes, first %c\n", (unsigned)n, buf[0] + big[BIG_BYTES - 1] - buf[0]);
#ifdef FAULT
    sink = *(volatile uint32_t *)0xFFFFFFF0u;   /* bus fault */
#endif
    return 7;
}
"""

CORES = ["cortex-m0plus", "cortex-m4", "cortex-m7"]


def build(tmp_path, core, ram=65536, big=1024, defines=(), stack=16):
    sources.copy_runtime(tmp_path)
    sources.write_linker_script(tmp_path, "test", ram, 262144, core, stack_bytes=4096,
                                heap_bytes=8192)
    (tmp_path / "prog.c").write_text(PROGRAM)
    srcs = [tmp_path / n for n in ("prog.c", "et_startup.c", "et_platform.c")]
    return compile_program(target(core), srcs, tmp_path / f"prog_{core}.elf",
                           include_dirs=[tmp_path], defines=[f"BIG_BYTES={big}", f"STACK_BYTES={stack}",
                                                          *defines],
                           linker_script=tmp_path / sources.LINKER_SCRIPT).path


@pytest.mark.parametrize("core", CORES)
def test_runs_with_semihosting_files_exit_code_and_counts(tmp_path, core):
    elf = build(tmp_path, core)
    (tmp_path / "in.bin").write_bytes(b"XYZW")
    res = qemu.run_elf(elf, target(core).qemu_board, timeout=60, cwd=tmp_path,
                       count_instructions=True)
    assert res.exit_code == 7
    assert res.stdout.startswith("read 4 bytes, first X\nedgetrain: stack ")
    assert (tmp_path / "out.bin").read_bytes() == b"XYZW"
    assert res.regions == 2
    # spin(n) is 2n instructions, plus call/return and the markers: a few per region
    assert 3000 <= res.measured_instructions <= 3000 + 2 * 16
    assert res.instructions > res.measured_instructions


def stack_bytes(stdout: str) -> int:
    return int(re.search(r"edgetrain: stack (\d+) bytes", stdout).group(1))


def test_stack_high_water_mark_covers_the_deepest_frame(tmp_path):
    """A 3000-byte local array called from main() is covered by the reported mark, which
    exceeds it by no more than the small program's whole mark (main's frame below it)."""
    marks = []
    for stack in (16, 3000):
        elf = build(tmp_path / str(stack), "cortex-m4", stack=stack)
        res = qemu.run_elf(elf, "mps2-an386", timeout=60, cwd=tmp_path / str(stack))
        marks.append(stack_bytes(res.stdout))
    assert 0 < marks[0] < 3000 <= marks[1] <= 3000 + marks[0]


def test_fault_exits_with_99_not_a_hang(tmp_path):
    elf = build(tmp_path, "cortex-m4", defines=["FAULT"])
    res = qemu.run_elf(elf, "mps2-an386", timeout=60, cwd=tmp_path)
    assert res.exit_code == qemu.FAULT_EXIT_CODE
    assert "FAULT" in res.stdout + res.stderr


def test_program_larger_than_ram_fails_to_link(tmp_path):
    with pytest.raises(EdgetrainError, match="RAM' overflowed"):
        build(tmp_path, "cortex-m4", ram=32768, big=40000)


def test_elf_size_counts_static_ram_apart_from_reservations(tmp_path):
    small = elf_size(build(tmp_path, "cortex-m4", big=1024))
    large = elf_size(build(tmp_path, "cortex-m4", big=5024))
    assert large.bss - small.bss == 4000
    assert small.reserved == large.reserved == 4096 + 8192
    assert small.flash_bytes == small.text + small.data > 0


def test_timeout_is_a_clear_error(tmp_path):
    elf = build(tmp_path, "cortex-m4")
    with pytest.raises(qemu.QemuTimeout, match="did not finish"):
        qemu.run_elf(elf, "mps2-an386", timeout=0.01, cwd=tmp_path)

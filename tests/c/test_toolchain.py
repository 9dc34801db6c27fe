"""Host builds: strict flags are really applied, and programs run."""

import subprocess

import pytest

from edgetrain.errors import EdgetrainError
from edgetrain.export.toolchains import C_FLAGS, available, compile_program, first_error, target

OK, WHY = available("host")
pytestmark = pytest.mark.skipif(not OK, reason=f"host C compiler missing: {WHY}")


def test_host_program_builds_and_runs(tmp_path):
    src = tmp_path / "p.c"
    src.write_text('#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 3; }\n')
    exe = compile_program(target("host"), [src], tmp_path / "p").path
    proc = subprocess.run([str(exe)], check=False, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (3, "42\n")


def test_warnings_are_errors(tmp_path):
    src = tmp_path / "w.c"
    src.write_text("int main(void) { int unused; return 0; }\n")
    with pytest.raises(EdgetrainError, match="unused"):
        compile_program(target("host"), [src], tmp_path / "w")


def test_no_fp_contraction_and_c99():
    assert {"-std=c99", "-ffp-contract=off", "-Werror", "-Wextra"} <= set(C_FLAGS)
    assert not any("fast-math" in f for f in C_FLAGS)


def test_first_error_picks_the_error_line():
    log = "p.c: In function 'main':\np.c:1:5: error: 'x' undeclared\n1 | x;\n"
    assert first_error(log) == "p.c:1:5: error: 'x' undeclared"

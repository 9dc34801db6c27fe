"""The device catalogue: built-in devices, user files and their validation, the CLI."""

import json

import pytest

from edgetrain.cli.main import main
from edgetrain.errors import EdgetrainError
from edgetrain.memory import devices

USER = """
[cores.cortex-m33]
arch = "armv8-m.main"
fpu = true
dsp = true
gcc_flags = ["-mcpu=cortex-m33", "-mthumb"]
cycles_per_mac_int8 = 2.0
cycles_per_mac_float32 = 3.0
cycles_per_byte = 1.0

[devices.myboard]
core = "cortex-m33"
sram_kib = 128
flash_kib = 512
clock_mhz = 80
"""


def test_builtin_devices_match_their_datasheets():
    rp, nrf = devices.get("rp2040"), devices.get("nrf52840")
    st, imx = devices.get("stm32f746"), devices.get("imxrt1062")
    assert (rp.sram_bytes, rp.flash_bytes, rp.clock_hz) == (264 * 1024, 2 << 20, 133_000_000)
    assert (rp.fpu, rp.dsp, rp.qemu_board) == (False, False, "mps2-an385")
    assert (nrf.sram_bytes, nrf.clock_hz, nrf.fpu, nrf.qemu_board) == (
        256 * 1024, 64_000_000, True, "mps2-an386")
    assert (st.sram_bytes, st.flash_bytes, st.qemu_board) == (320 * 1024, 1 << 20, "mps2-an500")
    assert "-mfpu=fpv5-sp-d16" in st.gcc_flags  # the device overrides its core's flags
    assert "-mfpu=fpv5-d16" in imx.gcc_flags
    assert (imx.sram_bytes, imx.flash_bytes, imx.clock_hz) == (1 << 20, 8 << 20, 600_000_000)


def test_unknown_device_suggests_the_closest_name():
    with pytest.raises(EdgetrainError, match="did you mean 'rp2040'"):
        devices.get("rp2400")


def test_user_file_adds_cores_and_devices(tmp_path):
    path = tmp_path / "boards.toml"
    path.write_text(USER)
    d = devices.get("myboard", path)
    assert (d.core.name, d.sram_bytes, d.clock_hz, d.qemu_board) == (
        "cortex-m33", 128 * 1024, 80_000_000, None)
    assert d.core.cycles_per_mac("int8") == 2.0
    assert "rp2040" in devices.names(path)


@pytest.mark.parametrize("change, message", [
    (("sram_kib = 128", "sram_kb = 128"), "unknown key 'sram_kb' .*did you mean 'sram_kib'"),
    (("sram_kib = 128", "sram_kib = -4"), "'sram_kib' = -4 is not valid"),
    (("sram_kib = 128", "sram_kib = \"128\""), "'sram_kib' = '128' is not valid"),
    (("clock_mhz = 80", ""), "missing key 'clock_mhz'"),
    (("core = \"cortex-m33\"", "core = \"cortex-m3\""), "unknown core 'cortex-m3'"),
    (("fpu = true", "fpu = 1"), "'fpu' = 1 is not valid"),
    (("[devices.myboard]", "[devices.rp2040]"), "device 'rp2040' is already defined"),
    (("[devices.myboard]", "[devices.myboard"), "not valid TOML"),
    (("[devices.myboard]", "[boards.myboard]"), "unknown section 'boards'"),
])
def test_bad_user_files_name_the_problem(tmp_path, change, message):
    path = tmp_path / "boards.toml"
    path.write_text(USER.replace(*change))
    with pytest.raises(EdgetrainError, match=message):
        devices.catalogue(path)


def test_missing_user_file_is_a_clear_error(tmp_path):
    with pytest.raises(EdgetrainError, match="cannot read device file"):
        devices.catalogue(tmp_path / "nope.toml")


def test_cli_lists_devices_as_table_and_json(capsys, tmp_path):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "nrf52840" in out and "mps2-an386" in out
    path = tmp_path / "boards.toml"
    path.write_text(USER)
    assert main(["devices", "--json", "--devices", str(path)]) == 0
    rows = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert rows["myboard"]["sram_bytes"] == 131072
    assert rows["rp2040"]["gcc_flags"][0] == "-mcpu=cortex-m0plus"


def test_cli_bad_device_file_exits_2(capsys, tmp_path):
    path = tmp_path / "boards.toml"
    path.write_text(USER.replace("sram_kib = 128", "sram_kib = 0"))
    assert main(["devices", "--devices", str(path)]) == 2
    assert "sram_kib" in capsys.readouterr().err

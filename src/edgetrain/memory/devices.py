"""The device catalogue: cores and chips, read from ``devices.toml`` (package data) plus any
TOML files the user adds with the same keys (``--devices FILE`` on the CLI).

>>> d = get("nrf52840")
>>> d.core.name, d.sram_bytes, d.flash_bytes, d.clock_hz, d.fpu, d.qemu_board
('cortex-m4f', 262144, 1048576, 64000000, True, 'mps2-an386')
>>> " ".join(get("rp2040").gcc_flags)
'-mcpu=cortex-m0plus -mthumb -mfloat-abi=soft'
>>> names()
['imxrt1062', 'nrf52840', 'rp2040', 'stm32f746']

A user file (validated: unknown keys, wrong types and unknown cores are refused with the
file, table and key named)::

    [devices.myboard]
    description = "my STM32L4 board"
    core = "cortex-m4f"
    sram_kib = 128
    flash_kib = 512
    clock_mhz = 80
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgetrain.errors import EdgetrainError, suggest, unknown

PRECISION_DTYPE = {"int8": "int8", "mixed": "int8", "float32": "float32"}


@dataclass(frozen=True)
class Core:
    """A CPU core: how to build for it, how to emulate it, what a MAC costs (an estimate)."""

    name: str
    arch: str
    fpu: bool
    dsp: bool
    gcc_flags: tuple[str, ...]
    qemu_board: str | None
    cycles_per_mac_int8: float
    cycles_per_mac_float32: float
    cycles_per_byte: float

    def cycles_per_mac(self, dtype: str) -> float:
        """Estimated cycles for one multiply-accumulate in ``dtype`` ('int8' or 'float32')."""
        table = {"int8": self.cycles_per_mac_int8, "float32": self.cycles_per_mac_float32}
        if dtype not in table:
            raise unknown("MAC dtype", dtype, table)
        return table[dtype]


@dataclass(frozen=True)
class Device:
    """A chip: its core, memories and clock."""

    name: str
    description: str
    core: Core
    sram_bytes: int
    flash_bytes: int
    clock_hz: int
    gcc_flags: tuple[str, ...]  # the core's flags unless the device overrides them

    @property
    def fpu(self) -> bool:
        return self.core.fpu

    @property
    def dsp(self) -> bool:
        return self.core.dsp

    @property
    def qemu_board(self) -> str | None:
        return self.core.qemu_board

    @property
    def clock_mhz(self) -> float:
        return self.clock_hz / 1e6

    def to_dict(self) -> dict:
        """A JSON-ready description (what ``edgetrain devices --json`` prints)."""
        return {"name": self.name, "description": self.description, "core": self.core.name,
                "arch": self.core.arch, "sram_bytes": self.sram_bytes,
                "flash_bytes": self.flash_bytes, "clock_hz": self.clock_hz,
                "fpu": self.fpu, "dsp": self.dsp, "qemu_board": self.qemu_board,
                "gcc_flags": list(self.gcc_flags),
                "cycles_per_mac_estimate": {"int8": self.core.cycles_per_mac_int8,
                                            "float32": self.core.cycles_per_mac_float32}}


# key -> (accepted types, required, what to write); bool is not accepted where a number is
_NUMBER = (int, float)
CORE_KEYS = {
    "arch": (str, True, "a string such as \"armv7e-m\""),
    "fpu": (bool, True, "true or false"),
    "dsp": (bool, True, "true or false"),
    "gcc_flags": (list, True, "a list of strings"),
    "qemu_board": (str, False, "a QEMU -M board name such as \"mps2-an386\""),
    "cycles_per_mac_int8": (_NUMBER, True, "a positive number"),
    "cycles_per_mac_float32": (_NUMBER, True, "a positive number"),
    "cycles_per_byte": (_NUMBER, True, "a positive number"),
}
DEVICE_KEYS = {
    "description": (str, False, "a string"),
    "core": (str, True, "a core name"),
    "sram_kib": (int, True, "a positive integer (KiB)"),
    "flash_kib": (int, True, "a positive integer (KiB)"),
    "clock_mhz": (_NUMBER, True, "a positive number (MHz)"),
    "gcc_flags": (list, False, "a list of strings"),
}


def _check_table(where: str, table: object, schema: Mapping) -> dict:
    """The table's entries, after checking keys, types and signs against ``schema``."""
    if not isinstance(table, dict):
        raise EdgetrainError(f"{where}: expected a table ([...] section)")
    for key in table:
        if key not in schema:
            raise EdgetrainError(f"{where}: unknown key '{key}'{suggest(key, schema)}")
    for key, (types, required, hint) in schema.items():
        if key not in table:
            if required:
                raise EdgetrainError(f"{where}: missing key '{key}' ({hint})")
            continue
        value = table[key]
        bad_type = isinstance(value, bool) and types is not bool or not isinstance(value, types)
        bad_list = isinstance(value, list) and not all(isinstance(v, str) for v in value)
        bad_sign = isinstance(value, _NUMBER) and not isinstance(value, bool) and value <= 0
        if bad_type or bad_list or bad_sign:
            raise EdgetrainError(f"{where}: '{key}' = {value!r} is not valid; write {hint}")
    return dict(table)


def _core(name: str, entry: dict) -> Core:
    return Core(name, entry["arch"], entry["fpu"], entry["dsp"], tuple(entry["gcc_flags"]),
                entry.get("qemu_board"), float(entry["cycles_per_mac_int8"]),
                float(entry["cycles_per_mac_float32"]), float(entry["cycles_per_byte"]))


def _device(where: str, name: str, entry: dict, cores: Mapping[str, Core]) -> Device:
    if entry["core"] not in cores:
        raise EdgetrainError(f"{where}: {unknown('core', entry['core'], cores)}")
    core = cores[entry["core"]]
    flags = tuple(entry["gcc_flags"]) if "gcc_flags" in entry else core.gcc_flags
    return Device(name, entry.get("description", ""), core, entry["sram_kib"] * 1024,
                  entry["flash_kib"] * 1024, round(entry["clock_mhz"] * 1e6), flags)


def _read_toml(source: str, text: str) -> dict:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise EdgetrainError(f"{source}: not valid TOML ({e})") from None
    extra = set(data) - {"cores", "devices"}
    if extra:
        raise EdgetrainError(f"{source}: unknown section '{min(extra)}' "
                             "(a device file has [cores.NAME] and [devices.NAME] tables)")
    return data


def _merge(source: str, data: dict, cores: dict[str, Core], devices: dict[str, Device]) -> None:
    """Add the cores and devices of one parsed file; a name already defined is refused."""
    for kind, table, known in (("core", data.get("cores", {}), cores),
                               ("device", data.get("devices", {}), devices)):
        if not isinstance(table, dict):
            raise EdgetrainError(f"{source}: '{kind}s' must be a table of [{kind}s.NAME] tables")
        for name in table:
            if name in known:
                raise EdgetrainError(f"{source}: {kind} '{name}' is already defined; "
                                     "give yours another name")
    for name, entry in data.get("cores", {}).items():
        cores[name] = _core(name, _check_table(f"{source}: [cores.{name}]", entry, CORE_KEYS))
    for name, entry in data.get("devices", {}).items():
        where = f"{source}: [devices.{name}]"
        devices[name] = _device(where, name, _check_table(where, entry, DEVICE_KEYS), cores)


def _user_text(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise EdgetrainError(f"cannot read device file '{path}': {e.strerror}") from None


def _as_paths(extra: str | Path | Iterable[str | Path] | None) -> list[str | Path]:
    if extra is None:
        return []
    if isinstance(extra, (str, Path)):
        return [extra]
    return list(extra)


def catalogue(extra: str | Path | Iterable[str | Path] | None = None) -> dict[str, Device]:
    """Every device: the built-in ones, then those of the user's TOML file(s) ``extra``."""
    cores: dict[str, Core] = {}
    devices: dict[str, Device] = {}
    builtin = resources.files("edgetrain.memory").joinpath("devices.toml").read_text()
    _merge("devices.toml (built in)", _read_toml("devices.toml", builtin), cores, devices)
    for path in _as_paths(extra):
        _merge(str(path), _read_toml(str(path), _user_text(path)), cores, devices)
    return devices


def names(extra: str | Path | Iterable[str | Path] | None = None) -> list[str]:
    """Device names, sorted."""
    return sorted(catalogue(extra))


def get(name: str | Device, extra: str | Path | Iterable[str | Path] | None = None) -> Device:
    """The device called ``name`` (a Device is returned as is)."""
    if isinstance(name, Device):
        return name
    devices = catalogue(extra)
    if name not in devices:
        raise unknown("device", name, devices)
    return devices[name]

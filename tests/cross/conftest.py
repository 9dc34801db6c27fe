"""tests/cross: need arm-none-eabi-gcc, newlib and qemu-system-arm; every test here skips
with the apt-get line to install them when they are missing."""

import pytest

from edgetrain.export.toolchains import available

OK, WHY = available("cortex-m4")


def pytest_collection_modifyitems(config, items):
    if OK:
        return
    for item in items:
        if "tests/cross/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=f"cross toolchain missing: {WHY}"))

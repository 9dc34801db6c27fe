"""tests/c: need a host C compiler; every test here skips with an install hint without one."""

import pytest

from edgetrain.export.toolchains import available

OK, WHY = available("host")


def pytest_collection_modifyitems(config, items):
    if OK:
        return
    for item in items:
        if "tests/c/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=f"host C compiler missing: {WHY}"))

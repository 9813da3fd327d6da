"""Settings shared by tests/ and sim/."""

import os

import pytest
from hypothesis import settings

# Shared 2-core machines: wall-clock deadlines would make property tests flaky, not stricter.
# print_blob lets any failure be replayed exactly with @reproduce_failure.
settings.register_profile("ttaccel", deadline=None, print_blob=True)
settings.load_profile("ttaccel")


def pytest_addoption(parser):
    parser.addoption(
        "--board",
        metavar="OVERLAY",
        default=os.environ.get("TTACCEL_BOARD_OVERLAY"),
        help="run the `board` tests on this PYNQ-Z2 overlay (.bit with its .hwh beside it); "
        "default: $TTACCEL_BOARD_OVERLAY",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--board"):
        return
    skip = pytest.mark.skip(reason="needs a PYNQ-Z2: pass --board OVERLAY.bit (or set "
                            "TTACCEL_BOARD_OVERLAY)")  # fmt: skip
    for item in items:
        if "board" in item.keywords:
            item.add_marker(skip)

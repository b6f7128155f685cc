"""Proves that ``make test-clock-ahead`` really runs with the clock moved ahead.

The alerts and KPI suites run a second time under libfaketime (``FAKETIME=+365d``). If the
preload silently failed, that run would repeat today's run and prove nothing; this test
compares the process clock with the kernel's time of a file it just wrote (the kernel's
clock is not faked), so it fails unless the shift is in effect.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

EXPECTED_DAYS = os.environ.get("PULSE_EXPECT_CLOCK_AHEAD_DAYS")


@pytest.mark.skipif(EXPECTED_DAYS is None, reason="only in make test-clock-ahead")
def test_process_clock_is_ahead_of_the_kernel_clock(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_text("now")
    kernel_now = probe.stat().st_mtime
    ahead_days = (time.time() - kernel_now) / 86_400
    assert abs(ahead_days - float(EXPECTED_DAYS or 0)) < 1.0, ahead_days

"""Success rates and Wilson intervals (core, no ROS)."""

import math

from hilresrl_common.success_statistics import SuccessWindow, wilson_interval
import pytest


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0


def test_wilson_interval_edge_cases():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_window_keeps_the_last_episodes():
    window = SuccessWindow(3)
    assert math.isnan(window.rate)
    for success in (False, False, True, True, True):
        window.add(success)
    assert window.rate == 1.0 and window.episodes == 5
    assert window.interval == wilson_interval(3, 3)

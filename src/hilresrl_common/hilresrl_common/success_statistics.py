"""Success rates of episodes and their confidence intervals (no ROS)."""

from collections import deque
import math
from typing import Deque, Tuple


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> Tuple[float, float]:
    """
    Return the Wilson score interval of a success rate (95% for the default z).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or all
    successes, which is where a policy that is learning spends much of its time.
    """
    if trials <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= trials:
        raise ValueError(f'{successes} successes out of {trials} trials')
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    half_width /= denominator
    # The bounds are exactly 0 and 1 at no and all successes; say so despite rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return (low, high)


class SuccessWindow:
    """Success rate over the last ``size`` episodes, with its Wilson interval."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError('the window holds at least one episode')
        self._outcomes: Deque[bool] = deque(maxlen=size)
        self.episodes = 0

    def add(self, success: bool) -> None:
        """Record one finished episode."""
        self._outcomes.append(bool(success))
        self.episodes += 1

    @property
    def rate(self) -> float:
        """Success rate over the window; NaN before any episode."""
        if not self._outcomes:
            return math.nan
        return sum(self._outcomes) / len(self._outcomes)

    @property
    def interval(self) -> Tuple[float, float]:
        """95% Wilson interval of the rate over the window."""
        return wilson_interval(sum(self._outcomes), len(self._outcomes))

"""
When each message of a bag is due when it is played back: original timing, scaled, offset.

A bag's messages carry their receive times; played at ``rate`` from ``start_s`` seconds into
the bag, a message recorded at t is due (t - t0 - start) / rate seconds after playback began.
No ROS here.
"""

from dataclasses import dataclass
import re
from typing import Iterable, Iterator, Optional, Sequence, Tuple


@dataclass(frozen=True)
class PlaybackOptions:
    """How to play a bag back."""

    rate: float = 1.0
    start_s: float = 0.0
    loop: bool = False

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError(f'rate must be positive, not {self.rate}')
        if self.start_s < 0:
            raise ValueError(f'start must not be negative, not {self.start_s}')


def select_topics(available: Iterable[str], patterns: Optional[Sequence[str]]) -> list:
    """Return the topics to play: all, or those matching a name or regular expression."""
    available = sorted(available)
    if not patterns:
        return available
    compiled = [re.compile(pattern) for pattern in patterns]
    chosen = [topic for topic in available
              if any(pattern.fullmatch(topic) for pattern in compiled)]
    if not chosen:
        raise ValueError(f'no topic of the bag matches {", ".join(patterns)}; it has '
                         f'{", ".join(available)}')
    return chosen


def schedule(messages: Iterable[Tuple[str, int, bytes]], first_ns: int,
             options: PlaybackOptions) -> Iterator[Tuple[float, str, bytes]]:
    """Yield (seconds after playback start, topic, data) for the messages from start_s on."""
    start_ns = first_ns + int(options.start_s * 1e9)
    for topic, stamp_ns, data in messages:
        if stamp_ns < start_ns:
            continue
        yield (stamp_ns - start_ns) / 1e9 / options.rate, topic, data

"""
Episode bookkeeping of one cell: ids, mode, steps, return and human-control steps.

Plain Python (no ROS), so that the rules are tested on their own; episode_manager.py is the
node around it.
"""

from dataclasses import dataclass
import enum


class Mode(enum.IntEnum):
    """Operating mode; the values are those of hilresrl_msgs/Mode."""

    TRAIN = 0
    EVAL = 1
    PAUSE = 2


class Outcome(enum.IntEnum):
    """How an episode ended; the values are those of hilresrl_msgs/EpisodeOutcome."""

    NONE = 0
    SUCCESS = 1
    FAILURE = 2
    TIMEOUT = 3
    ABORT = 4


class EpisodeError(RuntimeError):
    """A request that the episode state does not allow; the message says why."""


@dataclass(frozen=True)
class EpisodeSummary:
    """What an ended episode amounted to."""

    episode_id: int
    mode: Mode
    outcome: Outcome
    steps: int
    episode_return: float
    intervention_steps: int


class EpisodeTracker:
    """Numbers episodes, keeps the mode, and sums steps, reward and human-control steps."""

    def __init__(self, mode: Mode = Mode.TRAIN):
        self._mode = Mode(mode)
        self._episode_id = 0
        self._running = False
        self._episode_mode = self._mode
        self._steps = 0
        self._return = 0.0
        self._intervention_steps = 0

    @property
    def mode(self) -> Mode:
        """Mode in force for the next episode (PAUSE: no episode may start)."""
        return self._mode

    @property
    def episode_mode(self) -> Mode:
        """Mode of the running (or last) episode."""
        return self._episode_mode

    @property
    def episode_id(self) -> int:
        """Id of the running or last episode; 0 before the first."""
        return self._episode_id

    @property
    def running(self) -> bool:
        """Whether an episode is running."""
        return self._running

    @property
    def steps(self) -> int:
        """Count the steps of the running or last episode."""
        return self._steps

    @property
    def episode_return(self) -> float:
        """Sum of the rewards of the running or last episode."""
        return self._return

    @property
    def intervention_steps(self) -> int:
        """Count the steps of the running or last episode with any human control."""
        return self._intervention_steps

    def start(self, mode: Mode = None) -> int:
        """Start the next episode in ``mode`` (default: the mode in force); return its id."""
        mode = self._mode if mode is None else Mode(mode)
        if self._running:
            raise EpisodeError(f'episode {self._episode_id} is still running; end it first')
        if mode == Mode.PAUSE or self._mode == Mode.PAUSE:
            raise EpisodeError('the cell is paused: set the mode to TRAIN or EVAL first')
        self._episode_id += 1
        self._running = True
        self._episode_mode = mode
        self._steps = 0
        self._return = 0.0
        self._intervention_steps = 0
        return self._episode_id

    def record_step(self, reward: float, intervened: bool) -> None:
        """Count one control step of the running episode."""
        if not self._running:
            raise EpisodeError('no episode is running')
        if self._episode_mode == Mode.EVAL and intervened:
            raise EpisodeError('a person intervened in an evaluation episode')
        self._steps += 1
        self._return += float(reward)
        self._intervention_steps += int(bool(intervened))

    def end(self, outcome: Outcome) -> EpisodeSummary:
        """End the running episode with an outcome and return its summary."""
        outcome = Outcome(outcome)
        if not self._running:
            raise EpisodeError('no episode is running')
        if outcome == Outcome.NONE:
            raise EpisodeError('an episode ends with SUCCESS, FAILURE, TIMEOUT or ABORT')
        self._running = False
        return EpisodeSummary(self._episode_id, self._episode_mode, outcome, self._steps,
                              self._return, self._intervention_steps)

    def set_mode(self, mode: Mode) -> Mode:
        """Set the mode for the next episode; return the previous one."""
        previous, self._mode = self._mode, Mode(mode)
        return previous

"""
Which broadcast weights a policy node may adopt: size before decoding, then run id and version.

Versions are ordered within the learner run that produced them (PolicyWeights.learner_run_id):
weights without a run id are refused, a new run id starts a new ordering (unless one run is
pinned), and a run that was replaced is refused for good. No ROS here.
"""

from typing import Any, Mapping, Optional, Set, Tuple

from hilresrl_common.parameters import at_least, Parameter

from .residual import WeightsError

DEFAULT_MAX_WEIGHTS_BYTES = 64 * 1024 * 1024


class WeightsGate:
    """The ordering of adopted weights: check a message, adopt it, then call ``accepted``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_WEIGHTS_BYTES, pinned_run_id: str = ''):
        if max_bytes < 1:
            raise ValueError(f'the size limit of weights must be positive, not {max_bytes}')
        self.max_bytes = int(max_bytes)
        self.pinned_run_id = pinned_run_id
        self.run_id = ''
        self.version = 0
        self._replaced: Set[str] = set()

    def check_size(self, size_bytes: int) -> None:
        """Refuse a serialized message over the limit (call it before decoding)."""
        if size_bytes > self.max_bytes:
            raise WeightsError(f'the message has {size_bytes} bytes, over the limit of '
                               f'{self.max_bytes} (max_weights_bytes): not decoded')

    def check_order(self, run_id: str, version: int) -> Optional[str]:
        """
        Refuse weights of no run, of a foreign or replaced run, or not newer than those in use.

        Return a note when the weights start a new learner run (None otherwise).
        """
        if not run_id:
            raise WeightsError('no learner_run_id: weights of an unknown run')
        if self.pinned_run_id and run_id != self.pinned_run_id:
            raise WeightsError(f'learner run {run_id!r} is not the run this node takes '
                               f'({self.pinned_run_id!r}, parameter learner_run_id)')
        if run_id in self._replaced:
            raise WeightsError(f'learner run {run_id!r} was replaced by {self.run_id!r} '
                               '(stale run)')
        if version < 1:
            raise WeightsError(f'version {version}: versions start at 1')
        if run_id == self.run_id:
            if version <= self.version:
                raise WeightsError(f'version {version} is not newer than {self.version} of '
                                   f'run {run_id!r}')
            return None
        if self.run_id:
            return (f'new learner run {run_id!r} (was {self.run_id!r} at version '
                    f'{self.version}): its versions are ordered afresh')
        return f'learner run {run_id!r}'

    def accepted(self, run_id: str, version: int) -> None:
        """Record weights as adopted (after check_order passed and the actor took them)."""
        if self.run_id and run_id != self.run_id:
            self._replaced.add(self.run_id)
        self.run_id, self.version = run_id, int(version)


def weights_gate_parameters(what: str) -> Tuple[Parameter, ...]:
    """
    Return the gate's parameters for a node that takes ``what`` (e.g. 'policy_weights').

    One declaration for every node that adopts broadcast weights; weights_gate() makes the gate
    from their values.
    """
    return (
        Parameter('max_weights_bytes', DEFAULT_MAX_WEIGHTS_BYTES,
                  f'Largest {what} message taken, in bytes; a larger one is refused before it '
                  'is decoded', check=at_least(1)),
        Parameter('learner_run_id', '',
                  f'Take {what} of this learner run only; empty: any run (a new run id starts '
                  'a new version ordering, and the run it replaces is refused from then on)'),
    )


def weights_gate(values: Mapping[str, Any]) -> WeightsGate:
    """Return the gate for the values of weights_gate_parameters()."""
    return WeightsGate(values['max_weights_bytes'], values['learner_run_id'])

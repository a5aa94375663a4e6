"""
The arbiter's outcomes as messages: ExecutedAction and InterventionState.

The one place that knows how these messages lay out a step; the node only publishes them.
"""

from typing import Optional

from hilresrl_common.conversions import bool_field, float32_field, ns_to_stamp
from hilresrl_msgs.msg import ExecutedAction, InterventionState, ProposedAction
import numpy as np

from .arbiter_core import StepOutcome
from .arbitration import ArbitrationResult

# What an executed action repeats of the proposal it answers.
PROPOSAL_FIELDS = ('step', 'base_action', 'residual', 'residual_scale', 'weights_version',
                   'latent', 'latent_condition', 'latent_weights_version')


def executed_action(stamp_ns: int, frame_id: str, device_name: str, command: np.ndarray,
                    proposal: Optional[ProposedAction], step: StepOutcome) -> ExecutedAction:
    """Return the record of a sent command; a hold carries the proposal it replaced."""
    message = ExecutedAction(executed_action=float32_field(command),
                             safety_limited=bool(step.limits), held=step.held,
                             hold_reason=step.hold_reason)
    message.header.stamp = ns_to_stamp(stamp_ns)
    message.header.frame_id = frame_id
    if proposal is not None:
        for name in PROPOSAL_FIELDS:
            setattr(message, name, getattr(proposal, name))
    decision = None if step.held else step.decision
    if decision is not None and decision.intervened:  # a quiet step is the policy's
        message.correction = step.correction or ''
        message.intervened = True
        message.intervened_axes = bool_field(decision.intervened_axes)
        message.human_action = float32_field(decision.human_action)
        message.device = device_name
    return message


def intervention_state(stamp_ns: int, device_name: str, decision: ArbitrationResult,
                       correction: str) -> InterventionState:
    """
    Return the state of the segment after a step, and what the person commands on it.

    ``active`` holds through the segment's quiet period; the axes, the human action and the
    words only come with a step the person commands.
    """
    message = InterventionState(active=decision.active, segment_id=decision.segment_id,
                                active_duration_s=decision.active_duration_s)
    message.header.stamp = ns_to_stamp(stamp_ns)
    if decision.intervened:
        message.axis_mask = bool_field(decision.intervened_axes)
        message.human_action = float32_field(decision.human_action)
        message.device = device_name
        message.correction = correction
    return message

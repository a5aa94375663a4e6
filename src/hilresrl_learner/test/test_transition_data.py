"""Transitions as the learner takes them: per-axis interventions and the residual scale."""

from hilresrl_common.conversions import float32_field, to_named_arrays
from hilresrl_learner.transition_data import checked_step_record, ForeignResidualScale
from hilresrl_msgs.msg import Transition
import pytest


def _transition(**fields) -> Transition:
    return Transition(step=1, observation=to_named_arrays({'task_state': [1.0, 2.0]}),
                      next_observation=to_named_arrays({'task_state': [3.0, 4.0]}),
                      base_action=float32_field([0.1, 0.2, 0.0]),
                      executed_action=float32_field([0.5, 0.2, 0.0]), **fields)


def test_a_per_axis_intervention_keeps_the_axes_the_person_took():
    record = checked_step_record(_transition(
        intervened=True, human_action=float32_field([0.5, 0.2, 0.0]),
        intervened_axes=[True, False, False]), ['task_state'], 3, 'e')
    assert record.human_action.tolist() == pytest.approx([0.5, 0.2, 0.0])
    assert record.intervened_axes.tolist() == [True, False, False]
    older = checked_step_record(_transition(
        intervened=True, human_action=float32_field([0.5, 0.2, 0.0])), ['task_state'], 3, 'e')
    assert older.intervened_axes is None  # an older bag: every axis was the person's
    with pytest.raises(ValueError, match='intervened_axes of 2 values, not 3'):
        checked_step_record(_transition(
            intervened=True, human_action=float32_field([0.5, 0.2, 0.0]),
            intervened_axes=[True, False]), ['task_state'], 3, 'e')


def test_a_transition_of_another_residual_scale_is_refused_naming_both():
    ours = [0.5, 0.5, 1.0]
    for same in ([0.5, 0.5, 1.0], []):  # its own scale, or none said (an older cell)
        checked_step_record(_transition(residual_scale=float32_field(same)), ['task_state'],
                            3, 'e', residual_scale=ours)
    checked_step_record(_transition(residual_scale=float32_field([0.3])), ['task_state'], 3,
                        'e', residual_scale=[0.3, 0.3, 0.3])  # one value stands for all
    with pytest.raises(ForeignResidualScale) as refusal:
        checked_step_record(_transition(residual_scale=float32_field([0.3])), ['task_state'],
                            3, 'e', residual_scale=ours)
    assert "residual_scale [0.3, 0.3, 0.3] is not the learner's [0.5, 0.5, 1]" in str(
        refusal.value)
    with pytest.raises(ValueError, match='residual_scale has 2 values; give 1 or 3'):
        checked_step_record(_transition(residual_scale=float32_field([0.5, 0.5])),
                            ['task_state'], 3, 'e', residual_scale=ours)
    # no scale to hold it to (the refinement actor alone): taken
    checked_step_record(_transition(residual_scale=float32_field([0.3])), ['task_state'], 3,
                        'e')

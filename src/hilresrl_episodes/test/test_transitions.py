"""Pairing observations and executed actions into steps (core, no ROS)."""

from hilresrl_common.observation import Observation
from hilresrl_episodes.transitions import StepAssembler
import numpy as np


def _observation(stamp):
    return Observation(stamp, {'s': np.array([stamp], dtype=np.float32)})


def test_steps_complete_in_either_arrival_order():
    steps = StepAssembler()
    steps.start(10)
    assert steps.add_observation(_observation(10)) == []
    assert steps.add_observation(_observation(20)) == []  # o_1 before a_0
    completed = steps.add_action(10, 'a0')
    assert [(s.observation.stamp_ns, s.action, s.next_observation.stamp_ns)
            for s in completed] == [(10, 'a0', 20)]
    assert steps.add_action(20, 'a1') == []
    completed = steps.add_observation(_observation(30))
    assert [(s.observation.stamp_ns, s.action) for s in completed] == [(20, 'a1')]


def test_anything_before_the_episode_start_is_ignored():
    steps = StepAssembler()
    assert steps.add_observation(_observation(5)) == []  # no episode yet
    steps.start(100)
    steps.add_observation(_observation(90))
    steps.add_action(90, 'stale')
    steps.add_observation(_observation(100))
    assert steps.add_action(100, 'a') == []
    assert [s.action for s in steps.add_observation(_observation(110))] == ['a']


def test_first_command_for_an_observation_wins():
    steps = StepAssembler()
    steps.start(0)
    steps.add_observation(_observation(0))
    steps.add_action(0, 'hold')
    steps.add_action(0, 'late proposal')
    assert [s.action for s in steps.add_observation(_observation(1))] == ['hold']


def test_action_without_its_observation_is_counted_not_emitted():
    steps = StepAssembler()
    steps.start(0)
    steps.add_action(5, 'orphan')
    assert steps.add_observation(_observation(6)) == []
    assert steps.unmatched_actions == 1

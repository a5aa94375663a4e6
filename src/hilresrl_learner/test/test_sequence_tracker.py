"""Sequence-number checks per robot (core, no ROS)."""

from hilresrl_learner.sequence_tracker import SequenceCheck, SequenceTracker


def test_consecutive_sequences_lose_nothing():
    tracker = SequenceTracker()
    assert [tracker.observe('r1', s) for s in (5, 6, 7)] == [SequenceCheck()] * 3
    assert tracker.total_received == 3 and tracker.total_lost == 0


def test_a_gap_is_counted_per_robot():
    tracker = SequenceTracker()
    tracker.observe('r1', 1)
    tracker.observe('r2', 1)
    assert tracker.observe('r1', 4) == SequenceCheck(lost=2)
    assert tracker.observe('r2', 2) == SequenceCheck()
    assert tracker.lost == {'r1': 2} and tracker.total_lost == 2


def test_repeats_and_restarts_are_told_apart():
    tracker = SequenceTracker()
    tracker.observe('r1', 10)
    assert tracker.observe('r1', 9).duplicate
    assert tracker.observe('r1', 10).duplicate
    assert tracker.observe('r1', 1) == SequenceCheck(restarted=True)
    assert tracker.observe('r1', 2) == SequenceCheck()
    assert tracker.duplicates == {'r1': 2} and tracker.total_lost == 0


def test_a_new_cell_start_is_a_restart_even_when_its_first_transition_was_lost():
    tracker = SequenceTracker()
    for sequence in range(1, 51):
        tracker.observe('r1', sequence, 'start-a')
    # the cell restarts with a new id; its sequence 1 never arrives
    checks = [tracker.observe('r1', sequence, 'start-b') for sequence in range(2, 101)]
    assert checks[0] == SequenceCheck(lost=1, restarted=True)
    assert not any(check.duplicate for check in checks)
    assert tracker.lost == {'r1': 1} and tracker.restarts == {'r1': 1}


def test_within_one_start_a_repeat_is_a_duplicate_even_at_sequence_one():
    tracker = SequenceTracker()
    tracker.observe('r1', 1, 'start-a')
    tracker.observe('r1', 2, 'start-a')
    assert tracker.observe('r1', 1, 'start-a').duplicate
    assert tracker.observe('r1', 2, 'start-a').duplicate
    assert tracker.observe('r1', 5, 'start-a') == SequenceCheck(lost=2)

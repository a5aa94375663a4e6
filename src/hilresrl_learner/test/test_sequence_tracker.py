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

"""episode_manager over DDS: services, events, the latched mode, transitions and summaries."""

import json
import subprocess
import time

from hilresrl_common.conversions import float32_field, from_named_arrays, ns_to_stamp
from hilresrl_common.qos import COMMAND_QOS, EVENTS_QOS, LATCHED_QOS, TRANSITIONS_QOS
from hilresrl_episodes import episodes
from hilresrl_episodes.episode_manager_node import EpisodeManagerNode
from hilresrl_msgs.msg import (EpisodeEvent, EpisodeOutcome, ExecutedAction, LearnerStatus,
                               Mode, StateVector, Transition)
from hilresrl_msgs.srv import EndEpisode, ResetCell, SetMode, StartEpisode
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

MANUAL = {'robot_id': 'cellA', 'reset_service': '', 'auto_start': False, 'wait_for_topics': [''],
          'observation_sources': ['task_state', 'success'], 'reward_source': 'observation'}

# Episodes one after another, success from a topic: the cell the fault tests need.
AUTO = {'auto_start': True, 'observation_sources': ['task_state'], 'reward_source': 'topic'}


@pytest.fixture
def make_manager(ros_context, probe):

    def make(**overrides):
        node = EpisodeManagerNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in {**MANUAL, **overrides}.items()])
        probe.spin(node)
        return node

    return make


class Cell:
    """The probe's side: observations and executed actions in, transitions and events out."""

    def __init__(self, probe):
        self.probe = probe
        self.transitions, self.events = [], []
        node = probe.node
        self.states = node.create_publisher(StateVector, 'task_state', 10)
        self.success = node.create_publisher(StateVector, 'success', 10)
        self.executed = node.create_publisher(ExecutedAction, 'executed_action', COMMAND_QOS)
        node.create_subscription(Transition, 'transitions', self.transitions.append,
                                 TRANSITIONS_QOS)
        node.create_subscription(EpisodeEvent, 'episode_events', self.events.append, 10)
        probe.wait_for(lambda: self.executed.get_subscription_count() == 1
                       and self.states.get_subscription_count() == 1
                       and node.count_subscribers('transitions') >= 1, message='the manager')

    def observe(self, k: int, success: bool = False) -> None:
        stamp = ns_to_stamp(k * 100_000_000)
        flag = StateVector(data=float32_field([float(success)]))
        flag.header.stamp = stamp
        self.success.publish(flag)
        state = StateVector(data=float32_field([k, k + 0.5]))
        state.header.stamp = stamp
        self.states.publish(state)

    def execute(self, k: int, intervened: bool = False) -> None:
        message = ExecutedAction(executed_action=float32_field([0.1 * k, 0, 0, 1]),
                                 base_action=float32_field([0.0, 0, 0, 1]),
                                 residual=float32_field([0.0] * 4), intervened=intervened,
                                 weights_version=3)
        if intervened:
            message.human_action = float32_field([0.1 * k, 0, 0, 1])
            message.intervened_axes = [True] * 4
        message.header.stamp = ns_to_stamp(k * 100_000_000)
        self.executed.publish(message)


def test_core_enums_match_the_messages():
    assert [m.value for m in episodes.Mode] == [Mode.TRAIN, Mode.EVAL, Mode.PAUSE]
    assert [o.value for o in episodes.Outcome] == [
        EpisodeOutcome.NONE, EpisodeOutcome.SUCCESS, EpisodeOutcome.FAILURE,
        EpisodeOutcome.TIMEOUT, EpisodeOutcome.ABORT]


def test_episode_start_and_end_are_published(make_manager, probe):
    make_manager()
    events = []
    probe.node.create_subscription(EpisodeEvent, 'episode_events', events.append, 10)
    probe.wait_for(lambda: probe.node.count_publishers('episode_events') == 1)

    started = probe.call(StartEpisode, 'start_episode',
                         StartEpisode.Request(mode=Mode(value=Mode.EVAL), instruction='pick'))
    assert started.success and started.episode_id == 1
    again = probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    assert not again.success and 'still running' in again.message
    ended = probe.call(EndEpisode, 'end_episode', EndEpisode.Request(
        outcome=EpisodeOutcome(value=EpisodeOutcome.FAILURE), reason='dropped'))
    assert ended.success and ended.episode_id == 1

    probe.wait_for(lambda: len(events) == 2, message='two episode events')
    start, end = events
    assert (start.event, start.robot_id, start.episode_id, start.mode.value, start.detail) == (
        EpisodeEvent.EPISODE_START, 'cellA', 1, Mode.EVAL, 'pick')
    assert (end.event, end.outcome.value, end.mode.value, end.detail) == (
        EpisodeEvent.EPISODE_END, EpisodeOutcome.FAILURE, Mode.EVAL, 'dropped')


def test_an_episode_start_is_stamped_with_the_first_observation_after_the_reset(
        make_manager, probe):
    # The policy nodes drop plans older than this stamp: the last episode's.
    def reset(request, response):
        response.success, response.instruction = True, 'pick'
        response.observation_stamp = ns_to_stamp(7_250_000_000)
        return response

    probe.node.create_service(ResetCell, 'reset', reset)
    events = []
    probe.node.create_subscription(EpisodeEvent, 'episode_events', events.append, EVENTS_QOS)
    make_manager(reset_service='reset')
    started = probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    assert started.success
    probe.wait_for(lambda: events, message='the episode start')
    assert events[0].event == EpisodeEvent.EPISODE_START
    assert (events[0].header.stamp.sec, events[0].header.stamp.nanosec) == (7, 250_000_000)


def test_pause_aborts_the_running_episode_and_is_latched(make_manager, probe):
    make_manager()
    probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    response = probe.call(SetMode, 'set_mode', SetMode.Request(mode=Mode(value=Mode.PAUSE)))
    assert response.success and response.previous_mode.value == Mode.TRAIN
    refused = probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    assert not refused.success and 'paused' in refused.message

    modes = []  # a late subscriber still gets the mode: the topic is latched
    probe.node.create_subscription(Mode, 'mode', modes.append, LATCHED_QOS)
    probe.wait_for(lambda: modes and modes[-1].value == Mode.PAUSE, message='latched mode')


def test_every_step_becomes_a_transition_until_success(make_manager, probe):
    make_manager()
    cell = Cell(probe)
    assert probe.call(StartEpisode, 'start_episode', StartEpisode.Request()).success
    cell.observe(1)
    cell.observe(2)  # o_1 may come before a_0: the pairing waits for the action
    cell.execute(1, intervened=True)
    cell.execute(2)
    cell.observe(3, success=True)
    probe.wait_for(lambda: len(cell.transitions) == 2, message='two transitions')
    first, second = cell.transitions
    assert (first.robot_id, first.episode_id, first.step, first.sequence) == ('cellA', 1, 0, 1)
    assert from_named_arrays(first.observation)['task_state'].tolist() == [1.0, 1.5]
    assert from_named_arrays(first.next_observation)['task_state'].tolist() == [2.0, 2.5]
    assert first.intervened and list(first.intervened_axes) == [True] * 4
    assert list(first.human_action) == pytest.approx([0.1, 0, 0, 1])
    assert (first.reward, first.terminated, first.truncated) == (0.0, False, False)
    assert (second.step, second.sequence, second.reward, second.terminated) == (1, 2, 1.0, True)
    assert not second.intervened and second.weights_version == 3
    assert list(second.executed_action) == pytest.approx([0.2, 0, 0, 1])
    probe.wait_for(lambda: any(e.event == EpisodeEvent.EPISODE_END for e in cell.events),
                   message='the end of the episode')
    end = next(e for e in cell.events if e.event == EpisodeEvent.EPISODE_END)
    assert (end.outcome.value, end.steps, end.intervention_steps, end.episode_return) == (
        EpisodeOutcome.SUCCESS, 2, 1, 1.0)


def test_transitions_name_each_cameras_image_by_its_own_stamp(make_manager, probe):
    # A real cell: the camera's images arrive on their own clock, older than the states.
    manager = make_manager(observation_sources=['task_state', 'success',
                                                'camera/wrist/image_raw'],
                           observation_sync='latest')
    cell = Cell(probe)
    camera = probe.node.create_publisher(Image, 'camera/wrist/image_raw', 10)
    probe.wait_for(lambda: camera.get_subscription_count() == 1, message='the camera reader')
    assert probe.call(StartEpisode, 'start_episode', StartEpisode.Request()).success

    def image(k):
        message = Image(height=2, width=3, encoding='rgb8', step=9, data=bytes(18))
        message.header.stamp = ns_to_stamp(k * 100_000_000 - 30_000_000)  # 30 ms before
        return message

    def newest_image_ns():
        observation = manager._assembler.latest()
        return observation.stamp_of('camera/wrist/image_raw') if observation else None

    for k in (1, 2, 3):
        camera.publish(image(k))
        if k > 1:  # the image before the states that follow it (two writers: no order)
            probe.wait_for(lambda: newest_image_ns() == k * 100_000_000 - 30_000_000,
                           message=f'image {k} at the manager')
        cell.observe(k, success=k == 3)
        if k < 3:
            cell.execute(k)
    probe.wait_for(lambda: len(cell.transitions) == 2, message='two transitions')
    first = cell.transitions[0]
    assert [(ref.name, ref.topic, ref.height, ref.width) for ref in first.images] == [
        ('camera/wrist/image_raw', '/camera/wrist/image_raw', 2, 3)]
    assert first.images[0].stamp == ns_to_stamp(70_000_000)  # the image's, not the state's
    assert first.next_images[0].stamp == ns_to_stamp(170_000_000)


def test_a_compressed_camera_is_named_as_its_raw_image_read_from_its_compressed_topic(
        make_manager, probe):
    # The camera's name is its raw topic, as the residual node and the learner name it; the
    # topic is the one read (a bag of the run has the bytes there), resolved in the namespace.
    import io

    from PIL import Image as PilImage
    from sensor_msgs.msg import CompressedImage
    make_manager(observation_sources=['task_state', 'success', 'camera/wrist/image_raw',
                                      'camera/front/image_raw/compressed'])
    cell = Cell(probe)
    raw = probe.node.create_publisher(Image, 'camera/wrist/image_raw', 10)
    compressed = probe.node.create_publisher(CompressedImage,
                                             'camera/front/image_raw/compressed', 10)
    probe.wait_for(lambda: raw.get_subscription_count() == 1
                   and compressed.get_subscription_count() == 1, message='the camera readers')
    assert probe.call(StartEpisode, 'start_episode', StartEpisode.Request()).success
    for k in (1, 2, 3):
        stamp = ns_to_stamp(k * 100_000_000)
        wrist = Image(height=2, width=3, encoding='rgb8', step=9, data=bytes(18))
        png = io.BytesIO()
        PilImage.fromarray(np.full((4, 5, 3), k, np.uint8)).save(png, format='PNG')
        front = CompressedImage(format='png', data=png.getvalue())
        wrist.header.stamp = front.header.stamp = stamp
        raw.publish(wrist)
        compressed.publish(front)
        cell.observe(k, success=k == 3)  # exact sync: the step once all four are here
        if k < 3:
            cell.execute(k)
    probe.wait_for(lambda: len(cell.transitions) == 2, message='two transitions')
    for transition in cell.transitions:
        for refs, k in ((transition.images, transition.step + 1),
                        (transition.next_images, transition.step + 2)):
            assert sorted((ref.name, ref.topic, ref.stamp.nanosec, ref.height, ref.width,
                           ref.encoding) for ref in refs) == [
                ('camera/front/image_raw', '/camera/front/image_raw/compressed',
                 k * 100_000_000, 4, 5, 'rgb8'),
                ('camera/wrist/image_raw', '/camera/wrist/image_raw', k * 100_000_000, 2, 3,
                 'rgb8')]


def test_time_limit_truncates_and_the_summary_ends_the_run(make_manager, probe, tmp_path):
    summary_file = tmp_path / 'summary.json'
    manager = make_manager(max_episode_steps=2, episodes=1, initial_mode='eval',
                           summary_file=str(summary_file))
    cell = Cell(probe)
    assert probe.call(StartEpisode, 'start_episode', StartEpisode.Request(
        mode=Mode(value=Mode.EVAL))).success
    cell.observe(1)
    cell.execute(1)
    cell.observe(2)
    cell.execute(2)
    cell.observe(3)
    probe.wait_for(lambda: manager.finished, message='the end of the run')  # exits when done
    probe.wait_for(lambda: len(cell.transitions) == 2, message='both transitions')
    assert [t.truncated for t in cell.transitions] == [False, True]
    assert all(t.evaluation for t in cell.transitions)
    summary = json.loads(summary_file.read_text())
    assert (summary['episodes'], summary['successes'], summary['success_rate']) == (1, 0, 0.0)
    assert summary['mean_episode_steps'] == 2.0 and summary['modes'] == ['eval']


def test_a_spoken_command_and_the_corrections_land_in_the_transitions(make_manager, probe):
    manager = make_manager()
    cell = Cell(probe)
    assert probe.call(StartEpisode, 'start_episode', StartEpisode.Request()).success
    said = subprocess.run(['hilresrl', 'say', 'lower the gripper and move left 2 cm'],
                          capture_output=True, text=True, timeout=60)
    assert said.returncode == 0, said.stderr
    assert "'lower the gripper and move left 2 cm' (y +2.0 cm, z -1.0 cm) -> " \
           '/refinement_command: 1 listener(s)' in said.stdout
    probe.wait_for(lambda: manager._refinement_command != '', message='the command')

    cell.observe(1)
    steered = ExecutedAction(executed_action=float32_field([0.1, 0, 0, 1]),
                             base_action=float32_field([0.1, 0, 0, 1]),
                             latent=float32_field([0.5, -0.5, 1.0, 0.0]),
                             latent_condition=float32_field([0, 0.4, -0.2, 0, 0, 0, 0, 1]),
                             latent_weights_version=7)
    steered.header.stamp = ns_to_stamp(100_000_000)
    cell.executed.publish(steered)
    corrected = ExecutedAction(executed_action=float32_field([0.0, 0.3, 0, 1]),
                               base_action=float32_field([0.1, 0, 0, 1]),
                               human_action=float32_field([0.0, 0.3, 0, 1]), intervened=True,
                               intervened_axes=[True] * 4, correction='move left 1 cm')
    corrected.header.stamp = ns_to_stamp(200_000_000)
    cell.observe(2)
    cell.executed.publish(corrected)
    cell.observe(3)
    probe.wait_for(lambda: len(cell.transitions) == 2, message='two transitions')
    first, second = cell.transitions
    assert first.refinement_command == second.refinement_command == \
        'lower the gripper and move left 2 cm'
    assert list(first.latent) == [0.5, -0.5, 1.0, 0.0]
    assert list(first.latent_condition) == pytest.approx([0, 0.4, -0.2, 0, 0, 0, 0, 1])
    assert (first.latent_weights_version, first.correction) == (7, '')
    assert second.correction == 'move left 1 cm' and second.intervened

    cleared = subprocess.run(['hilresrl', 'say', '--clear'], capture_output=True, text=True,
                             timeout=60)
    assert cleared.returncode == 0, cleared.stderr
    probe.wait_for(lambda: manager._refinement_command == '', message='the command withdrawn')


def test_say_refuses_what_the_cell_would_not_understand_and_a_cell_nobody_runs():
    unknown = subprocess.run(['hilresrl', 'say', 'do a little dance'], capture_output=True,
                             text=True, timeout=60)
    assert unknown.returncode == 2
    assert "'do a little dance' is not a command the cell understands" in unknown.stderr
    nobody = subprocess.run(['hilresrl', 'say', 'move up', '--robot', 'robot7', '--wait',
                             '0.5'], capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 1
    assert 'nobody listens on /robot7/refinement_command' in nobody.stderr


# --- faults: e-stop, held steps, a silent learner -----------------------------------------
class Witness:
    """The probe's view: every episode event, mode and transition the manager sends."""

    def __init__(self, probe):
        self.probe = probe
        self.events, self.modes, self.transitions = [], [], []
        node = probe.node
        node.create_subscription(EpisodeEvent, 'episode_events', self.events.append, EVENTS_QOS)
        node.create_subscription(Mode, 'mode', self.modes.append, LATCHED_QOS)
        node.create_subscription(Transition, 'transitions', self.transitions.append,
                                 TRANSITIONS_QOS)
        # What the arbiter would send: e-stop events; and the cell's observations and actions.
        self.arbiter_events = node.create_publisher(EpisodeEvent, 'episode_events', EVENTS_QOS)
        self.states = node.create_publisher(StateVector, 'task_state', 10)
        self.executed = node.create_publisher(ExecutedAction, 'executed_action', COMMAND_QOS)

    def ends(self):
        return [e for e in self.events if e.event == EpisodeEvent.EPISODE_END]

    def starts(self):
        return [e for e in self.events if e.event == EpisodeEvent.EPISODE_START]

    def safety(self, event: int) -> None:
        self.arbiter_events.publish(EpisodeEvent(event=event, detail='e-stop button'))

    def watch(self, seconds: float) -> None:
        """Spin for a while: to show that something does not happen."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.probe.spin_once()


def test_an_e_stop_aborts_the_episode_and_none_starts_until_release(make_manager, probe):
    make_manager(**AUTO)
    witness = Witness(probe)
    probe.wait_for(lambda: witness.starts(), message='the first episode')
    probe.wait_for(lambda: witness.arbiter_events.get_subscription_count() >= 1,
                   message='the manager on episode_events')
    witness.safety(EpisodeEvent.SAFETY_STOP)
    probe.wait_for(lambda: witness.ends(), message='the end of the episode')
    end = witness.ends()[0]
    assert (end.outcome.value, end.detail, end.episode_id) == (EpisodeOutcome.ABORT, 'e-stop', 1)

    witness.watch(1.5)  # fifteen ticks of the manager: none may start an episode
    assert len(witness.starts()) == 1
    refused = probe.call(StartEpisode, 'start_episode', StartEpisode.Request())
    assert not refused.success and 'e-stop' in refused.message

    witness.safety(EpisodeEvent.SAFETY_RELEASE)
    probe.wait_for(lambda: len(witness.starts()) == 2, message='an episode after the release')
    assert witness.starts()[1].episode_id == 2


def test_held_steps_are_marked_in_the_transitions(make_manager, probe):
    manager = make_manager(**AUTO)
    witness = Witness(probe)
    probe.wait_for(lambda: witness.starts() and witness.executed.get_subscription_count() == 1
                   and witness.states.get_subscription_count() == 1, message='an episode')
    for k in (1, 2, 3):
        state = StateVector(data=float32_field([k, 0.5]))
        state.header.stamp = ns_to_stamp(k * 100_000_000)
        witness.states.publish(state)
        if k < 3:
            held = k == 2
            action = ExecutedAction(executed_action=float32_field([0.0 if held else 0.3] * 4),
                                    base_action=float32_field([0.3] * 4), held=held,
                                    hold_reason='watchdog: no fresh proposal' if held else '')
            action.header.stamp = ns_to_stamp(k * 100_000_000)
            witness.executed.publish(action)
    probe.wait_for(lambda: len(witness.transitions) == 2, message='two transitions')
    moved, held = witness.transitions
    assert not moved.held and moved.hold_reason == ''
    assert held.held and held.hold_reason == 'watchdog: no fresh proposal'
    # one id per start of the manager, in every transition
    assert moved.cell_start_id == held.cell_start_id == manager.cell_start_id
    assert len(manager.cell_start_id) == 32


def test_a_silent_learner_aborts_the_training_episode_and_pauses_the_robot(
        make_manager, probe):
    make_manager(**AUTO, wait_for_learner=True, learner_timeout_s=1.0)
    witness = Witness(probe)
    statuses = probe.node.create_publisher(LearnerStatus, 'learner_status', LATCHED_QOS)
    beat = probe.node.create_timer(0.2, lambda: statuses.publish(LearnerStatus(
        state='training')))
    probe.wait_for(lambda: witness.starts(), message='a training episode')
    witness.watch(1.5)  # a learner that keeps talking: nothing happens
    assert not witness.ends() and witness.modes[-1].value == Mode.TRAIN

    beat.cancel()  # the learner dies
    stopped = time.monotonic()
    probe.wait_for(lambda: witness.modes and witness.modes[-1].value == Mode.PAUSE, 15.0,
                   'the robot paused')
    assert time.monotonic() - stopped < 1.0 + 5.0
    probe.wait_for(lambda: witness.ends(), message='the aborted episode')
    end = witness.ends()[0]
    assert (end.outcome.value, end.detail) == (EpisodeOutcome.ABORT, 'learner silent')
    witness.watch(1.0)
    assert len(witness.starts()) == 1

    beat.reset()  # the learner is back: the mode is restored and the cell goes on
    probe.wait_for(lambda: witness.modes[-1].value == Mode.TRAIN, message='mode TRAIN again')
    probe.wait_for(lambda: len(witness.starts()) == 2, message='the next episode')


def test_evaluation_rounds_carry_their_id_and_size_and_training_episodes_zero(
        make_manager, probe):
    make_manager(**AUTO, eval_every=1, eval_episodes=2)
    witness = Witness(probe)
    for count in range(1, 5):  # train, eval, eval, train; then the second round begins
        probe.wait_for(lambda: len(witness.starts()) == count, message=f'episode {count}')
        assert probe.call(EndEpisode, 'end_episode', EndEpisode.Request(
            outcome=EpisodeOutcome(value=EpisodeOutcome.FAILURE))).success
        probe.wait_for(lambda: len(witness.ends()) == count, message=f'end of episode {count}')
    probe.wait_for(lambda: len(witness.starts()) == 5, message='episode 5')

    def rounds(events):
        return [(e.mode.value, e.eval_round, e.eval_round_episodes) for e in events]

    train, evaluation = (Mode.TRAIN, 0, 0), (Mode.EVAL, 1, 2)
    assert rounds(witness.starts()) == [train, evaluation, evaluation, train, (Mode.EVAL, 2, 2)]
    assert rounds(witness.ends()) == [train, evaluation, evaluation, train]


def test_a_lockstep_cell_waits_for_its_share_of_the_learners_own_update_to_data_ratio(
        make_manager, probe):
    # pace 0.5 of a learner that keeps 4 updates per step: 2 per step, 2,000 for 1,000 steps
    # (wait_for_learner: no episode before the learner is heard from at all)
    make_manager(**AUTO, learner_pace=0.5, learner_pace_slack=0, wait_for_learner=True)
    witness = Witness(probe)
    statuses = probe.node.create_publisher(LearnerStatus, 'learner_status', LATCHED_QOS)

    def learner(updates):
        statuses.publish(LearnerStatus(state='training', env_steps=1000, updates=updates,
                                       update_to_data_target=4.0))

    learner(1500)  # enough at 1 update per step, not at 4
    witness.watch(1.5)
    assert not witness.starts()
    learner(2000)
    probe.wait_for(lambda: witness.starts(), message='a training episode once caught up')
    assert witness.starts()[0].mode.value == Mode.TRAIN

"""hilresrl export: transitions and the images they refer to, as npz, value for value."""

import subprocess
import sys

from hilresrl_common.conversions import (array_to_image, float32_field, ns_to_stamp,
                                         to_named_arrays)
from hilresrl_msgs.msg import ImageRef, Transition
from hilresrl_recording.bag import BagWriter
from hilresrl_recording.message_definitions import ros2msg_definition
from hilresrl_recording.run_folders import TRANSITION_TYPE
import numpy as np
import pytest
from rclpy.serialization import serialize_message

CAMERA = '/cell/camera/front/image_raw'


def _recorded_run(path, episodes=3, steps=4):
    """Write a bag as the recorder would: transitions plus the camera images they refer to."""
    rng = np.random.default_rng(7)
    bag = BagWriter(path)
    bag.add_topic('/cell/transitions', TRANSITION_TYPE, ros2msg_definition(TRANSITION_TYPE))
    bag.add_topic(CAMERA, 'sensor_msgs/msg/Image',
                  ros2msg_definition('sensor_msgs/msg/Image'))
    sent = []
    sequence = 0
    for episode in range(1, episodes + 1):
        for step in range(steps):
            sequence += 1
            stamp_ns = 10**18 + sequence * 10**8
            pixels = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
            bag.write(CAMERA, stamp_ns, serialize_message(
                array_to_image(pixels, ns_to_stamp(stamp_ns), 'front')))
            last = step == steps - 1
            message = Transition(
                robot_id='robot1', episode_id=episode, step=step, sequence=sequence,
                observation=to_named_arrays({'task_state': rng.normal(size=3),
                                             'ee_pose': rng.normal(size=7)}),
                next_observation=to_named_arrays({'task_state': rng.normal(size=3),
                                                  'ee_pose': rng.normal(size=7)}),
                images=[ImageRef(name='front', topic=CAMERA, stamp=ns_to_stamp(stamp_ns),
                                 height=6, width=8, encoding='rgb8')],
                instruction='pick up the cube', reward=float(last and episode != 2),
                terminated=last and episode != 2, truncated=last and episode == 2,
                base_action=float32_field(rng.uniform(-1, 1, 4)),
                residual=float32_field(rng.uniform(-1, 1, 4)),
                residual_scale=float32_field([0.5, 0.5, 0.5, 1.0]),
                executed_action=float32_field(rng.uniform(-1, 1, 4)),
                intervened=step == 1, evaluation=episode == 3, weights_version=episode)
            if message.intervened:
                message.human_action = message.executed_action
                message.correction = f'move left {step + episode} cm'
            if episode == 3:  # a person said something, and the actor steered by it
                message.refinement_command = 'lower the gripper'
                message.latent = float32_field(rng.normal(size=4))
                message.latent_condition = float32_field(np.r_[np.zeros(7), 1.0])
                message.latent_weights_version = 5
            message.header.stamp = ns_to_stamp(stamp_ns)
            bag.write('/cell/transitions', stamp_ns + 1, serialize_message(message))
            sent.append((message, pixels))
    bag.close()
    return sent


def _export(*arguments):
    return subprocess.run(['hilresrl', 'export', *map(str, arguments)], capture_output=True,
                          text=True, timeout=120)


def test_npz_export_round_trips_every_value(tmp_path):
    sent = _recorded_run(tmp_path / 'run' / 'bag')
    result = _export(tmp_path / 'run', '--format', 'npz', '--out', tmp_path / 'out.npz')
    assert result.returncode == 0, result.stderr
    assert '12 transitions of 3 episodes (3 by a person, 1 camera(s))' in result.stdout
    arrays = np.load(tmp_path / 'out.npz')  # no pickled objects: allow_pickle stays off
    assert arrays['sequence'].tolist() == list(range(1, 13))
    for index, (message, pixels) in enumerate(sent):
        assert np.array_equal(arrays['images/front'][index], pixels)
        named = {item.name: np.asarray(item.data) for item in message.observation}
        assert np.array_equal(arrays['observation/task_state'][index], named['task_state'])
        assert np.array_equal(arrays['observation/ee_pose'][index], named['ee_pose'])
        following = {item.name: np.asarray(item.data) for item in message.next_observation}
        assert np.array_equal(arrays['next_observation/ee_pose'][index], following['ee_pose'])
        for field in ('base_action', 'residual', 'executed_action', 'residual_scale'):
            assert np.array_equal(arrays[field][index], np.asarray(getattr(message, field)))
        if message.intervened:
            assert np.array_equal(arrays['human_action'][index], message.human_action)
        else:
            assert np.isnan(arrays['human_action'][index]).all()
        assert arrays['reward'][index] == message.reward
        assert arrays['terminated'][index] == message.terminated
        assert arrays['truncated'][index] == message.truncated
        assert arrays['evaluation'][index] == message.evaluation
        assert arrays['weights_version'][index] == message.weights_version
        assert arrays['episode_id'][index] == message.episode_id
        assert arrays['robot_id'][index] == 'robot1'
        assert arrays['instruction'][index] == 'pick up the cube'


def test_only_the_corrections_of_a_person(tmp_path):
    sent = _recorded_run(tmp_path / 'bag')
    result = _export(tmp_path / 'bag', '--only-interventions', '--out', tmp_path / 'human')
    assert result.returncode == 0, result.stderr
    arrays = np.load(tmp_path / 'human.npz')
    corrected = [message for message, _ in sent if message.intervened]
    assert arrays['sequence'].tolist() == [message.sequence for message in corrected]
    assert np.array_equal(arrays['human_action'],
                          np.stack([np.asarray(m.human_action) for m in corrected]))


def test_bags_without_transitions_or_images_are_refused_with_the_reason(tmp_path):
    bag = BagWriter(tmp_path / 'empty')
    bag.add_topic('/chatter', 'std_msgs/msg/String', ros2msg_definition('std_msgs/msg/String'))
    bag.close()
    result = _export(tmp_path / 'empty', '--out', tmp_path / 'x.npz')
    assert result.returncode == 2
    assert 'holds no hilresrl_msgs/msg/Transition topic (it has: /chatter)' in result.stderr
    _recorded_run(tmp_path / 'run')
    stripped = BagWriter(tmp_path / 'stripped')  # the transitions without their camera
    from hilresrl_recording.bag import BagReader
    reader = BagReader(tmp_path / 'run')
    stripped.add_topic('/cell/transitions', TRANSITION_TYPE)
    for topic, stamp, data in reader.messages(['/cell/transitions']):
        stripped.write(topic, stamp, data)
    stripped.close()
    result = _export(tmp_path / 'stripped', '--out', tmp_path / 'y.npz')
    assert result.returncode == 2 and 'record the camera topics too' in result.stderr


@pytest.mark.lerobot
def test_a_bag_exports_as_a_lerobot_dataset_in_lerobots_environment(tmp_path):
    pytest.importorskip('lerobot', reason='LeRobot runs in an environment of its own (Python '
                                          '3.12, its torch): scripts/setup-lerobot.sh makes it, '
                                          'and test/test_lerobot_environment.py runs this test '
                                          'there')
    sent = _recorded_run(tmp_path / 'bag')
    # (the hilresrl command is the suite's environment's: there, the module it runs)
    result = subprocess.run([sys.executable, '-m', 'hilresrl_recording.export',
                             str(tmp_path / 'bag'), '--format', 'lerobot', '--out',
                             str(tmp_path / 'dataset')], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    dataset = LeRobotDataset('hilresrl/run', root=tmp_path / 'dataset')
    assert dataset.num_episodes == 3 and len(dataset) == 12
    for index in (0, 11):  # the first and last step, with their camera images
        message, pixels = sent[index]
        frame = dataset[index]
        assert np.allclose(frame['action'].numpy(), message.executed_action)
        assert np.array_equal((frame['observation.images.front'].numpy() * 255).round()
                              .astype(np.uint8).transpose(1, 2, 0), pixels)


def test_without_lerobot_the_message_names_the_extra(tmp_path):
    try:
        import lerobot  # noqa: F401
        pytest.skip('LeRobot is installed here')
    except ImportError:
        pass
    _recorded_run(tmp_path / 'bag')
    result = _export(tmp_path / 'bag', '--format', 'lerobot', '--out', tmp_path / 'dataset')
    assert result.returncode == 2, result.stderr
    assert '--format lerobot needs LeRobot' in result.stderr
    assert 'scripts/setup-lerobot.sh makes that environment' in result.stderr


def test_the_corrections_dataset_words_each_step_as_instruction_and_command(tmp_path):
    sent = _recorded_run(tmp_path / 'bag')
    result = _export(tmp_path / 'bag', '--corrections', '--out', tmp_path / 'corrections')
    assert result.returncode == 0, result.stderr
    arrays = np.load(tmp_path / 'corrections.npz')
    corrected = [message for message, _ in sent if message.intervened]
    assert arrays['sequence'].tolist() == [message.sequence for message in corrected]
    # the correction a person made wins over the command in force
    assert arrays['prompt'].tolist() == [
        'pick up the cube; move left 2 cm', 'pick up the cube; move left 3 cm',
        'pick up the cube; move left 4 cm']
    assert arrays['correction'].tolist() == ['move left 2 cm', 'move left 3 cm',
                                             'move left 4 cm']
    assert arrays['refinement_command'].tolist() == ['', '', 'lower the gripper']
    assert np.array_equal(arrays['human_action'],
                          np.stack([np.asarray(m.human_action) for m in corrected]))


def test_commands_and_latents_of_every_step_are_exported(tmp_path):
    sent = _recorded_run(tmp_path / 'bag')
    assert _export(tmp_path / 'bag', '--out', tmp_path / 'all').returncode == 0
    arrays = np.load(tmp_path / 'all.npz')
    for index, (message, _) in enumerate(sent):
        command = message.correction or message.refinement_command
        assert arrays['command'][index] == command
        assert arrays['prompt'][index] == ('pick up the cube; ' + command if command
                                           else 'pick up the cube')
        if len(message.latent):
            assert np.array_equal(arrays['latent'][index], np.asarray(message.latent))
            assert arrays['latent_condition'][index].tolist() == [0.0] * 7 + [1.0]
            assert arrays['latent_weights_version'][index] == 5
        else:
            assert np.isnan(arrays['latent'][index]).all()
            assert arrays['latent_condition'][index].tolist() == [0.0] * 8

"""Transitions written as a LeRobotDataset, read back by LeRobot itself (its environment)."""

from hilresrl_recording.export import write_lerobot
import numpy as np
import pytest

pytest.importorskip('lerobot', reason='LeRobot runs in an environment of its own (Python 3.12, '
                                      'its torch): scripts/setup-lerobot.sh makes it, and '
                                      'test/test_lerobot_environment.py runs these tests there')
pytestmark = pytest.mark.lerobot


def _run(steps=(3, 4)):
    """Return a run's transition arrays as the export reads them: episodes of these lengths."""
    rng = np.random.default_rng(0)
    count = sum(steps)
    human = np.full((count, 4), np.nan, np.float32)
    human[[1, 2, 5]] = rng.uniform(-1, 1, (3, 4))
    ends = np.cumsum(steps) - 1
    return {'observation/joint_positions': rng.normal(size=(count, 3)).astype(np.float32),
            'observation/ee_pose': rng.normal(size=(count, 7)).astype(np.float32),
            'executed_action': rng.uniform(-1, 1, (count, 4)).astype(np.float32),
            'base_action': rng.uniform(-1, 1, (count, 4)).astype(np.float32),
            'human_action': human, 'intervened': ~np.isnan(human[:, 0]),
            'reward': np.isin(np.arange(count), ends).astype(np.float32),
            'terminated': np.isin(np.arange(count), ends), 'truncated': np.zeros(count, bool),
            'robot_id': np.array(['robot'] * count),
            'episode_id': np.repeat(np.arange(len(steps)), steps),
            'instruction': np.array(['pick up the cube'] * count),
            'images/camera/front': rng.integers(0, 256, (count, 16, 12, 3), dtype=np.uint8)}


def test_lerobot_reads_back_every_step_of_the_exported_run(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    arrays = _run()
    write_lerobot(arrays, tmp_path / 'dataset', 10.0, 'hilresrl/run')
    dataset = LeRobotDataset('hilresrl/run', root=tmp_path / 'dataset')
    assert dataset.num_episodes == 2 and len(dataset) == 7 and dataset.fps == 10
    state = np.concatenate([arrays['observation/ee_pose'],
                            arrays['observation/joint_positions']], axis=1)  # name order
    for index in range(len(dataset)):
        frame = dataset[index]
        assert int(frame['episode_index']) == arrays['episode_id'][index]
        assert np.allclose(frame['observation.state'].numpy(), state[index])
        assert np.allclose(frame['action'].numpy(), arrays['executed_action'][index])
        assert np.allclose(frame['base_action'].numpy(), arrays['base_action'][index])
        expected_human = np.nan_to_num(arrays['human_action'][index], nan=0.0)
        assert np.allclose(frame['human_action'].numpy(), expected_human)
        assert bool(frame['intervened']) == arrays['intervened'][index]
        assert float(frame['next.reward']) == arrays['reward'][index]
        assert bool(frame['next.done']) == arrays['terminated'][index]
        assert frame['task'] == 'pick up the cube'
        pixels = frame['observation.images.camera_front'].numpy()  # 3 x H x W in [0, 1]
        assert np.allclose(pixels * 255.0, arrays['images/camera/front'][index].transpose(
            2, 0, 1), atol=1e-3)


def test_a_dataset_becomes_demonstrations_step_for_step_with_its_images(tmp_path):
    from hilresrl_common.demonstrations import Demonstrations
    from hilresrl_recording.lerobot_import import main
    arrays = _run()
    write_lerobot(arrays, tmp_path / 'dataset', 10.0, 'hilresrl/run')
    camera = 'image/camera/front/image_raw'
    assert main([str(tmp_path / 'dataset'), '--repo-id', 'hilresrl/run', '--out',
                 str(tmp_path / 'demos.npz'), '--state-name', 'joint_state',
                 '--image', f'observation.images.camera_front={camera}']) == 0
    demos = Demonstrations.load(tmp_path / 'demos.npz')
    assert len(demos) == 7 and demos.episodes == 2 and demos.success_rate == 1.0
    assert demos.names == ['task_state', camera, 'joint_state']
    assert demos.instruction == 'pick up the cube'
    assert np.array_equal(demos.episode_index, arrays['episode_id'])
    state = np.concatenate([arrays['observation/ee_pose'],
                            arrays['observation/joint_positions']], axis=1)
    assert np.allclose(demos.observed['joint_state'], state)
    assert np.allclose(demos.expert_actions, arrays['executed_action'])
    assert np.array_equal(demos.observed[camera], arrays['images/camera/front'])


def test_an_import_names_what_the_dataset_lacks(tmp_path):
    from hilresrl_recording.lerobot_import import demonstrations_from_lerobot, ImportLeRobotError
    write_lerobot(_run(), tmp_path / 'dataset', 10.0, 'hilresrl/run')
    with pytest.raises(ImportLeRobotError, match='has no observation.images.wrist; it has'):
        demonstrations_from_lerobot(tmp_path / 'dataset', 'hilresrl/run',
                                    image_map={'observation.images.wrist': 'image/wrist'})


def test_an_exported_npz_becomes_a_lerobot_dataset_where_ros_is_not(tmp_path, capsys):
    from hilresrl_recording.export import main, write_npz
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    arrays = _run()
    npz = write_npz(arrays, tmp_path / 'run.npz')  # as hilresrl export --format npz writes it
    assert main([str(npz), '--format', 'lerobot', '--out', str(tmp_path / 'dataset'),
                 '--repo-id', 'hilresrl/run']) == 0
    dataset = LeRobotDataset('hilresrl/run', root=tmp_path / 'dataset')
    assert dataset.num_episodes == 2 and len(dataset) == 7
    assert np.allclose(dataset[4]['action'].numpy(), arrays['executed_action'][4])
    assert main([str(npz), '--format', 'npz', '--out', str(tmp_path / 'again.npz')]) == 2
    assert 'give --format lerobot' in capsys.readouterr().err


def test_state_chooses_the_observation_arrays_of_the_dataset_and_their_order(tmp_path, capsys):
    from hilresrl_recording.export import main, write_npz
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    arrays = _run()
    npz = write_npz(arrays, tmp_path / 'run.npz')
    assert main([str(npz), '--format', 'lerobot', '--out', str(tmp_path / 'dataset'),
                 '--state', 'joint_positions', 'ee_pose']) == 0
    dataset = LeRobotDataset('hilresrl/run', root=tmp_path / 'dataset')
    assert dataset.meta.features['observation.state']['names'] == [
        *(f'joint_positions_{index}' for index in range(3)),
        *(f'ee_pose_{index}' for index in range(7))]
    for step in (0, 6):
        assert np.allclose(dataset[step]['observation.state'].numpy(), np.concatenate(
            [arrays['observation/joint_positions'][step], arrays['observation/ee_pose'][step]]))
    assert main([str(npz), '--format', 'lerobot', '--out', str(tmp_path / 'other'),
                 '--state', 'ee_pose', 'wrench']) == 2
    assert 'no observation wrench in the run: it recorded ee_pose, joint_positions' in \
        capsys.readouterr().err
    assert main([str(npz), '--out', str(tmp_path / 'x.npz'), '--state', 'ee_pose']) == 2
    assert '--state chooses the state of a LeRobotDataset' in capsys.readouterr().err

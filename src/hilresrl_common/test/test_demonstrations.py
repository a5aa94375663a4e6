"""The demonstrations file format: what the sensors gave round-trips, old files load as before."""

import zipfile

from hilresrl_common.demonstrations import Demonstrations, FORMAT_VERSION
import numpy as np
import pytest

CAMERA = 'image/camera/front/image_raw'


def _demonstrations(**overrides) -> Demonstrations:
    rng = np.random.default_rng(0)
    values = {'observations': rng.normal(size=(5, 3)), 'actions': rng.uniform(-1, 1, (5, 4)),
              'expert_actions': rng.uniform(-1, 1, (5, 4)), 'episode_index': [0, 0, 0, 1, 1],
              'episode_success': [True, False], 'task': 'pick-place-v3', 'noise_std': 0.3,
              'seed': 7}
    values.update(overrides)
    return Demonstrations(**values)


def _observed():
    rng = np.random.default_rng(1)
    return {'ee_pose': rng.normal(size=(5, 7)), 'joint_positions': rng.normal(size=(5, 9)),
            'wrench': rng.normal(size=(5, 6)),
            CAMERA: rng.integers(0, 256, (5, 12, 10, 3), np.uint8)}


def test_what_the_sensors_gave_round_trips(tmp_path):
    demos = _demonstrations(observed=_observed(), instruction='pick up the puck')
    loaded = Demonstrations.load(demos.save(tmp_path / 'demos.npz'))
    assert sorted(loaded.observed) == sorted(_observed())
    for name, values in _observed().items():
        assert loaded.observed[name].dtype == (np.uint8 if name == CAMERA else np.float32)
        np.testing.assert_array_equal(loaded.observed[name], values.astype(
            loaded.observed[name].dtype))
    assert loaded.instruction == 'pick up the puck'
    np.testing.assert_array_equal(loaded.observations, demos.observations)
    assert loaded.names == ['task_state', 'ee_pose', CAMERA, 'joint_positions', 'wrench']
    step = loaded.step_arrays(3)
    np.testing.assert_array_equal(step['task_state'], demos.observations[3])
    np.testing.assert_array_equal(step[CAMERA], _observed()[CAMERA][3])
    with np.load(tmp_path / 'demos.npz') as stored:  # under clear keys, with a version
        assert int(stored['format_version']) == FORMAT_VERSION
        assert f'observed/{CAMERA}' in stored.files and 'observed/ee_pose' in stored.files


def test_the_first_episodes_keep_their_sensor_arrays():
    first = _demonstrations(observed=_observed()).first_episodes(1)
    assert len(first) == 3
    np.testing.assert_array_equal(first.observed[CAMERA], _observed()[CAMERA][:3])


def _version_one(path, demos: Demonstrations) -> None:
    """Write a file as hilresrl wrote them before format_version: the task state alone."""
    np.savez_compressed(
        path, format=np.array('hilresrl-demonstrations'), task=np.array(demos.task),
        noise_std=np.array(demos.noise_std), seed=np.array(demos.seed),
        **{name: getattr(demos, name) for name in (
            'observations', 'actions', 'expert_actions', 'episode_index', 'episode_success')})


def test_a_file_of_the_first_format_loads_as_before(tmp_path):
    demos = _demonstrations()
    _version_one(tmp_path / 'old.npz', demos)
    loaded = Demonstrations.load(tmp_path / 'old.npz')
    for name in ('observations', 'actions', 'expert_actions', 'episode_index',
                 'episode_success'):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(demos, name))
    assert (loaded.task, loaded.noise_std, loaded.seed) == ('pick-place-v3', 0.3, 7)
    assert loaded.observed == {} and loaded.instruction == ''
    assert loaded.names == ['task_state']
    loaded.check_inputs(['task_state'])


def test_inputs_the_steps_lack_are_named(tmp_path):
    old = tmp_path / 'old.npz'
    _version_one(old, _demonstrations())
    with pytest.raises(ValueError, match=r'hold no ee_pose, image/camera/front/image_raw; they '
                                         r'hold task_state$'):
        Demonstrations.load(old).check_inputs(['ee_pose', 'task_state', CAMERA])
    with pytest.raises(ValueError, match='hold no instruction'):
        Demonstrations.load(old).check_inputs(['instruction'])
    sensed = _demonstrations(observed=_observed(), instruction='pick')
    sensed.check_inputs(['ee_pose', 'wrench', CAMERA, 'instruction'])
    with pytest.raises(ValueError, match=r'hold no joint_velocities; they hold task_state, '
                                         r'ee_pose, image/camera/front/image_raw, '
                                         r'joint_positions, wrench, instruction'):
        sensed.check_inputs(['joint_velocities', 'wrench'])


def test_a_newer_format_is_refused_saying_so(tmp_path):
    path = _demonstrations().save(tmp_path / 'demos.npz')
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    np.savez(path, **dict(arrays, format_version=np.array(FORMAT_VERSION + 1)))
    with pytest.raises(ValueError, match=f'format {FORMAT_VERSION + 1}; this hilresrl reads up '
                                         f'to {FORMAT_VERSION}'):
        Demonstrations.load(path)
    assert zipfile.is_zipfile(path)


@pytest.mark.parametrize('name, values, reason', [
    (CAMERA, np.zeros((5, 4, 4, 3), np.float32), r'\(5, height, width, 3\) uint8'),
    (CAMERA, np.zeros((5, 4, 4), np.uint8), r'\(5, height, width, 3\) uint8'),
    ('ee_pose', np.zeros((4, 7)), 'has 4 steps, not 5'),
    ('task_state', np.zeros((5, 3)), 'the task state is observations')])
def test_malformed_sensor_arrays_are_refused(name, values, reason):
    with pytest.raises(ValueError, match=reason):
        _demonstrations(observed={name: values})

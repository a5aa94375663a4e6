"""Tests of demonstration collection and of its .npz files."""

from hilresrl_sim.demos import collect_demonstrations, Demonstrations
from hilresrl_sim.experts import make_expert
import numpy as np
import pytest

TASK = 'pick-place-v3'


@pytest.fixture(scope='module')
def demos():
    return collect_demonstrations(TASK, episodes=3, noise_std=0.2, seed=4, max_steps=30)


def test_shapes_and_episode_bookkeeping(demos):
    assert demos.observations.shape == (90, 39) and demos.observations.dtype == np.float32
    assert demos.actions.shape == demos.expert_actions.shape == (90, 4)
    np.testing.assert_array_equal(demos.episode_index, np.repeat([0, 1, 2], 30))
    # 30 steps are too few for the expert: every episode runs to its step limit.
    np.testing.assert_array_equal(demos.episode_success, [False, False, False])
    assert (demos.task, demos.noise_std, demos.seed) == (TASK, 0.2, 4)


def test_labels_are_the_experts_actions_on_the_recorded_states(demos):
    expert = make_expert(TASK)
    labels = np.array([expert(state) for state in demos.observations])
    np.testing.assert_array_equal(demos.expert_actions, labels)


def test_executed_actions_are_the_labels_plus_noise_clipped(demos):
    difference = demos.actions - demos.expert_actions
    assert np.all(np.abs(demos.actions) <= 1.0)
    unclipped = np.abs(demos.actions) < 1.0
    assert np.std(difference[unclipped]) == pytest.approx(0.2, rel=0.25)
    assert np.count_nonzero(difference) > 0.9 * difference.size


def test_without_noise_the_expert_executes_its_labels():
    demos = collect_demonstrations(TASK, episodes=1, noise_std=0.0, seed=1)
    np.testing.assert_array_equal(demos.actions, demos.expert_actions)
    assert demos.episode_success.tolist() == [True]


def test_the_first_episodes_of_a_collection_equal_a_smaller_collection(demos):
    smaller = collect_demonstrations(TASK, episodes=2, noise_std=0.2, seed=4, max_steps=30)
    prefix = demos.first_episodes(2)
    for name in ('observations', 'actions', 'expert_actions', 'episode_index',
                 'episode_success'):
        np.testing.assert_array_equal(getattr(prefix, name), getattr(smaller, name))


def test_save_load_round_trip(demos, tmp_path):
    path = demos.save(tmp_path / 'demos.npz')
    loaded = Demonstrations.load(path)
    for name in ('observations', 'actions', 'expert_actions', 'episode_index',
                 'episode_success'):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(demos, name))
        assert getattr(loaded, name).dtype == getattr(demos, name).dtype
    assert (loaded.task, loaded.noise_std, loaded.seed) == (TASK, 0.2, 4)
    with np.load(path, allow_pickle=False) as stored:  # plain arrays only
        assert set(stored.files) >= {'observations', 'actions', 'format'}


def test_load_refuses_other_files(tmp_path):
    other = tmp_path / 'other.npz'
    np.savez(other, observations=np.zeros((1, 3)))
    with pytest.raises(ValueError, match='not a file of hilresrl demonstrations'):
        Demonstrations.load(other)
    corrupt = tmp_path / 'corrupt.npz'
    corrupt.write_bytes(b'PK\x03\x04 not really a zip')
    with pytest.raises(ValueError, match='corrupt.npz'):
        Demonstrations.load(corrupt)


def test_inconsistent_arrays_are_refused():
    with pytest.raises(ValueError, match='actions'):
        Demonstrations(np.zeros((3, 2)), np.zeros((2, 4)), np.zeros((3, 4)),
                       np.zeros(3), np.zeros(1))


PIXEL_INPUTS = ['ee_pose', 'joint_positions', 'joint_velocities', 'wrench']
CAMERAS = ['corner', 'gripperPOV']


@pytest.fixture(scope='module')
def sensed_demos(demos):
    return collect_demonstrations(TASK, episodes=2, noise_std=0.2, seed=4, max_steps=30,
                                  cameras=CAMERAS, image_size=32)


def test_with_cameras_the_same_episodes_hold_what_the_residual_sees(demos, sensed_demos):
    from hilresrl_common.instruction_features import policy_vector
    from hilresrl_sim.demos import camera_input, episode_seed
    from hilresrl_sim.headless_cell import HeadlessCell, SensorInputs
    prefix = demos.first_episodes(2)
    for name in ('observations', 'actions', 'expert_actions', 'episode_index'):
        np.testing.assert_array_equal(getattr(sensed_demos, name), getattr(prefix, name))
    images = [camera_input(camera) for camera in CAMERAS]
    assert sorted(sensed_demos.observed) == sorted(PIXEL_INPUTS + images)
    assert sensed_demos.observed[images[0]].shape == (60, 32, 32, 3)
    assert sensed_demos.instruction == 'pick up the puck and place it at the goal'
    # the first step of episode 1 as the headless benchmark's pixel cell senses it
    cell = HeadlessCell(TASK, None, seed=4, sensors=SensorInputs(
        PIXEL_INPUTS, tuple(zip(images, CAMERAS)), 32))
    try:
        cell.task.reset(seed=episode_seed(4, 1))
        vector, frames = cell.sensed()
    finally:
        cell.close()
    step = sensed_demos.step_arrays(30)
    np.testing.assert_array_equal(policy_vector(step, PIXEL_INPUTS, ''), vector)
    for name in images:
        np.testing.assert_array_equal(step[name].transpose(2, 0, 1), frames[name])


def test_a_base_policys_demonstrations_are_recorded_again_with_cameras(demos, tmp_path):
    from hilresrl_sim.demos import record_with_sensors
    state = demos.first_episodes(1).save(tmp_path / 'demonstrations.npz')
    written = record_with_sensors(state, tmp_path / 'pixels.npz', ['corner'], 16)
    loaded = Demonstrations.load(written)
    np.testing.assert_array_equal(loaded.actions, demos.first_episodes(1).actions)
    assert loaded.observed['image/camera/corner/image_raw'].shape == (30, 16, 16, 3)
    other = Demonstrations(demos.observations[:30], demos.actions[:30] * 0.5,
                           demos.expert_actions[:30], demos.episode_index[:30],
                           demos.episode_success[:1], TASK, 0.2, 4)
    with pytest.raises(ValueError, match='gave other episodes'):
        record_with_sensors(other.save(tmp_path / 'other.npz'), tmp_path / 'x.npz',
                            ['corner'], 16)

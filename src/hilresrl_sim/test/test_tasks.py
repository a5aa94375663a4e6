"""Tests of the simulated tasks: seeding, actions, state, pose, images (both task families)."""

from hilresrl_sim.experts import make_expert
from hilresrl_sim.tasks import make_task, SimTask
import numpy as np
import pytest

# name, index of the object position in the task state, index of the hand position,
# (steps to come up to speed, steps measured) for the translation check, a camera
FAMILIES = {
    'pick-place-v3': (slice(4, 7), slice(0, 3), (15, 5), 'corner'),
    'PandaPickCube': (slice(18, 21), slice(15, 18), (2, 2), 'front'),
}


@pytest.fixture(scope='module', params=sorted(FAMILIES))
def task(request):
    with make_task(request.param, seed=0) as made:
        yield made


def test_attributes_describe_the_task(task):
    assert isinstance(task, SimTask)
    assert task.action_dim == 4
    assert task.action_names == ('x', 'y', 'z', 'gripper')
    assert task.task_state().shape == (task.state_dim,)
    assert task.task_state().dtype == np.float32
    expected = {'pick-place-v3': (39, 0.0125, 0.01, 80),
                'PandaPickCube': (21, 0.1, 0.02, 40)}[task.name]
    assert (task.state_dim, task.control_period_s, task.translation_step_m,
            task.max_episode_steps) == pytest.approx(expected)
    assert task.instruction
    positions, velocities = task.joint_state()
    assert positions.shape == velocities.shape == (len(task.joint_names),)
    assert task.cameras == ()
    assert task.images() == {}


def test_seeded_reset_is_reproducible(task):
    task.reset(seed=7)
    first = task.task_state()
    first_joints = task.joint_state()[0]
    task.step(np.array([1.0, -1.0, 0.5, 1.0]))
    task.reset(seed=7)
    np.testing.assert_array_equal(task.task_state(), first)
    np.testing.assert_array_equal(task.joint_state()[0], first_joints)


def test_a_fresh_task_starts_as_a_reset_with_its_seed(task):
    task.reset(seed=3)
    with make_task(task.name, seed=3) as fresh:
        np.testing.assert_array_equal(fresh.task_state(), task.task_state())


def test_resets_vary_the_object_placement(task):
    objects, _, _, _ = FAMILIES[task.name]
    task.reset(seed=11)
    placements = [task.task_state()[objects]]
    for _ in range(3):
        task.reset()
        placements.append(task.task_state()[objects])
    for index in range(1, len(placements)):
        assert np.linalg.norm(placements[index][:2] - placements[index - 1][:2]) > 1e-3


def test_reset_leaves_numpy_global_generator_alone(task):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    task.reset(seed=5)
    task.reset()
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_plus_x_moves_the_hand_plus_x_by_the_translation_step(task):
    _, _, (warm_up, measured), _ = FAMILIES[task.name]
    task.reset(seed=1)
    push_x = np.array([1.0, 0.0, 0.0, 0.0])
    for _ in range(warm_up):  # the hand follows its target with a lag
        task.step(push_x)
    start = task.ee_pose()[0]
    for _ in range(measured):
        task.step(push_x)
    moved = (task.ee_pose()[0] - start) / measured
    assert moved[0] == pytest.approx(task.translation_step_m, rel=0.15)
    assert np.all(np.abs(moved[1:]) < 0.15 * task.translation_step_m)


def test_actions_are_clipped_to_one(task):
    task.reset(seed=2)
    task.step(np.array([5.0, 0.0, -3.0, 2.0]))
    clipped = task.task_state()
    task.reset(seed=2)
    task.step(np.array([1.0, 0.0, -1.0, 1.0]))
    np.testing.assert_array_equal(task.task_state(), clipped)


@pytest.mark.parametrize('action', [
    [np.nan, 0.0, 0.0, 0.0], [0.0, np.inf, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0] * 5,
    [[0.0, 0.0, 0.0, 0.0]]])
def test_bad_actions_are_rejected_and_change_nothing(task, action):
    task.reset(seed=4)
    before = task.task_state()
    with pytest.raises(ValueError):
        task.step(np.array(action))
    np.testing.assert_array_equal(task.task_state(), before)


def test_ee_pose_is_the_hand_in_the_task_state_with_a_unit_quaternion(task):
    _, hand, _, _ = FAMILIES[task.name]
    task.reset(seed=6)
    task.step(np.array([0.3, 0.3, 0.3, 0.0]))
    position, quaternion = task.ee_pose()
    assert position.shape == (3,) and quaternion.shape == (4,)
    np.testing.assert_allclose(position, task.task_state()[hand], atol=1e-6)
    assert np.linalg.norm(quaternion) == pytest.approx(1.0, abs=1e-9)


def test_expert_action_is_the_expert_of_the_task_state(task):
    task.reset(seed=8)
    action = task.expert_action()
    assert action.dtype == np.float32 and action.shape == (4,)
    np.testing.assert_array_equal(action, make_expert(task.name)(task.task_state()))


@pytest.mark.parametrize('name', sorted(FAMILIES))
def test_images_have_the_requested_size(name):
    camera = FAMILIES[name][3]
    with make_task(name, seed=0, cameras=(camera,), image_size=40) as task:
        images = task.images()
        assert list(images) == [camera]
        assert images[camera].shape == (40, 40, 3)
        assert images[camera].dtype == np.uint8
        assert images[camera].std() > 5  # a scene, not a blank buffer


def test_unknown_camera_lists_the_valid_ones():
    with pytest.raises(ValueError, match='corner.*gripperPOV'):
        make_task('pick-place-v3', cameras=('no_such_camera',))


def test_unknown_task_names_valid_examples():
    with pytest.raises(ValueError, match='pick-place-v3.*PandaPickCube'):
        make_task('pick-place-v9')


def test_the_wrist_reads_no_wrench_in_free_space_and_the_table_pushing_up(task):
    task.reset(seed=0)
    for _ in range(3):  # up and away from everything
        task.step(np.array([0.0, 0.0, 1.0, -1.0]))
    free = task.wrench()
    assert free.shape == (6,) and np.allclose(free, 0.0)
    if task.name != 'PandaPickCube':
        return  # the Sawyer's hand is held above the table by its workspace limits
    for _ in range(60):  # down onto the table
        task.step(np.array([0.0, 0.0, -1.0, -1.0]))
    force = task.wrench()[:3]
    assert force[2] > 1.0 and force[2] > 2 * abs(force[:2]).max()  # the table pushes up

"""The headless control loop: the nodes' cores in one process, for benchmarks (no ROS)."""

from hilresrl_policy.adapters import BasePolicy
from hilresrl_sim.experts import make_expert
from hilresrl_sim.headless_cell import HeadlessCell, SensorInputs
from hilresrl_sim.operator_model import OperatorConfig
from hilresrl_sim.scripted_policy import make_scripted_policy
import numpy as np
import pytest


class StandStill(BasePolicy):
    """A base policy that never moves: the simulated operator has to do everything."""

    source_model, action_dim, horizon = 'still', 4, 1

    def act(self, observation):
        return np.zeros((1, 4), dtype=np.float32)


class ExpertVariant(BasePolicy):
    """The task's scripted expert, changed by act(); ``count`` restarts with each episode."""

    action_dim, horizon = 4, 1

    def __init__(self, task):
        self.source_model = type(self).__name__
        self.expert = make_expert(task)
        self.count = 0

    def reset(self, instruction=''):
        self.count = 0


class Detour(ExpertVariant):
    """The expert, after a detour of its own: up, sideways and wide open for 8 steps."""

    def act(self, observation):
        self.count += 1
        if self.count <= 8:
            return np.array([[0.0, -1.0, 1.0, -1.0]], np.float32)
        return self.expert(observation['task_state'])[None]


class LetsGo(ExpertVariant):
    """The expert, but it opens the gripper 8 steps into carrying the object: it drops it."""

    def act(self, observation):
        action = self.expert(observation['task_state']).copy()
        self.count += int(action[3] > 0.5)  # steps closed
        if self.count > 8:
            action[3] = -1.0
        return action[None]


class Creeps(ExpertVariant):
    """The expert at a third of its speed: always getting nearer, never there in time."""

    def act(self, observation):
        action = self.expert(observation['task_state']).copy()
        action[:3] /= 3.0
        return action[None]


def test_the_scripted_base_policy_solves_the_task_alone():
    cell = HeadlessCell('pick-place-v3', make_scripted_policy({'task': 'pick-place-v3'}))
    try:
        results = [cell.run_episode(seed) for seed in (1, 2)]
    finally:
        cell.close()
    assert all(r.success and r.intervention_steps == 0 for r in results)


def test_the_operator_takes_over_a_policy_that_does_nothing():
    cell = HeadlessCell('pick-place-v3', StandStill(), OperatorConfig(), quiet_period_s=0.2)
    try:
        result = cell.run_episode(3, keep_transitions=True)
        alone = cell.run_episode(3, allow_intervention=False)
    finally:
        cell.close()
    assert result.intervention_steps > result.steps / 2 and result.success
    assert result.steps / 2 < result.human_steps <= result.intervention_steps
    assert not alone.success and alone.intervention_steps == alone.human_steps == 0
    corrected = [t for t in result.transitions if t.human_action is not None]
    assert corrected and all(np.array_equal(t.executed_action, t.human_action.astype(np.float32))
                             for t in corrected)
    assert result.transitions[-1].terminated and result.transitions[-1].reward == 1.0
    assert len(result.transitions) == result.steps


def test_the_operator_leaves_alone_a_policy_that_succeeds_off_the_experts_path():
    cell = HeadlessCell('pick-place-v3', Detour('pick-place-v3'), OperatorConfig())
    expert = make_expert('pick-place-v3')
    try:
        for seed in (1, 2):
            alone = cell.run_episode(seed, allow_intervention=False, keep_transitions=True)
            watched = cell.run_episode(seed)
            # It succeeds on its own, far from the expert's path (the old operator took over
            # after 4 steps 0.3 off it) ...
            off_path = [np.max(np.abs(t.executed_action[:3] - expert(t.observation)[:3])) > 0.5
                        for t in alone.transitions]
            assert alone.success and sum(off_path) >= 8
            # ... and the person lets it.
            assert watched.success and watched.human_steps == watched.intervention_steps == 0
    finally:
        cell.close()


def test_the_operator_steps_in_before_a_policy_drops_the_object():
    config = OperatorConfig()
    cell = HeadlessCell('pick-place-v3', LetsGo('pick-place-v3'), config)
    try:
        for seed in (1, 2):
            alone = cell.run_episode(seed, allow_intervention=False)
            watched = cell.run_episode(seed, keep_transitions=True)
            assert not alone.success and watched.success
            grips = [t.base_action[3] for t in watched.transitions]
            lets_go = next(k for k in range(1, len(grips)) if grips[k] < 0 < grips[k - 1])
            first_hand = next(k for k, t in enumerate(watched.transitions)
                              if t.human_action is not None)
            # It sees the proposal a step later, waits out its patience, then its reaction.
            assert lets_go < first_hand <= (lets_go + 1 + config.gripper_patience_steps
                                            + config.reaction_delay_steps)
            assert watched.human_steps < watched.steps / 2
    finally:
        cell.close()


def test_the_operator_steps_in_when_a_policy_is_too_slow_to_finish_in_time():
    # Plate-slide's base policies fail this way: the puck keeps moving, ever more slowly.
    cell = HeadlessCell('plate-slide-v3', Creeps('plate-slide-v3'), OperatorConfig())
    without_pace = HeadlessCell('plate-slide-v3', Creeps('plate-slide-v3'),
                                OperatorConfig(late_factor=0.0))
    try:
        assert cell.operator.pace is not None and without_pace.operator.pace is None
        for seed in (1, 2):
            alone = cell.run_episode(seed, allow_intervention=False)
            watched = cell.run_episode(seed, keep_transitions=True)
            unjudged = without_pace.run_episode(seed)
            assert not alone.success
            # Nothing else fires on a policy that keeps getting nearer: only the pace does, in
            # the first half of the episode, while there is time to show how it is done.
            assert unjudged.human_steps == 0 and not unjudged.success
            first_hand = next(k for k, t in enumerate(watched.transitions)
                              if t.human_action is not None)
            assert first_hand < watched.steps / 2 and watched.human_steps > 10
    finally:
        cell.close()
        without_pace.close()


def test_an_episode_that_ends_mid_correction_does_not_start_the_next_under_the_person():
    cell = HeadlessCell('pick-place-v3', StandStill(), OperatorConfig(), max_episode_steps=30)
    results, resets = [], []
    arbitrate, reset = cell.arbiter.arbitrate, cell.arbiter.reset

    def spy_arbitrate(*args, **kwargs):
        results.append(arbitrate(*args, **kwargs))
        return results[-1]

    def spy_reset():
        resets.append(len(results))
        return reset()

    cell.arbiter.arbitrate, cell.arbiter.reset = spy_arbitrate, spy_reset
    try:
        first = cell.run_episode(3)
        assert cell.operator.correcting and results[-1].intervened  # cut off mid-correction
        second = cell.run_episode(3, keep_transitions=True)
    finally:
        cell.close()
    assert resets == [0, 30] and first.human_steps > 0
    # The next episode starts with the policy in control: no segment, no quiet period.
    assert not results[30].active and second.transitions[0].human_action is None
    assert second.human_steps <= second.intervention_steps < second.steps


def test_a_residual_function_changes_what_is_executed():
    cell = HeadlessCell('pick-place-v3', StandStill(), residual_scale=(0.5,))
    try:
        result = cell.run_episode(4, residual=lambda obs, base, explore: np.ones(4, np.float32),
                                  keep_transitions=True)
    finally:
        cell.close()
    assert np.allclose(result.transitions[0].executed_action, [0.5, 0.5, 0.5, 0.5])


def test_a_cell_with_sensors_shows_the_residual_its_sensors_and_cameras_not_the_task_state():
    sensors = SensorInputs(('ee_pose', 'joint_positions', 'wrench'),
                           (('image/camera/corner/image_raw', 'corner'),
                            ('image/camera/gripperPOV/image_raw', 'gripperPOV')), 32)
    cell = HeadlessCell('pick-place-v3', make_scripted_policy({'task': 'pick-place-v3'}),
                        sensors=sensors)
    seen = []

    def residual(observation, base, explore, frames):
        seen.append((observation, frames))
        return np.zeros(4, np.float32)

    try:
        result = cell.run_episode(5, residual=residual, keep_transitions=True)
        task = cell.task
        position, orientation = task.ee_pose()
        positions, _ = task.joint_state()
        last = result.transitions[-1]
        # The last next state is the one the cell is in now: pose, joints, wrench, in order.
        assert np.allclose(last.next_observation, np.concatenate(
            [position, orientation, positions, task.wrench()]), atol=1e-6)
        rendered = task.images()
    finally:
        cell.close()
    assert result.success and len(seen) == result.steps
    assert all(observation.shape == (7 + positions.size + 6,) for observation, _ in seen)
    for step, (observation, frames) in zip(result.transitions, seen):
        assert step.observation is observation and step.frames is frames
        assert sorted(frames) == sorted(name for name, _ in sensors.cameras)
        assert all(frame.shape == (3, 32, 32) and frame.dtype == np.uint8
                   for frame in frames.values())
    # Each step's next frames are the following step's frames; the last ones the scene now.
    for step, following in zip(result.transitions, result.transitions[1:]):
        assert step.next_frames is following.frames
    assert np.array_equal(last.next_frames['image/camera/corner/image_raw'],
                          rendered['corner'].transpose(2, 0, 1))
    assert not np.array_equal(seen[0][1]['image/camera/corner/image_raw'],
                              last.next_frames['image/camera/corner/image_raw'])
    with pytest.raises(ValueError, match='the simulated cell gives ee_pose'):
        SensorInputs(('task_state',))


def test_chained_sub_tasks_move_the_goal_and_count_each_one_done():
    cell = HeadlessCell('pick-place-v3', make_scripted_policy({'task': 'pick-place-v3'}))
    try:
        chained = cell.run_episode(3, subtasks=5, keep_transitions=True)
        single = cell.run_episode(3)
        stuck = HeadlessCell('pick-place-v3', StandStill()).run_episode(3, subtasks=5)
    finally:
        cell.close()
    assert chained.success and chained.subtasks_done == 5
    assert single.success and single.subtasks_done == 1
    assert chained.steps > single.steps
    # Four goal moves: the observed goal (the state's last 3 values) changes four times.
    goals = np.array([step.observation[-3:] for step in chained.transitions])
    moves = np.flatnonzero(np.linalg.norm(np.diff(goals, axis=0), axis=1) > 1e-6)
    assert len(moves) == 4
    # For learning each sub-task is an episode: the step that completes it has reward 1, is
    # terminal and ends on its own goal; the next step sees the new one.
    ends = [index for index, t in enumerate(chained.transitions) if t.terminated]
    assert ends == list(moves) + [len(chained.transitions) - 1]
    assert all(chained.transitions[index].reward == 1.0 for index in ends)
    assert sum(t.reward for t in chained.transitions) == 5.0
    for index in ends[:-1]:
        assert np.array_equal(chained.transitions[index].next_observation[-3:], goals[index])
        assert not np.array_equal(goals[index + 1], goals[index])
    # A policy that never reaches the first goal gets one sub-task's time limit, not five.
    assert (stuck.success, stuck.subtasks_done, stuck.steps) == (False, 0, 80)


def test_retarget_moves_the_goal_within_its_range_and_away_from_the_last():
    from hilresrl_sim.tasks import make_task
    task = make_task('pick-place-v3', 0)
    try:
        rng = np.random.default_rng(0)
        space = task._env._random_reset_space
        for _ in range(5):
            before = task.task_state()[-3:].copy()
            goal = task.retarget(rng)
            assert np.all(goal >= space.low[-3:]) and np.all(goal <= space.high[-3:])
            assert np.linalg.norm(goal - before) >= 0.1
            assert task.task_state()[-3:] == pytest.approx(goal, abs=1e-6)
            assert not task.success()
    finally:
        task.close()


def test_the_headless_cell_takes_the_arbiter_and_residual_nodes_defaults():
    from hilresrl_common.parameters import defaults
    from hilresrl_common.residual_contract import RESIDUAL_SCALE
    from hilresrl_teleop.arbiter_parameters import PARAMETERS as ARBITER
    arbiter = defaults(ARBITER)
    cell = HeadlessCell('pick-place-v3', StandStill())
    try:
        assert cell.residual_scale.tolist() == RESIDUAL_SCALE.default * 4
        assert cell.arbiter.quiet_period_s == arbiter['quiet_period_s']
        assert cell.arbiter.per_axis == arbiter['per_axis']
        assert cell.control_period_s == arbiter['control_period_s']
        config = cell.mapper.config
        assert config.deadband == arbiter['spacemouse.deadband']
        assert list(config.channels) == arbiter['spacemouse.channels']
        assert list(config.scales) == arbiter['spacemouse.scales']
    finally:
        cell.close()


def _learning_benchmark():
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[3] / 'benchmarks' / 'learning.py'
    if not path.is_file():
        pytest.skip('benchmarks/learning.py is not in this tree')
    spec = importlib.util.spec_from_file_location('learning_benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_learning_benchmark_defaults_are_the_nodes_table_defaults(tmp_path, monkeypatch):
    from hilresrl_common.parameters import defaults
    from hilresrl_common.residual_contract import LATENT_SCALE
    from hilresrl_learner.learner_parameters import config_settings
    from hilresrl_learner.learner_parameters import PARAMETERS as LEARNER
    from hilresrl_policy.base_policy_parameters import PARAMETERS as BASE_POLICY
    from hilresrl_policy.residual_policy_parameters import PARAMETERS as RESIDUAL_POLICY
    from hilresrl_sim.simulated_operator_parameters import operator_config
    from hilresrl_sim.simulated_operator_parameters import PARAMETERS as OPERATOR
    learning = _learning_benchmark()
    real = learning.cell_settings('pick-place-v3')
    # A profile that sets nothing: every value is the nodes' own default.
    (tmp_path / 'config' / 'cells').mkdir(parents=True)
    (tmp_path / 'config' / 'cells' / 'sim.yaml').write_text('/**:\n  ros__parameters: {}\n')
    monkeypatch.setattr(learning, 'REPO', tmp_path)
    settings = learning.cell_settings('pick-place-v3')
    learner = defaults(LEARNER)
    assert settings['config'] == config_settings(learner)
    assert settings['update_to_data'] == learner['update_to_data']
    assert settings['intervention_fraction'] == learner['intervention_fraction']
    assert settings['latent_actor_lr'] == learner['latent.actor_lr']
    assert settings['latent_scale'] == LATENT_SCALE.default
    assert settings['exploration_std'] == defaults(RESIDUAL_POLICY)['exploration_std']
    assert settings['latent_exploration_std'] == defaults(BASE_POLICY)['latent_exploration_std']
    assert OperatorConfig(**settings['operator']) == operator_config(defaults(OPERATOR))
    # The cell profile's values win over the defaults, as they do for the nodes.
    assert real['config']['residual_scale'] == (0.5, 0.5, 0.5, 1.0)
    assert real['operator']['reaction_delay_steps'] == 1
    assert real['operator']['stuck_steps'] == defaults(OPERATOR)['operator.stuck_steps']


def test_the_learning_benchmarks_pixel_method_sees_the_pixel_profiles_sensors():
    learning = _learning_benchmark()
    for task, cameras in (('pick-place-v3', ('corner', 'gripperPOV')),
                          ('PandaPickCube', ('front', 'handcam_rgb'))):
        settings = learning.cell_settings(task, pixels=True)
        sensors = settings['sensors']
        assert sensors.inputs == ('ee_pose', 'joint_positions', 'joint_velocities', 'wrench')
        assert sensors.cameras == tuple((f'image/camera/{camera}/image_raw', camera)
                                        for camera in cameras)
        assert settings['config']['cameras'] == tuple(name for name, _ in sensors.cameras)
        assert sensors.image_size == settings['config']['image_size'][0] == 128
        assert learning.cell_settings(task)['sensors'] is None  # the task state, as before
    # The cell renders at the learner's size when a benchmark changes it.
    smaller = learning.cell_settings('pick-place-v3', {'image_size': [64, 64]}, pixels=True)
    assert smaller['sensors'].image_size == 64
    with pytest.raises(ValueError, match='renders square frames'):
        learning.cell_settings('pick-place-v3', {'image_size': [64, 48]}, pixels=True)

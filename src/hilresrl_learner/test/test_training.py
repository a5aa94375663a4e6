"""The learner's schedule and data routing (core, no ROS)."""

from hilresrl_common.demonstrations import Demonstrations
from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import demonstration_records, ResidualLearner, StepRecord
from hilresrl_policy.residual import STD_FLOOR
import numpy as np
import pytest

CONFIG = LearnerConfig(obs_dim=2, action_dim=2, actor_hidden=(8,), critic_hidden=(8,),
                       batch_size=4)


def _record(step, human=None):
    return StepRecord('e', step, np.zeros(2), np.zeros(2), np.ones(2), 0.0, np.zeros(2),
                      False, False, human)


def test_human_steps_go_to_both_buffers_and_demonstrations_to_one():
    learner = ResidualLearner(CONFIG)
    learner.add(_record(0))
    learner.add(_record(1, human=np.ones(2)))
    learner.add(_record(0), demonstration=True)
    assert (len(learner.online), len(learner.intervention)) == (2, 2)
    assert (learner.env_steps, learner.demo_steps) == (2, 1)


def test_updates_follow_the_update_to_data_ratio():
    learner = ResidualLearner(CONFIG, update_to_data=2.0, min_steps=4)
    for step in range(3):
        learner.add(_record(step))
    assert learner.updates_due() == 0  # fewer than min_steps
    learner.add(_record(3))
    assert learner.updates_due() == 8
    learner.train(5)
    assert learner.updates_due() == 3 and learner.updates == 5


def test_recorded_steps_are_routed_and_their_warm_up_is_outside_the_ratio():
    joined = ResidualLearner(CONFIG, min_steps=2)  # no offline share: they join online
    joined.add_offline(_record(0))
    joined.add_offline(_record(1, human=np.full(2, 0.5)))
    assert (len(joined.online), len(joined.intervention), joined.offline) == (2, 1, None)
    assert joined.intervention.gather(np.array([0])).human_action.tolist() == [[0.5, 0.5]]
    assert (joined.env_steps, joined.offline_steps) == (0, 2)

    apart = ResidualLearner(CONFIG, min_steps=2, offline_fraction=0.5)
    for step in range(3):
        apart.add_offline(_record(step, human=np.ones(2) if step == 2 else None))
    assert (len(apart.online), len(apart.offline), len(apart.intervention)) == (0, 3, 1)
    assert apart.updates_due() == 0  # no robot step yet
    apart.train(6, offline=True)  # warm-up on the recorded runs
    assert (apart.updates, apart.offline_updates) == (6, 6)
    apart.add(_record(0))
    apart.add(_record(1))
    assert apart.updates_due() == 2  # the robot's steps get their own updates
    shares = {id(buffer): count for buffer, count in apart.sampler.shares(8)}
    # half interventions, half recorded runs: nothing left over for the online buffer
    assert shares == {id(apart.intervention): 4, id(apart.offline): 4}
    uneven = ResidualLearner(CONFIG, intervention_fraction=0.25, offline_fraction=0.25)
    uneven.add(_record(0))
    uneven.add(_record(1, human=np.ones(2)))
    uneven.add_offline(_record(5))
    shares = {id(buffer): count for buffer, count in uneven.sampler.shares(8)}
    assert shares == {id(uneven.online): 4, id(uneven.intervention): 2, id(uneven.offline): 2}


def _demonstrations():
    observations = np.arange(10, dtype=np.float32).reshape(5, 2)
    return Demonstrations(observations=observations,
                          actions=np.full((5, 2), 0.25) + np.arange(5)[:, None] / 100,
                          expert_actions=np.full((5, 2), 0.5),
                          episode_index=np.array([0, 0, 0, 1, 1]),
                          episode_success=np.array([True, False]))


def test_demonstrations_are_relabelled_with_the_base_policy():
    demos = _demonstrations()
    records = list(demonstration_records(demos, base_policy=lambda obs: obs[:1].repeat(2) / 100))
    assert [r.episode for r in records] == [('demonstration', 0)] * 3 + [('demonstration', 1)]
    assert [r.step for r in records] == [0, 1, 2, 0]
    assert records[1].base_action.tolist() == pytest.approx([0.02, 0.02])
    assert records[2].terminated and records[2].reward == 1.0  # the successful episode's end
    assert not any(r.truncated for r in records)
    assert records[0].next_observation.tolist() == [2.0, 3.0]


def test_demonstration_records_carry_the_executed_and_the_expert_action_apart():
    demos = _demonstrations()
    records = list(demonstration_records(demos, base_policy=np.zeros_like))
    for index, record in zip((0, 1, 2, 3), records):
        # the noisy action is what moved the arm to the next state: the critic learns on it
        assert record.executed_action.tolist() == pytest.approx(demos.actions[index].tolist())
        assert np.array_equal(record.next_observation, demos.observations[index + 1]) or (
            record.terminated and index == 2)
        # the expert's clean action is the guidance target, on every axis
        assert record.human_action.tolist() == [0.5, 0.5] and record.intervened_axes is None
    assert not np.allclose(records[0].executed_action, records[0].human_action)
    learner = ResidualLearner(CONFIG)
    for record in records:
        learner.add(record, demonstration=True)
    batch = learner.intervention.gather(np.arange(4), n_step=1)
    assert np.array_equal(batch.executed_action, demos.actions[:4])
    assert batch.human_action.tolist() == [[0.5, 0.5]] * 4 and batch.human_axes.all()


def test_a_failed_demonstration_never_bootstraps_from_its_own_last_state():
    demos = _demonstrations()
    records = list(demonstration_records(demos, base_policy=np.zeros_like))
    failed = [r for r in records if r.episode == ('demonstration', 1)]
    # its last step (index 4) has no next state: left out; the step before it goes on to it
    assert len(failed) == 1 and failed[0].step == 0
    assert failed[0].next_observation.tolist() == demos.observations[4].tolist()
    assert not (failed[0].terminated or failed[0].truncated) and failed[0].reward == 0.0
    learner = ResidualLearner(CONFIG)
    for record in records:
        learner.add(record, demonstration=True)
    batch = learner.intervention.gather(np.array([3]), n_step=3, gamma=0.5)
    assert batch.bootstrap_observation.tolist() == [demos.observations[4].tolist()]
    assert batch.bootstrap_discount.tolist() == [0.5]  # one step taken, then bootstrapped
    single = list(demonstration_records(Demonstrations(
        observations=[[0.0, 0.0]], actions=[[0.1, 0.1]], expert_actions=[[0.2, 0.2]],
        episode_index=[0], episode_success=[False]), base_policy=np.zeros_like))
    assert single == []  # a one-step failed demonstration holds nothing to learn from


CAMERA = 'image/camera/front/image_raw'


def _sensed_demonstrations():
    rng = np.random.default_rng(3)
    return Demonstrations(
        observations=np.arange(10, dtype=np.float32).reshape(5, 2),
        actions=rng.uniform(-1, 1, (5, 2)), expert_actions=rng.uniform(-1, 1, (5, 2)),
        episode_index=[0, 0, 0, 1, 1], episode_success=[True, False],
        observed={'wrench': rng.normal(size=(5, 6)), 'ee_pose': rng.normal(size=(5, 7)),
                  CAMERA: rng.integers(0, 256, (5, 24, 24, 3), np.uint8)},
        instruction='pick up the puck')


def test_demonstration_records_carry_given_observations_frames_and_base_actions():
    demos = _sensed_demonstrations()
    seen = np.arange(15, dtype=np.float32).reshape(5, 3)
    frames = {CAMERA: np.arange(5, dtype=np.uint8)[:, None, None, None].repeat(4, axis=2)}
    records = list(demonstration_records(demos, observations=seen, frames=frames,
                                         base_actions=np.full((5, 2), 0.125)))
    assert [r.observation.tolist() for r in records] == seen[:4].tolist()
    assert [r.next_observation.tolist() for r in records] == seen[[1, 2, 2, 4]].tolist()
    assert [int(r.frames[CAMERA][0, 0, 0]) for r in records] == [0, 1, 2, 3]
    assert [int(r.next_frames[CAMERA][0, 0, 0]) for r in records] == [1, 2, 2, 4]
    assert all(r.base_action.tolist() == [0.125, 0.125] for r in records)
    with pytest.raises(ValueError, match='a base_policy or base_actions'):
        list(demonstration_records(demos))


def _bc_base_policy(folder):
    from hilresrl_policy.bc import BCConfig, BCNetwork, save_checkpoint
    network = BCNetwork(BCConfig(state_dim=2, action_dim=2, hidden_sizes=(8,), task='test'))
    network.set_normalization(np.random.default_rng(0).normal(size=(10, 2)))
    save_checkpoint(folder, network)
    return {'kind': 'bc', 'checkpoint': str(folder), 'task': ''}


def test_demonstration_steps_build_what_the_actor_sees_from_the_arrays_held(tmp_path):
    from hilresrl_common.instruction_features import instruction_features
    from hilresrl_learner.offline_data import demonstration_steps
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_policy.image_encoder import encoder_frame, ImageInputs
    demos = _sensed_demonstrations()
    path = demos.save(tmp_path / 'demos.npz')
    base = _bc_base_policy(tmp_path / 'base')
    inputs = ImageInputs((CAMERA,), 16, 16)
    records, episodes = demonstration_steps(str(path), 2, ['ee_pose', 'instruction', 'wrench'],
                                            base, inputs)
    assert episodes == 2 and len(records) == 4
    assert records[0].episode == ('demonstration', 2, 0)
    expected = np.concatenate([demos.observed['ee_pose'][1],
                               instruction_features('pick up the puck'),
                               demos.observed['wrench'][1]])
    assert np.array_equal(records[1].observation, expected)
    assert np.array_equal(records[0].next_observation, expected)
    assert np.array_equal(records[3].frames[CAMERA],
                          encoder_frame(demos.observed[CAMERA][3], inputs))
    assert records[3].frames[CAMERA].shape == (3, 16, 16)
    bc = BCPolicy(str(tmp_path / 'base'))
    assert np.allclose([r.base_action for r in records],
                       [bc.act({'task_state': demos.observations[i]})[0] for i in (0, 1, 2, 3)],
                       atol=1e-6)


def test_demonstration_steps_refuse_a_file_without_an_array_the_learner_needs(tmp_path):
    from hilresrl_learner.offline_data import demonstration_steps
    from hilresrl_policy.image_encoder import ImageInputs
    path = _demonstrations().save(tmp_path / 'state.npz')
    base = _bc_base_policy(tmp_path / 'base')
    with pytest.raises(ValueError, match='the demonstrations hold no ee_pose; they hold '
                                         'task_state'):
        demonstration_steps(str(path), 0, ['ee_pose'], base)
    with pytest.raises(ValueError, match=f'hold no {CAMERA}; they hold task_state'):
        demonstration_steps(str(path), 0, ['task_state'], base, ImageInputs((CAMERA,), 16, 16))
    records, _ = demonstration_steps(str(path), 0, ['task_state'], base)  # as before
    assert [r.observation.tolist() for r in records] == _demonstrations().observations[
        :4].tolist()
    assert records[0].frames is None


def test_per_axis_interventions_reach_the_buffers_with_their_axes():
    learner = ResidualLearner(CONFIG)
    record = _record(0, human=np.ones(2))
    record.intervened_axes = np.array([False, True])
    learner.add(record)
    learner.add_offline(_record(1, human=np.ones(2)))  # an older bag: no axes, all of them
    assert learner.online.gather(np.array([0, 1])).human_axes.tolist() == [
        [False, True], [True, True]]
    assert learner.intervention.gather(np.array([0, 1])).human_axes.tolist() == [
        [False, True], [True, True]]


def _unit_steps(learner, scale, rng, steps=60):
    # Steps of a 2-value state, its second value in other units (a 0-255 gripper reading).
    for index in range(steps):
        state = rng.normal(size=2) * [1.0, scale]
        human = rng.uniform(-1, 1, 2) if index % 3 == 0 else None
        learner.add(StepRecord(index // 20, index % 20, state, rng.uniform(-1, 1, 2),
                               rng.uniform(-1, 1, 2), float(index % 20 == 19),
                               rng.normal(size=2) * [1.0, scale], index % 20 == 19, False,
                               human))


def test_observation_statistics_come_from_every_stored_step_and_stay_fixed():
    config = LearnerConfig(obs_dim=2, action_dim=2, actor_hidden=(8,), critic_hidden=(8,),
                           batch_size=4, observation_normalization=True)
    learner = ResidualLearner(config, min_steps=1)
    learner.add(StepRecord('d', 0, np.array([10.0, 0.0]), np.zeros(2), np.zeros(2), 0.0,
                           np.zeros(2), False, False), demonstration=True)
    learner.add(StepRecord('e', 0, np.array([30.0, 0.0]), np.zeros(2), np.zeros(2), 0.0,
                           np.zeros(2), False, False))
    assert not learner.agent.observations_normalized
    learner.train(0)  # nothing due: nothing fitted
    assert not learner.agent.observations_normalized
    learner.train(1)
    agent = learner.agent
    for network in (agent.actor, agent.actor_target, agent.critic, agent.critic_target):
        assert network.observation_normalizer.mean.tolist() == [20.0, 0.0]
        assert network.observation_normalizer.std.tolist() == pytest.approx([10.0, STD_FLOOR])
    learner.add(StepRecord('e', 1, np.array([1000.0, 5.0]), np.zeros(2), np.zeros(2), 0.0,
                           np.zeros(2), False, False))
    learner.train(2)
    assert agent.actor.observation_normalizer.mean.tolist() == [20.0, 0.0]  # fixed
    plain = ResidualLearner(CONFIG, min_steps=1)
    plain.add(_record(0))
    plain.train(1)
    assert not plain.agent.observations_normalized


def test_with_normalization_what_is_learnt_does_not_depend_on_the_observation_units():
    def learnt(scale, normalized):
        config = LearnerConfig(obs_dim=2, action_dim=2, actor_hidden=(16,),
                               critic_hidden=(16,), batch_size=16, warmup_updates=0,
                               actor_delay=1, observation_normalization=normalized)
        learner = ResidualLearner(config, min_steps=1, seed=3)
        _unit_steps(learner, scale, np.random.default_rng(7))
        learner.train(30)
        return learner.residual(np.array([0.5, 0.5 * scale]), np.zeros(2))

    assert np.allclose(learnt(1.0, True), learnt(200.0, True), atol=1e-4)
    assert not np.allclose(learnt(1.0, False), learnt(200.0, False), atol=1e-4)

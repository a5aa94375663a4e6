"""Replay on the learner's device and updates in captured CUDA graphs (core, no ROS)."""

import pickle

from hilresrl_learner.device_replay import DeviceMirror, DeviceReplay, gather_rows
from hilresrl_learner.replay import MixedSampler, ReplayBuffer
from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import ResidualLearner, StepRecord
import numpy as np
import pytest
import torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
CAMERAS = ('image/front', 'image/wrist')


def _add_episodes(buffer, rng, episodes, steps, first_episode=0, cameras=()):
    """
    Add episodes of several robots interleaved step by step, some ending in a terminal.

    With ``cameras``, each step has a frame per camera: every pixel its number (plus the
    camera's index), and the next frame the next number.
    """
    for step in range(steps):
        for episode in range(first_episode, first_episode + episodes):
            last = step == steps - 1
            frames = {camera: np.full((3, 4, 4), 10 * (episode % 20) + step + k, np.uint8)
                      for k, camera in enumerate(cameras)} or None
            buffer.add(episode, step, rng.normal(size=3), rng.uniform(-1, 1, 2),
                       rng.uniform(-1, 1, 2), float(rng.random() < 0.2), rng.normal(size=3),
                       terminated=last and episode % 2 == 0, truncated=last and episode % 2 == 1,
                       human_action=rng.uniform(-1, 1, 2) if step % 3 == 0 else None,
                       frames=frames, next_frames=frames and {
                           camera: frame + 1 for camera, frame in frames.items()})


@pytest.mark.parametrize('n_step', [1, 3])
@pytest.mark.parametrize('compiled', [False, True], ids=['eager', 'compiled'])
def test_the_mirror_gathers_what_the_host_buffer_gathers_after_every_sync(n_step, compiled):
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(obs_dim=3, action_dim=2, initial_size=8)
    mirror = DeviceMirror(buffer, torch.device('cpu'))
    if compiled:  # the look-ahead fused by torch.compile (compile_updates) computes the same
        mirror.gather_function = torch.compile(gather_rows)
    for round_index in range(4):  # steps arrive between syncs; storage doubles meanwhile
        _add_episodes(buffer, rng, episodes=3, steps=5 + round_index,
                      first_episode=3 * round_index)
        mirror.sync()
        indices = np.arange(len(buffer))
        expected = buffer.gather(indices, n_step, 0.9)
        got = mirror.gather(torch.as_tensor(indices), n_step, 0.9)
        for name in expected.__dataclass_fields__:
            if getattr(expected, name) is None:  # camera frames: this buffer has none
                continue
            np.testing.assert_allclose(got[name].numpy(), getattr(expected, name),
                                       rtol=1e-6, err_msg=name)
    assert int(mirror.size) == len(buffer) and mirror.generation >= 2


@pytest.mark.parametrize('n_step', [1, 3])
def test_the_mirror_gathers_the_frames_the_host_buffer_gathers(n_step):
    rng = np.random.default_rng(2)
    buffer = ReplayBuffer(obs_dim=3, action_dim=2, initial_size=8, cameras=CAMERAS,
                          frame_shape=(3, 4, 4))
    mirror = DeviceMirror(buffer, torch.device('cpu'))
    for round_index in range(4):  # frames arrive between syncs; the frame storage grows
        _add_episodes(buffer, rng, episodes=3, steps=5 + round_index,
                      first_episode=3 * round_index, cameras=CAMERAS)
        mirror.sync()
        indices = np.arange(len(buffer))
        expected = buffer.gather(indices, n_step, 0.9)
        got = mirror.gather(torch.as_tensor(indices), n_step, 0.9)
        for name in ('frames', 'bootstrap_frames'):
            assert len(got[name]) == len(CAMERAS)
            for camera, frames in enumerate(getattr(expected, name)):
                np.testing.assert_array_equal(got[name][camera].numpy(), frames,
                                              err_msg=f'{name} of {CAMERAS[camera]}')
        np.testing.assert_allclose(got['n_step_return'].numpy(), expected.n_step_return,
                                   rtol=1e-6)
    # a mixed batch: each share's frames from its own buffer
    intervention = ReplayBuffer(obs_dim=3, action_dim=2, cameras=CAMERAS, frame_shape=(3, 4, 4))
    _add_episodes(intervention, rng, episodes=1, steps=4, first_episode=99, cameras=CAMERAS)
    replay = DeviceReplay(MixedSampler(buffer, intervention, 0.25), torch.device('cpu'))
    replay.sync()
    batch = replay.sample(32, n_step=n_step, gamma=0.9)
    person = batch['frames'][0][24:, 0, 0, 0]  # the last quarter: episode 99's, 190-193
    assert bool(((person >= 190) & (person <= 193)).all())
    assert batch['frames'][1].shape == batch['bootstrap_frames'][0].shape == (32, 3, 4, 4)


def test_a_step_that_links_to_an_old_row_updates_that_row_on_the_device():
    buffer = ReplayBuffer(obs_dim=3, action_dim=2)
    mirror = DeviceMirror(buffer, torch.device('cpu'))
    values = (np.zeros(3), np.full(2, 0.1), np.zeros(2), 0.0, np.ones(3), False, False)
    buffer.add('a', 0, *values)
    mirror.sync()
    assert int(mirror.tensors['continue_to'][0]) == -1
    buffer.add('b', 0, *values)
    buffer.add('a', 1, np.zeros(3), np.full(2, 0.7), np.zeros(2), 1.0, np.ones(3), True, False)
    buffer.add('c', 0, *values)
    mirror.sync()  # row 0 got its link since the last sync: copied again
    assert int(mirror.tensors['continue_to'][0]) == 2
    np.testing.assert_allclose(mirror.tensors['next_base_action'][0].numpy(), [0.7, 0.7])


def test_device_batches_take_the_samplers_shares():
    rng = np.random.default_rng(1)
    online = ReplayBuffer(obs_dim=3, action_dim=2)
    intervention = ReplayBuffer(obs_dim=3, action_dim=2)
    _add_episodes(online, rng, episodes=2, steps=20)
    for step in range(6):
        intervention.add('person', step, rng.normal(size=3), rng.uniform(-1, 1, 2),
                         rng.uniform(-1, 1, 2), 0.0, rng.normal(size=3), False, False,
                         human_action=np.ones(2))
    replay = DeviceReplay(MixedSampler(online, intervention, 0.25), torch.device('cpu'))
    replay.sync()
    batch = replay.sample(64, n_step=3, gamma=0.99)
    assert batch['observation'].shape == (64, 3)
    assert int(batch['intervened'][48:].sum()) == 16  # the last quarter: the person's
    assert bool(torch.isfinite(batch['n_step_return']).all())
    assert [count for _, count, _ in replay.plan(64)] == [48, 16]
    # The same draws through torch.compile (compile_updates) give the same batch.
    compiled = DeviceReplay(MixedSampler(online, intervention, 0.25), torch.device('cpu'),
                            compile_gather=True)
    compiled.sync()
    batches = []
    for sampled in (replay, compiled):
        torch.manual_seed(5)
        batches.append(sampled.sample(64, n_step=3, gamma=0.99))
    for name, values in batches[0].items():
        torch.testing.assert_close(batches[1][name], values, msg=name)


def _filled(device, graph_updates, steps=600, varied=True, use_compile=False):
    """Return a learner with steps of 12 episodes; ``varied=False``: every step the same."""
    # (alike: one-step returns too, else a step's return depends on its episode's end)
    config = LearnerConfig(obs_dim=5, action_dim=2, critic_heads=2, warmup_updates=4,
                           batch_size=32, target_noise=0.2 if varied else 0.0,
                           n_step=3 if varied else 1)
    learner = ResidualLearner(config, device=device, graph_updates=graph_updates, seed=3,
                              min_steps=1, use_compile=use_compile)
    rng = np.random.default_rng(0)
    same = [rng.normal(size=5), rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2), 0.5,
            rng.normal(size=5), rng.uniform(-1, 1, 2)]
    for index in range(steps):
        episode, step = divmod(index, 50)
        values = ([rng.normal(size=5), rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2),
                   float(step == 49), rng.normal(size=5), rng.uniform(-1, 1, 2)]
                  if varied else same)
        observation, base, executed, reward, next_observation, human = (
            np.asarray(value, dtype=np.float32) for value in values)
        learner.add(StepRecord(episode, step, observation, base, executed, float(reward),
                               next_observation, varied and step == 49, False,
                               human if index % 4 == 0 else None))
    return learner


@CUDA
@pytest.mark.parametrize('use_compile', [False, True], ids=['graphs', 'graphs-compile'])
def test_captured_updates_compute_what_eager_updates_on_the_device_compute(use_compile):
    # Every stored step alike and no target noise with two heads: an update is the same
    # whatever the draws, so the graphs' draws (not eager's) cannot make a difference. With
    # torch.compile's fused kernels inside the graphs too (compile_updates).
    eager = _filled('cuda', 0, varied=False)
    captured = _filled('cuda', 8, varied=False, use_compile=use_compile)
    for learner in (eager, captured):
        learner.train(40)  # eager until both optimisers have stepped, then graphs of 8
        learner.train(21)  # 2 graphs of the same plan, and 5 eager updates
    assert captured._device_updates.captures >= 1
    for learner in (eager, captured):
        assert learner.updates == 61 and learner.agent.actor_updates == 28
    for module in ('actor', 'critic', 'actor_target', 'critic_target'):
        for ours, theirs in zip(getattr(eager.agent, module).parameters(),
                                getattr(captured.agent, module).parameters()):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    metrics = captured.last_metrics
    assert set(metrics) >= {'critic_loss', 'mean_q', 'actor_loss'}
    assert all(np.isfinite(value) for value in metrics.values())


def test_compiled_updates_compute_what_eager_updates_compute_on_the_cpu():
    # Same seed, same batches and draws: torch.compile's fused kernels (compile_updates) only
    # sum in another order. Adam turns a gradient's rounding into a step of up to the learning
    # rate where that gradient is near zero: a few weights may differ by a step or two (on 16
    # threads, 2 of 65,536 by 1.5e-4 after 30 updates).
    eager, compiled = _filled('cpu', 0), _filled('cpu', 0, use_compile=True)
    for learner in (eager, compiled):
        learner.train(30)  # the actor moves from update 6 on (warm-up 4, every second)
        assert learner.updates == 30 and learner.agent.actor_updates == 13
    for module in ('actor', 'critic', 'actor_target', 'critic_target'):
        for ours, theirs in zip(getattr(eager.agent, module).parameters(),
                                getattr(compiled.agent, module).parameters()):
            torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)
    assert compiled.agent._compiled_functions  # it did go through torch.compile


@CUDA
def test_new_steps_reach_a_graph_that_was_captured_before_them():
    learner = _filled('cuda', 8, steps=300)
    learner.train(48)
    captures, updates = learner._device_updates.captures, learner.updates
    assert captures >= 1
    learner.add(StepRecord('late', 0, np.full(5, 50.0, dtype=np.float32), np.zeros(2, np.float32),
                           np.zeros(2, np.float32), 0.0, np.zeros(5, np.float32), False, False))
    learner.train(16)
    assert learner._device_updates.captures == captures  # same plan: the same graphs
    assert learner.updates == updates + 16
    mirror = learner._device_updates.replay._mirror(learner.online)
    assert int(mirror.size) == 301 and float(mirror.tensors['observation'][300, 0]) == 50.0


@CUDA
def test_an_image_learner_on_a_gpu_draws_its_frames_there():
    config = LearnerConfig(obs_dim=3, action_dim=2, critic_hidden=(16,), actor_hidden=(16,),
                           batch_size=16, warmup_updates=0, cameras=CAMERAS,
                           image_size=(16, 16, 3), image_features=8)
    learner = ResidualLearner(config, min_steps=16, device='cuda')
    rng = np.random.default_rng(3)
    for index in range(64):
        episode, step = divmod(index, 16)
        frames = {camera: rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
                  for camera in CAMERAS}
        learner.add(StepRecord(episode, step, rng.normal(size=3).astype(np.float32),
                               np.zeros(2, np.float32), np.zeros(2, np.float32), 0.0,
                               rng.normal(size=3).astype(np.float32), step == 15, False,
                               frames=frames, next_frames=frames))
    assert learner._device_updates is not None  # the device's replay, frames included
    learner.train(16)
    assert learner.updates == 16
    assert np.isfinite(float(learner.last_metrics['critic_loss']))
    learner.train(32)  # the optimisers have stepped: runs of 8 captured, frames gathered in them
    captures = learner._device_updates.captures
    assert captures >= 1 and learner.updates == 48
    for index in range(64, 1100):  # the frame storage (1,024 at first) grows: new graphs
        frames = {camera: np.full((3, 16, 16), index % 256, np.uint8) for camera in CAMERAS}
        learner.add(StepRecord(index // 16, index % 16, np.zeros(3, np.float32),
                               np.zeros(2, np.float32), np.zeros(2, np.float32), 0.0,
                               np.zeros(3, np.float32), index % 16 == 15, False,
                               frames=frames, next_frames=frames))
    learner.train(32)
    assert learner._device_updates.captures > captures
    mirror = learner._device_updates.replay._mirror(learner.online)
    store = learner.online.frames.stores[CAMERAS[0]]
    assert len(store) > 1024  # past the first storage
    assert np.array_equal(mirror.frames[0][:len(store)].cpu().numpy(),
                          store.between(0, len(store)))
    assert np.isfinite(float(learner.last_metrics['critic_loss']))
    # A learner with graphs pickles (a benchmark's cut-off run) and captures them again.
    copy = pickle.loads(pickle.dumps(learner))
    captures = copy._device_updates.captures
    copy.train(32)
    assert copy.updates == learner.updates + 32 and copy._device_updates.captures > captures

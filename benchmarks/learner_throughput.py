"""
Learner updates per second: residual TD3 at batch 256 with 2 and 10 critic heads.

Each update is what the learner node does per step of its schedule: draw a mixed batch from the
replay buffers (n-step returns), one critic update of the whole ensemble, and every second
update after the warm-up one actor update, plus the target networks' averaging. The networks are
those of the main job (actor 256x256, critic heads 3x256 with LayerNorm, 39 observation values,
4 action axes). Printed per configuration: updates/s, and the control rate the learner keeps up
with at update-to-data ratios 1 to 20 (updates/s divided by the ratio).

On a GPU such small updates are bound by kernel launches, so besides eager PyTorch it times the
losses through torch.compile (``compile``) and through torch.compile with CUDA graphs
(``cudagraphs``, mode reduce-overhead).

    source scripts/env.sh && python benchmarks/learner_throughput.py            # this CPU
    PYTHONPATH=src/hilresrl_learner:src/hilresrl_policy python benchmarks/learner_throughput.py \
        --device cuda --modes eager compile cudagraphs      # a GPU machine without ROS
"""

import argparse
import os
import sys
import time

from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import ResidualLearner, StepRecord
import numpy as np
import torch

OBS_DIM, ACTION_DIM = 39, 4
MODES = {'eager': None, 'compile': 'default', 'cudagraphs': 'reduce-overhead'}


def filled_learner(heads: int, device: str, mode: str, steps: int = 20_000) -> ResidualLearner:
    """Return a learner with `steps` random transitions (a fifth of them human) in its buffers."""
    config = LearnerConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, critic_heads=heads,
                           residual_scale=(0.5, 0.5, 0.5, 1.0), warmup_updates=0)
    learner = ResidualLearner(config, device=device, use_compile=mode != 'eager')
    if mode != 'eager':
        learner.agent.compile_mode = MODES[mode]
    rng = np.random.default_rng(0)
    for index in range(steps):
        episode, step = divmod(index, 100)
        human = rng.uniform(-1, 1, ACTION_DIM).astype(np.float32) if index % 5 == 0 else None
        learner.add(StepRecord(episode, step, rng.normal(size=OBS_DIM).astype(np.float32),
                               rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                               rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                               float(step == 99), rng.normal(size=OBS_DIM).astype(np.float32),
                               step == 99, False, human))
    return learner


def measure(heads: int, device: str, mode: str, seconds: float) -> dict:
    """Return updates/s of one configuration, after a warm-up that includes any compilation."""
    learner = filled_learner(heads, device, mode)
    started = time.perf_counter()
    learner.train(20)  # compiles here, and warms caches and the allocator
    float(learner.last_metrics['critic_loss'])
    warmup_s = time.perf_counter() - started
    updates = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        learner.train(10)
        updates += 10
    learner.last_metrics  # waits for the device to finish the queued updates
    elapsed = time.perf_counter() - started
    return {'heads': heads, 'mode': mode, 'updates_per_s': updates / elapsed,
            'warmup_s': warmup_s}


def main(argv=None) -> int:
    """Time every configuration and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--heads', nargs='+', type=int, default=[2, 10])
    parser.add_argument('--modes', nargs='+', default=['eager'], choices=list(MODES))
    parser.add_argument('--utd', nargs='+', type=int, default=[1, 2, 5, 10, 20])
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='CPU threads for torch (default: all)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    where = (torch.cuda.get_device_name(0) if args.device.startswith('cuda')
             else f'CPU, {args.threads} thread(s) of {os.cpu_count()} cores')
    print(f'torch {torch.__version__} on {where}; batch 256, actor 256x256, critic heads '
          f'3x256 + LayerNorm', flush=True)
    utd = ' | '.join(f'Hz at UTD {ratio}' for ratio in args.utd)
    lines = [f'| critic heads | mode | updates/s | {utd} | first 20 updates (s) |',
             '|---|---|---|' + '---|' * len(args.utd) + '---|']
    for heads in args.heads:
        for mode in args.modes:
            result = measure(heads, args.device, mode, args.seconds)
            rates = ' | '.join(f'{result["updates_per_s"] / ratio:.1f}' for ratio in args.utd)
            lines.append(f'| {heads} | {mode} | {result["updates_per_s"]:.0f} | {rates} | '
                         f'{result["warmup_s"]:.1f} |')
            print(lines[-1], flush=True)
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())

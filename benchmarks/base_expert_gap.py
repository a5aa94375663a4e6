"""
How far each task's base policy acts from the scripted expert, against the residual's reach.

The residual moves the base action by at most residual_scale per axis, so where the base policy
and the expert (the demonstrations, the simulated person) disagree by more than that, the
composed policy cannot do what the expert does. For each task: noisy expert episodes (as the
learner's demonstrations are collected), and on every state the base policy's translation
against the expert's; printed, the share of steps on which some translation axis differs by
more than 0.5 and by more than 1.0 (the reach of residual scales 0.5 and 1.0). No ROS; base
policies are built on first use into $HILRESRL_HOME, as learning.py builds them.

    source scripts/env.sh && python benchmarks/base_expert_gap.py --results out.json
"""

import argparse
import json
import pathlib
import sys

import numpy as np

# The demonstrations' seeds: apart from the builder's and the benchmark's.
_SEED_STREAM = 4000
REACHES = (0.5, 1.0)


def gap(task_name: str, episodes: int, noise_std: float) -> dict:
    """Return the shares of expert states on which the base policy is out of reach."""
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_sim.demos import collect_demonstrations
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from learning import base_checkpoint
    base = BCPolicy(str(base_checkpoint(task_name)))
    demos = collect_demonstrations(task_name, episodes, noise_std, seed=_SEED_STREAM)
    expert = np.asarray(demos.expert_actions, dtype=np.float64)
    acted = np.stack([base.act({'task_state': state})[0] for state in demos.observations])
    difference = np.abs(expert[:, :3] - acted[:, :3]).max(axis=1)
    row = {'task': task_name, 'steps': int(len(expert))}
    for reach in REACHES:
        row[f'beyond_{reach:g}'] = float(np.mean(difference > reach))
    return row


def main(argv=None) -> int:
    """Measure the tasks and print the table (and write the results, if asked)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from learning import PANDA_TASKS, TASKS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+',
                        default=[task for task in TASKS if task not in PANDA_TASKS])
    parser.add_argument('--episodes', type=int, default=10)
    parser.add_argument('--noise-std', type=float, default=0.1,
                        help="the demonstrations' action noise (learning.py's is 0.1)")
    parser.add_argument('--results', type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print('| task | expert steps | translation off by > 0.5 | by > 1.0 |')
    print('|---|---|---|---|')
    for task in args.tasks:
        row = gap(task, args.episodes, args.noise_std)
        rows.append(row)
        print(f'| {task} | {row["steps"]} | {100 * row["beyond_0.5"]:.0f}% | '
              f'{100 * row["beyond_1"]:.0f}% |', flush=True)
    if args.results:
        args.results.write_text(json.dumps({'rows': rows}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
Long horizon: five pick-and-place sub-tasks back to back, before and after fine-tuning.

One Meta-World pick-place-v3 scene; each time the puck reaches the goal, the goal moves to a new
random place in the task's goal range (at least 10 cm away: SimTask.retarget) and the next
sub-task starts from where the last ended, with the task's step limit. A sequence succeeds when
all five are done. Measured on the same 100 seeded scenes for:

  base        the frozen BC base policy (what the user brings)
  fine-tuned  the same base plus the residual that residual RL with the simulated operator
              learned on the single task (benchmarks/learning.py's residual_operator, run until
              it reaches 95% on one placement or its step budget)
  fine-tuned in chains
              the same, learned in chained scenes (each sub-task an episode of its own, the
              scene going on from where the last one ended), for the whole step budget

and, for reference, the scripted expert. Headless, no ROS.

    source scripts/env.sh && python benchmarks/long_horizon.py --seeds 0 1
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
import json
import os
import pathlib
import sys
import time

from learning import base_checkpoint, cell_settings, run as learning_run
import numpy as np

SUBTASKS = 5


POLICIES = ('base', 'fine-tuned', 'fine-tuned in chains', 'expert')


def fine_tune(task: str, seed: int, options: dict, chained: bool) -> dict:
    """Train the residual as the main job does and save it; return the learning run."""
    if chained:  # the whole budget: a single placement at 95% says little about chains
        options = dict(options, subtasks=SUBTASKS, target=1.01)
    return learning_run(task, 'residual_operator', seed, options)


def evaluate_chains(task: str, policy: str, seed: int, options: dict,
                    actor: dict = None) -> dict:
    """Play the chained scenes with one policy; return sequence and sub-task figures."""
    import torch
    torch.set_num_threads(1)
    from hilresrl_policy.adapters.base import BasePolicy
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_policy.residual import load_actor_weights, ResidualActor, ResidualConfig
    from hilresrl_common.success_statistics import wilson_interval
    from hilresrl_sim.base_policy_builder import evaluation_seeds
    from hilresrl_sim.experts import make_expert
    from hilresrl_sim.headless_cell import HeadlessCell

    settings = cell_settings(task)
    if policy == 'expert':
        expert = make_expert(task)

        class Expert(BasePolicy):
            """The scripted expert as a base policy."""

            action_dim = 4

            def act(self, observation):
                return np.asarray(expert(observation['task_state']), np.float32)[None]

        base = Expert()
    else:
        base = BCPolicy(options['base_checkpoints'][task])
    network = None
    if actor is not None:
        network = ResidualActor(ResidualConfig.from_json(actor['architecture']))
        load_actor_weights(network, pathlib.Path(actor['path']).read_bytes(), actor['sha256'],
                           actor['architecture'])

    def fine_tuned(observation, base_action, explore):
        with torch.no_grad():
            return network(torch.from_numpy(observation)[None],
                           torch.from_numpy(base_action)[None])[0].numpy()

    residual = fine_tuned if network is not None else None

    cell = HeadlessCell(task, base, residual_scale=settings['config']['residual_scale'],
                        seed=seed)
    scenes = evaluation_seeds(30_000 + seed, options['scenes'])
    done = [cell.run_episode(scene, residual, allow_intervention=False,
                             subtasks=SUBTASKS).subtasks_done for scene in scenes]
    single = [cell.run_episode(scene, residual, allow_intervention=False).success
              for scene in scenes]
    cell.close()
    done = np.array(done)
    sequences = int((done == SUBTASKS).sum())
    low, high = wilson_interval(sequences, len(scenes))
    return {'policy': policy, 'seed': seed, 'scenes': len(scenes),
            'sequence_success': sequences / len(scenes), 'ci_low': low, 'ci_high': high,
            'mean_subtasks': float(done.mean()),
            # P(sub-task k done | k-1 done): where the chain breaks
            'subtask_success': [float((done >= k).sum() / max(1, (done >= k - 1).sum()))
                                for k in range(1, SUBTASKS + 1)],
            'single_task_success': float(np.mean(single))}


def table(rows) -> str:
    """Return the markdown table, one row per policy (seeds pooled)."""
    from hilresrl_common.success_statistics import wilson_interval
    lines = ['| policy | 5-sub-task sequences done (95% CI) | sub-tasks done (mean of 5) | '
             'P(sub-task k \\| k-1 done), k = 1..5 | single sub-task |',
             '|---|---|---|---|---|']
    for policy in POLICIES:
        runs = [row for row in rows if row['policy'] == policy]
        if not runs:
            continue
        successes = sum(round(r['sequence_success'] * r['scenes']) for r in runs)
        scenes = sum(r['scenes'] for r in runs)
        low, high = wilson_interval(successes, scenes)
        per_k = np.mean([r['subtask_success'] for r in runs], axis=0)
        lines.append(f'| {policy} | {successes}/{scenes} = {100 * successes / scenes:.0f}% '
                     f'({100 * low:.0f}-{100 * high:.0f}%) | '
                     f'{np.mean([r["mean_subtasks"] for r in runs]):.2f} | '
                     + ', '.join(f'{100 * p:.0f}%' for p in per_k) + ' | '
                     f'{100 * np.mean([r["single_task_success"] for r in runs]):.0f}% |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    """Fine-tune, evaluate the chains and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', default='pick-place-v3')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--scenes', type=int, default=100, help='chained scenes per seed')
    parser.add_argument('--max-steps', type=int, default=20_000,
                        help='fine-tuning budget in env steps')
    parser.add_argument('--fine-tune', nargs='+', choices=('single', 'chained'),
                        default=['single', 'chained'],
                        help='fine-tune on single placements, in chained scenes, or both')
    parser.add_argument('--workers', type=int, default=os.cpu_count())
    parser.add_argument('--base-dir', type=pathlib.Path, default=None)
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('long-horizon-results'))
    args = parser.parse_args(argv)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    checkpoint = base_checkpoint(args.task, args.base_dir)
    options = {'base_checkpoints': {args.task: str(checkpoint)}, 'scenes': args.scenes,
               'max_steps': args.max_steps, 'target': 0.95, 'screen_every': 1000,
               'screen_episodes': 20, 'eval_episodes': 100, 'demos': 20,
               'algorithm': 'td3', 'residual_scale': None}
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        tuned = {('fine-tuned' if mode == 'single' else 'fine-tuned in chains', seed):
                 pool.submit(fine_tune, args.task, seed, dict(
                     options, actor_out=str(args.out / f'residual-{mode}-seed{seed}.safetensors')),
                     mode == 'chained')
                 for mode in args.fine_tune for seed in args.seeds}
        before = [pool.submit(evaluate_chains, args.task, policy, seed, options)
                  for seed in args.seeds for policy in ('base', 'expert')]
        rows += [future.result() for future in before]
        learning = {key: future.result() for key, future in tuned.items()}
        for (policy, seed), result in learning.items():
            print(f'{policy} seed {seed}: {result["env_steps"]} steps, final '
                  f'{100 * result["final"]["success_rate"]:.0f}% on one placement', flush=True)
        after = {key: pool.submit(evaluate_chains, args.task, key[0], key[1], options,
                                  learning[key]['actor']) for key in learning}
        rows += [future.result() for future in after.values()]
    for row in rows:
        key = (row['policy'], row['seed'])
        row['fine_tuning'] = ({name: learning[key][name] for name in
                               ('env_steps', 'reached_at', 'final')}
                              if key in learning else None)
    (args.out / 'results.json').write_text(json.dumps(rows, indent=1))
    report = table(rows)
    print(report)
    (args.out / 'table.md').write_text(report + '\n')
    print(f'results in {args.out} ({time.monotonic() - started:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

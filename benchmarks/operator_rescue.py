"""
Whether the simulated person, once it steps in, turns the base policy's failures into successes.

A person at the SpaceMouse who takes over a failing robot usually finishes the task; the
simulated one corrects with the task's scripted expert, and the learning benchmarks can only be
as good as those corrections. For each task, on the same reset seeds: the base policy alone;
the base policy with the simulated person as the cell profile configures it (headless cell:
the same arbitration, SpaceMouse mapping and safety filter as the ROS graph); and the scripted
expert alone from the reset, with the person's hand noise (what the person can do when it
starts from where the expert would). Printed per task: failures the person rescued, successes
it spoiled, and its share of the steps. No ROS; base policies are built on first use into
$HILRESRL_HOME, as learning.py builds them.

    source scripts/env.sh && python benchmarks/operator_rescue.py --results out.json
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

# The seeds of the episodes played: apart from the pace's, the builder's and operator_pace's.
_SEED_STREAM = 3000


def expert_success(task, seed: int, noise_std: float) -> bool:
    """Return whether the scripted expert, with hand noise, does the task from this reset."""
    task.reset(seed)
    noise = np.random.default_rng([_SEED_STREAM, seed])
    for _ in range(task.max_episode_steps):
        if task.success():
            return True
        action = task.expert_action()
        task.step(np.clip(action + noise.normal(0.0, noise_std, action.shape), -1, 1))
    return bool(task.success())


def rescue(task_name: str, episodes: int) -> dict:
    """Return the base policy's outcomes with and without the simulated person on a task."""
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_sim.headless_cell import HeadlessCell
    from hilresrl_sim.operator_model import OperatorConfig
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from learning import base_checkpoint, cell_settings
    operator = OperatorConfig(**cell_settings(task_name)['operator'])
    cell = HeadlessCell(task_name, BCPolicy(str(base_checkpoint(task_name))), operator)
    started = time.monotonic()
    try:
        seeds = [_SEED_STREAM + episode for episode in range(episodes)]
        alone = [cell.run_episode(seed, allow_intervention=False).success for seed in seeds]
        helped = [cell.run_episode(seed) for seed in seeds]
        expert = [expert_success(cell.task, seed, operator.noise_std) for seed in seeds]
    finally:
        cell.close()
    return {'task': task_name, 'episodes': episodes,
            'alone': sum(alone), 'with_person': sum(result.success for result in helped),
            'rescued': sum(result.success and not success
                           for success, result in zip(alone, helped)),
            'spoiled': sum(success and not result.success
                           for success, result in zip(alone, helped)),
            'human_steps': sum(result.human_steps for result in helped),
            'steps': sum(result.steps for result in helped),
            'expert_alone': sum(expert), 'wall_s': time.monotonic() - started}


def main(argv=None) -> int:
    """Play the tasks and print the table (and write the results, if asked)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from learning import PANDA_TASKS, TASKS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+',
                        default=[task for task in TASKS if task not in PANDA_TASKS])
    parser.add_argument('--episodes', type=int, default=30)
    parser.add_argument('--results', type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print('| task | base alone | with the person | failures rescued | successes spoiled | '
          "person's share of steps | expert alone from the reset |")
    print('|---|---|---|---|---|---|---|')
    for task in args.tasks:
        row = rescue(task, args.episodes)
        rows.append(row)
        episodes = row['episodes']
        print(f'| {task} | {row["alone"]}/{episodes} | {row["with_person"]}/{episodes} | '
              f'{row["rescued"]}/{episodes - row["alone"]} | {row["spoiled"]}/{row["alone"]} | '
              f'{100 * row["human_steps"] / max(row["steps"], 1):.0f}% | '
              f'{row["expert_alone"]}/{episodes} |', flush=True)
    totals = {key: sum(row[key] for row in rows)
              for key in ('episodes', 'alone', 'with_person', 'rescued', 'spoiled',
                          'expert_alone')}
    print(f'\nin all: the person rescued {totals["rescued"]} of '
          f'{totals["episodes"] - totals["alone"]} failures and spoiled {totals["spoiled"]} of '
          f'{totals["alone"]} successes; the expert alone did {totals["expert_alone"]} of '
          f'{totals["episodes"]} episodes')
    if args.results:
        args.results.write_text(json.dumps({'rows': rows, 'totals': totals}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

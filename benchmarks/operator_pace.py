"""
How well the simulated person's pace judge tells the base policies' failures from successes.

Does it see the failures coming, and leave the successes alone? For each task: the pace is
learnt as the simulated operator learns it (expert_pace.ExpertPace, the operator's defaults),
then the task's built base policy plays --episodes episodes alone
(seeds apart from the pace's); an episode is flagged at the first step at which the pace says
late. Printed per task beside the base policy's own success: successes flagged (false alarms)
and failures flagged (with the steps at which they were, against the episode's step limit).
No ROS; base policies are built on first use into $HILRESRL_HOME, as learning.py builds them.

    source scripts/env.sh && python benchmarks/operator_pace.py --results out.json
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

# The seeds of the episodes judged: apart from the pace's and the builder's.
_SEED_STREAM = 2000


def judge(task_name: str, episodes: int) -> dict:
    """Return the flags of the pace over ``episodes`` base-policy episodes of a task."""
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_sim.operator_model import expert_pace, OperatorConfig
    from hilresrl_sim.tasks import make_task
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from learning import base_checkpoint
    base = BCPolicy(str(base_checkpoint(task_name)))
    task = make_task(task_name)
    try:
        started = time.monotonic()
        pace = expert_pace(task, OperatorConfig())
        learnt_s = time.monotonic() - started
        outcomes = []
        for episode in range(episodes):
            task.reset(_SEED_STREAM + episode)
            base.reset(task.instruction)
            flagged, best = None, np.inf
            for step in range(task.max_episode_steps):
                best = min(best, float(task.progress()[0]))
                if flagged is None and pace.late(step, best):
                    flagged = step
                if task.success():
                    break
                task.step(np.clip(base.act({'task_state': task.task_state()})[0], -1, 1))
            outcomes.append({'success': bool(task.success()), 'flagged_at': flagged})
    finally:
        task.close()
    successes = [o for o in outcomes if o['success']]
    failures = [o for o in outcomes if not o['success']]
    return {'task': task_name, 'episodes': episodes, 'step_limit': task.max_episode_steps,
            'pace_learnt_s': learnt_s, 'successes': len(successes),
            'successes_flagged': sum(o['flagged_at'] is not None for o in successes),
            'failures': len(failures),
            'failures_flagged': sum(o['flagged_at'] is not None for o in failures),
            'failure_flag_steps': [o['flagged_at'] for o in failures]}


def main(argv=None) -> int:
    """Judge the tasks and print the table (and write the results, if asked)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from learning import PANDA_TASKS, TASKS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+',
                        default=[task for task in TASKS if task not in PANDA_TASKS])
    parser.add_argument('--episodes', type=int, default=30)
    parser.add_argument('--results', type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    print('| task | base success | successes flagged | failures flagged | flagged at step '
          '(median; step limit) | pace learnt in |')
    print('|---|---|---|---|---|---|')
    for task in args.tasks:
        row = judge(task, args.episodes)
        rows.append(row)
        steps = [s for s in row['failure_flag_steps'] if s is not None]
        print(f'| {task} | {row["successes"]}/{row["episodes"]} | '
              f'{row["successes_flagged"]}/{row["successes"]} | '
              f'{row["failures_flagged"]}/{row["failures"]} | '
              f'{np.median(steps) if steps else "-"} ({row["step_limit"]}) | '
              f'{row["pace_learnt_s"]:.1f} s |', flush=True)
    totals = {key: sum(row[key] for row in rows)
              for key in ('successes', 'successes_flagged', 'failures', 'failures_flagged')}
    print(f'\nin all: {totals["successes_flagged"]} of {totals["successes"]} successes flagged '
          f'(false alarms), {totals["failures_flagged"]} of {totals["failures"]} failures')
    if args.results:
        args.results.write_text(json.dumps({'rows': rows, 'totals': totals}, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
The markdown table of benchmarks/learning.py's JSONL results: steps, human steps and success.

Plain Python and hilresrl_common (no simulator, no torch); cut-off runs' points count too.

    python benchmarks/learning_table.py learning-results/results.jsonl [more.jsonl ...]
"""

import argparse
from collections import defaultdict
import json
import math
import pathlib
import statistics
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from hilresrl_common.success_statistics import wilson_interval

# Statuses of the runs that ended on their own, and of those the screening rule ended.
FINISHED = ('reached', 'stopped_unconfirmed', 'budget')
STOPPED = ('reached', 'stopped_unconfirmed')


def read_points(paths: Iterable[pathlib.Path]) -> List[dict]:
    """Return every point of the files (a line a killed writer left half-written is skipped)."""
    points = []
    for path in paths:
        for text in pathlib.Path(path).read_text().splitlines():
            try:
                points.append(json.loads(text))
            except json.JSONDecodeError:
                continue
    return points


class Run:
    """One attempt of one (task, method, seed): its points and what they add up to."""

    def __init__(self, points: List[dict]):
        self.points = sorted(points, key=lambda point: (point['kind'] == 'final',
                                                        point['env_steps']))
        finals = [p for p in self.points if p['kind'] == 'final']
        self.final: Optional[dict] = finals[-1] if finals else None
        self.status = self.final['status'] if self.final else 'cut_off'
        self.held_back = [p for p in self.points if p['kind'] == 'held_back']
        self.screens = [p for p in self.points if p['kind'] == 'screen']
        self.env_steps = max((p['env_steps'] for p in self.points), default=0)
        self.fixed = any(p.get('at') == 'base' for p in self.held_back)

    @property
    def finished(self) -> bool:
        """Whether the run ended on its own (stop or budget), not at a time limit."""
        return self.status in FINISHED

    @property
    def reached_at(self) -> Optional[dict]:
        """Return the stop the held-back set confirmed, or None."""
        return self.final.get('reached_at') if self.final else None

    def human_to_target(self) -> float:
        """Person's steps to the target (with demonstrations'), inf if not reached."""
        if not self.reached_at:
            return math.inf
        return self.reached_at['human_steps'] + (self.final.get('demo_steps') or 0)

    def at_budget(self, budget: int) -> Optional[dict]:
        """Return a budget's held-back point (a run that stopped before it keeps its policy)."""
        for point in self.held_back:
            if point.get('budget') == budget:
                return point
        stop = self.final_success()
        if self.status in STOPPED and stop is not None and stop['env_steps'] <= budget:
            return stop
        return None

    def final_success(self) -> Optional[dict]:
        """Return the last held-back point of a run that ended on its own."""
        if not (self.finished and self.held_back):
            return None
        return self.held_back[-1]

    def human_share(self, quarter: str) -> Optional[float]:
        """Return the person's share of the steps in the first or last quarter of the run."""
        if not self.screens:
            return None
        end = self.screens[-1]['env_steps']
        if quarter == 'first':
            chosen = [p for p in self.screens if p['env_steps'] <= end / 4] or self.screens[:1]
        else:
            chosen = ([p for p in self.screens if p['env_steps'] > 3 * end / 4]
                      or self.screens[-1:])
        steps = sum(p['interval_steps'] for p in chosen)
        return sum(p['interval_human_steps'] for p in chosen) / max(1, steps)


def runs_of(points: Sequence[dict]) -> Dict[Tuple[str, str], List[Run]]:
    """
    Return the runs per (task, method), one per seed, in the order the file has them.

    Of several attempts of a seed, a finished one wins, else the one that got furthest.
    """
    attempts: Dict[tuple, Dict[str, List[dict]]] = defaultdict(lambda: defaultdict(list))
    for point in points:
        key = (point['task'], point['method'], point['seed'])
        attempts[key][point.get('attempt', '')].append(point)
    runs: Dict[Tuple[str, str], List[Run]] = defaultdict(list)
    for (task, method, seed), by_attempt in attempts.items():
        candidates = [Run(group) for group in by_attempt.values()]
        runs[(task, method)].append(max(candidates, key=lambda run: (run.finished,
                                                                     run.env_steps)))
    return runs


def pooled(points: Sequence[Optional[dict]]) -> Optional[Tuple[int, int]]:
    """Return (successes, episodes) over the points that exist, or None if none does."""
    present = [p for p in points if p is not None]
    if not present:
        return None
    return sum(p['successes'] for p in present), sum(p['episodes'] for p in present)


def _steps(value: float) -> str:
    return f'{value / 1000:.1f}k' if value >= 1000 else f'{value:.0f}'


def _median(values: Sequence[float]) -> float:
    return statistics.median_low(values) if values else math.inf


def _success(pair: Optional[Tuple[int, int]], reference: Optional[float],
             runs: int, seeds: int) -> str:
    if pair is None:
        return 'n/a'
    rate = pair[0] / pair[1]
    text = f'{100 * rate:.0f}%'
    if reference is not None:
        text += f' ({100 * (rate - reference):+.0f})'
    if runs < seeds:
        text += f' [{runs}/{seeds} seeds]'
    return text


def table(points: Sequence[dict], target: Optional[float] = None) -> str:
    """Return the markdown table of the points, with a summary line per method."""
    runs = runs_of(points)
    finals = [p for p in points if p['kind'] == 'final']
    target = target if target is not None else (finals[0]['target'] if finals else 0.95)
    max_steps = max((p.get('max_steps') or 0 for p in finals), default=0)
    budgets = sorted({budget for p in finals for budget in p.get('budgets') or ()
                      if budget <= p['max_steps']})
    tasks = list(dict.fromkeys(task for task, _ in runs))
    methods = list(dict.fromkeys(method for (_, method), group in runs.items()
                                 if not group[0].fixed))
    goal = f'{100 * target:.0f}%'
    header = (['task', 'method', 'base (held-back)', f'seeds at {goal}',
               f'env steps to {goal} (median; per seed)',
               f'human steps to {goal} (median; share of env steps)',
               "person's share: first -> last quarter"]
              + [f'{_steps(budget)} (pts vs base)' for budget in budgets]
              + ['final (pts vs base)'])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    summary = {method: {'tasks': 0, 'reached': 0, 'below': 0, 'clearly_below': 0,
                        'last_share': []} for method in methods}
    not_within = f'not within {_steps(max_steps)}' if max_steps else 'not reached'
    for task in tasks:
        for method in methods:
            group = sorted(runs.get((task, method), []), key=lambda run: run.points[0]['seed'])
            if not group:
                continue
            reference_runs = runs.get((task, 'flow_base' if method.startswith('flow_')
                                       else 'base'), [])
            base = pooled([run.held_back[0] if run.held_back else None
                           for run in reference_runs])
            base_rate = base[0] / base[1] if base else None
            reached = [run.reached_at for run in group]
            env = [r['env_steps'] if r else math.inf for r in reached]
            human = [run.human_to_target() for run in group]
            operated = any(run.final and (run.final.get('human_steps') or
                                          run.final.get('demo_steps')) for run in group)
            shares = [(run.human_share('first'), run.human_share('last')) for run in group]
            shares = [pair for pair in shares if pair[0] is not None]
            cut = sum(not run.finished for run in group)
            median_env = _median(env)
            median_human = _median(human)
            final = pooled([run.final_success() for run in group])
            cells = [
                task, method,
                f'{100 * base_rate:.0f}% (n={base[1]})' if base else 'n/a',
                f'{sum(r is not None for r in reached)}/{len(group)}'
                + (f' ({cut} cut off)' if cut else ''),
                (not_within if math.isinf(median_env) else _steps(median_env))
                + ' (' + ', '.join('-' if math.isinf(v) else _steps(v) for v in env) + ')',
                ('no person' if not operated else not_within if math.isinf(median_human)
                 else f'{_steps(median_human)} ({100 * median_human / median_env:.0f}%)'),
                ('-' if not operated or not shares else
                 f'{100 * _median([a for a, _ in shares]):.0f}% -> '
                 f'{100 * _median([b for _, b in shares]):.0f}%')]
            for budget in budgets:
                at = [run.at_budget(budget) for run in group]
                cells.append(_success(pooled(at), base_rate, sum(p is not None for p in at),
                                      len(group)))
            cells.append(_success(final, base_rate,
                                  sum(run.final_success() is not None for run in group),
                                  len(group)))
            lines.append('| ' + ' | '.join(cells) + ' |')
            tally = summary[method]
            tally['tasks'] += 1
            tally['reached'] += not math.isinf(median_env)
            if final and base:
                tally['below'] += final[0] / final[1] < base_rate
                tally['clearly_below'] += wilson_interval(*final)[1] < wilson_interval(*base)[0]
            if operated and shares:
                tally['last_share'].append(_median([b for _, b in shares]))
    lines.append('')
    for method, tally in summary.items():
        share = (f"; person's share over the last quarter {100 * min(tally['last_share']):.0f}-"
                 f"{100 * max(tally['last_share']):.0f}% (median over seeds, per task)"
                 if tally['last_share'] else '')
        lines.append(f'- **{method}**: {goal} within {_steps(max_steps)} env steps (median over '
                     f'seeds) on {tally["reached"]}/{tally["tasks"]} tasks; final success '
                     f'below the base policy on {tally["below"]}/{tally["tasks"]} '
                     f'({tally["clearly_below"]} with the 95% intervals apart){share}.')
    lines.append(
        f'\nA run stops when its last screens (fresh seeds) reach {goal}; it reaches {goal} at '
        f'that stop if the held-back set (its own seeds, never used to decide) confirms it '
        f'there; "-" = not reached. Human steps are the steps the person controlled (for '
        f'the methods with demonstrations, plus the demonstration steps). Budget and final '
        f'successes are '
        f'held-back success pooled over seeds; a run that stopped earlier keeps its policy '
        f'(its stop evaluation counts at later budgets). Base: the base policy on the same '
        f'held-back sets. Cut-off runs (a time limit) count as not reached and have no final.')
    return '\n'.join(lines)


def main(argv=None) -> int:
    """Print the table of the results files."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('results', nargs='+', type=pathlib.Path, help='JSONL results files')
    parser.add_argument('--target', type=float, default=None,
                        help="success target (default: the runs' own)")
    args = parser.parse_args(argv)
    print(table(read_points(args.results), args.target))
    return 0


if __name__ == '__main__':
    sys.exit(main())

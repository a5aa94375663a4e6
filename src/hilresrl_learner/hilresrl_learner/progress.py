"""
A run's learning curve: evaluation success and the person's share against steps and time.

Kept as JSON lines in the run folder as the run goes (curve.jsonl), and drawn as a PNG at the
end (learning_curve.png, matplotlib, imported only then). No ROS here.
"""

import json
import pathlib
from typing import Dict, List, Optional


class LearningCurve:
    """Evaluation rounds and training progress of one run, on disk as they come."""

    def __init__(self, run_dir):
        self.run_dir = pathlib.Path(run_dir)
        self.evaluations: List[Dict[str, float]] = []
        self.training: List[Dict[str, float]] = []
        # A resumed run goes on with the curve it had (a torn last line is dropped).
        path = self.run_dir / 'curve.jsonl'
        for line in path.read_text().splitlines() if path.exists() else ():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            kind = record.pop('kind', None)
            {'eval': self.evaluations, 'train': self.training}.get(kind, []).append(record)

    def add_eval(self, round_: Dict[str, float]) -> None:
        """Record one evaluation round (env_steps, wall_s, success_rate, ci_low, ci_high)."""
        self.evaluations.append(dict(round_))
        self._append({'kind': 'eval', **round_})

    def add_train(self, env_steps: int, wall_s: float, success_rate: float,
                  intervention_rate: float, period_intervention_rate: Optional[float] = None,
                  period_steps: int = 0, human_steps: int = 0) -> None:
        """
        Record the training success and the person's share at a point of the run.

        intervention_rate is over the run so far; period_intervention_rate over the
        period_steps training steps since the previous point (None: there were none), so that
        the curve shows the person letting go; human_steps counts the run's human-controlled
        training steps so far.
        """
        point = {'env_steps': env_steps, 'wall_s': wall_s, 'success_rate': success_rate,
                 'intervention_rate': intervention_rate,
                 'period_intervention_rate': period_intervention_rate,
                 'period_steps': period_steps, 'human_steps': human_steps}
        self.training.append(point)
        self._append({'kind': 'train', **point})

    def _append(self, record: Dict) -> None:
        with open(self.run_dir / 'curve.jsonl', 'a') as stream:
            stream.write(json.dumps(record) + '\n')

    def write_png(self, name: str = 'learning_curve.png') -> pathlib.Path:
        """Draw success against environment steps and against wall-clock minutes."""
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib import pyplot
        figure, axes = pyplot.subplots(1, 2, figsize=(11, 4), sharey=True)
        for axis, key, label in ((axes[0], 'env_steps', 'environment steps'),
                                 (axes[1], 'wall_s', 'wall-clock minutes')):
            scale = 1 / 60 if key == 'wall_s' else 1
            if self.training:
                axis.plot([p[key] * scale for p in self.training],
                          [p['success_rate'] for p in self.training], color='0.6',
                          label='training success (with interventions)')
                axis.plot([p[key] * scale for p in self.training],
                          [p['intervention_rate'] for p in self.training], color='tab:orange',
                          linestyle=':', label='intervention rate (run so far)')
                periods = [p for p in self.training
                           if p.get('period_intervention_rate') is not None]
                axis.plot([p[key] * scale for p in periods],
                          [p['period_intervention_rate'] for p in periods],
                          color='tab:red', label='intervention rate (each period)')
            if self.evaluations:
                x = [p[key] * scale for p in self.evaluations]
                axis.errorbar(x, [p['success_rate'] for p in self.evaluations],
                              yerr=[[p['success_rate'] - p['ci_low'] for p in self.evaluations],
                                    [p['ci_high'] - p['success_rate']
                                     for p in self.evaluations]],
                              marker='o', capsize=3, color='tab:blue',
                              label='evaluation success (95% CI)')
            axis.set_xlabel(label)
            axis.set_ylim(0, 1.02)
            axis.grid(alpha=0.3)
        axes[0].set_ylabel('rate')
        if axes[0].get_legend_handles_labels()[0]:
            axes[0].legend(loc='lower right', fontsize=8)
        figure.tight_layout()
        path = self.run_dir / name
        figure.savefig(path, dpi=100)
        pyplot.close(figure)
        return path

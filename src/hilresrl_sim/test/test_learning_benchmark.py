"""benchmarks/learning.py end to end on a tiny configuration, and its schedule (no ROS)."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[3] / 'benchmarks'
TASK = 'pick-place-v3'
# A run small enough for a test: four screens, two budgets, three held-back episodes.
TINY = {'max_steps': 400, 'target': 0.95, 'screen_every': 100, 'screen_episodes': 2,
        'stop_screens': 2, 'eval_episodes': 3, 'budgets': [200, 400], 'demos': 2,
        'algorithm': 'td3', 'residual_scale': None}
# Run in a fresh interpreter in which ROS cannot be imported, as on the GPU machine.
NO_ROS = """
import importlib.abc, json, sys
class NoRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'rclpy' or name.split('.')[0].endswith('_msgs'):
            raise ImportError(f'{name} imported: the benchmark must run without ROS')
sys.meta_path.insert(0, NoRos())
sys.path.insert(0, sys.argv[1])
import learning
options = json.loads(sys.argv[2])
result = learning.run(sys.argv[3], 'residual_operator', 0, options)
print(json.dumps({'status': result['status'], 'env_steps': result['env_steps']}))
"""


def _module(name):
    spec = importlib.util.spec_from_file_location(f'{name}_benchmark', BENCHMARKS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def base_checkpoint(tmp_path_factory):
    """Return a small BC base policy of the task (a few noisy demonstrations, few epochs)."""
    from hilresrl_policy.bc import save_checkpoint, train_bc
    from hilresrl_sim.demos import collect_demonstrations
    demos = collect_demonstrations(TASK, 3, 0.3, seed=0)
    network = train_bc(demos.observations, demos.expert_actions, epochs=20, task=TASK)
    return str(save_checkpoint(tmp_path_factory.mktemp('base') / TASK, network))


def test_the_default_schedule_runs_the_main_method_first():
    learning = _module('learning')
    jobs = learning.schedule(learning.TASKS, learning.DEFAULT_METHODS, [0, 1, 2])
    main = [index for index, job in enumerate(jobs) if job[1] == learning.MAIN_METHOD]
    assert main == list(range(len(learning.TASKS) * 3))
    assert len(jobs) == len(learning.TASKS) * len(learning.DEFAULT_METHODS) * 3
    # Every task's first seed comes before any task's second.
    assert [job[0] for job in jobs[:len(learning.TASKS)]] == list(learning.TASKS)
    assert {job[2] for job in jobs[:len(learning.TASKS)]} == {0}
    # The broad set: at least ten Meta-World tasks over the five families, and PandaPickCube.
    assert sum(task.endswith('-v3') for task in learning.TASKS) >= 10
    for family in ('pick and place', 'insertion', 'pushing', 'tool use', 'articulated'):
        assert any(task.endswith('-v3') for task in learning.FAMILIES[family]), family
    assert 'PandaPickCube' in learning.TASKS
    assert learning.MAIN_METHOD == 'residual_operator_demos'
    assert learning.DEFAULT_METHODS == ('base', 'residual_operator_demos', 'residual_operator',
                                        'residual_no_human', 'full_rl_operator')


def test_a_tiny_run_writes_its_points_as_it_goes_and_the_table_renders(
        tmp_path, base_checkpoint, capsys):
    learning = _module('learning')
    results = tmp_path / 'results.jsonl'
    options = dict(TINY, results=str(results), base_checkpoints={TASK: base_checkpoint})
    base = learning.run(TASK, 'base', 0, options)
    assert base['status'] == 'budget'
    # The main method, in a fresh interpreter that cannot import ROS.
    completed = subprocess.run(
        [sys.executable, '-c', NO_ROS, str(BENCHMARKS), json.dumps(options), TASK],
        capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    points = [json.loads(line) for line in results.read_text().splitlines()]
    run = [p for p in points if p['method'] == 'residual_operator']
    assert {(p['task'], p['seed']) for p in run} == {(TASK, 0)}
    assert len({p['attempt'] for p in run}) == 1
    screens = [p for p in run if p['kind'] == 'screen']
    held_back = [p for p in run if p['kind'] == 'held_back']
    finals = [p for p in run if p['kind'] == 'final']
    assert len(finals) == 1 and run[-1] is finals[-1]
    assert finals[0]['status'] == outcome['status']
    assert finals[0]['env_steps'] == outcome['env_steps']
    assert screens and all(p['episodes'] == 2 for p in screens)
    assert all(p['episodes'] == 3 and p['kind'] == 'held_back' for p in held_back)
    # Budgets are played at the first episode end past them (unless the run stopped first).
    if outcome['status'] == 'budget':
        assert [p['budget'] for p in held_back if p['at'] == 'budget'] == [200, 400]
        assert screens[-1]['env_steps'] >= TINY['max_steps']
    # Human steps only grow; each screen's share is of the steps since the last one.
    steps = [p['env_steps'] for p in screens]
    assert steps == sorted(steps)
    assert sum(p['interval_steps'] for p in screens) == screens[-1]['env_steps']
    humans = [p['human_steps'] for p in screens]
    assert humans == sorted(humans)
    assert sum(p['interval_human_steps'] for p in screens) == humans[-1]
    for point in screens:
        assert point['human_share'] == pytest.approx(
            point['interval_human_steps'] / point['interval_steps'])
    # A screening or training seed that falls in the held-back set is moved off it.
    drawn = learning.fresh_seed(5, 0, ())
    assert learning.fresh_seed(5, 0, {drawn}) != drawn

    assert learning.main(['--table', str(results)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines()
               if line.startswith(f'| {TASK} | residual_operator |'))
    assert f'(n={TINY["eval_episodes"]})' in row  # the base beside the figures
    assert '**residual_operator**' in table


def test_a_run_past_its_deadline_leaves_its_points_and_a_final_line(tmp_path, base_checkpoint):
    import time
    learning = _module('learning')
    results = tmp_path / 'results.jsonl'
    options = dict(TINY, results=str(results), base_checkpoints={TASK: base_checkpoint})
    assert learning.run(TASK, 'residual_operator', 1,
                        dict(options, deadline=time.time() - 1))['status'] == 'not_started'
    assert not results.exists()
    # A deadline that passes during the run (it takes seconds): stopped between episodes or
    # evaluations, with a final line; not finished, so a later call runs it again.
    result = learning.run(TASK, 'residual_no_human', 1, dict(options, deadline=time.time() + 0.5))
    points = [json.loads(line) for line in results.read_text().splitlines()]
    assert result['status'] == 'cut_off'
    assert points[-1]['kind'] == 'final' and points[-1]['status'] == 'cut_off'
    assert points[-1]['env_steps'] < TINY['max_steps']
    assert (TASK, 'residual_no_human', 1) not in learning.finished_runs(results)


class _Clock:
    """time.time() that passes the deadline (1.0) at its ``calls``-th reading."""

    def __init__(self, calls: int):
        self.calls = calls

    def time(self) -> float:
        self.calls -= 1
        return 0.0 if self.calls > 0 else 2.0

    @staticmethod
    def monotonic() -> float:
        import time
        return time.monotonic()


def test_a_cut_off_run_goes_on_from_its_state_as_the_same_attempt(
        tmp_path, base_checkpoint, monkeypatch):
    learning = _module('learning')
    results, state_dir = tmp_path / 'results.jsonl', tmp_path / 'state'
    options = dict(TINY, results=str(results), base_checkpoints={TASK: base_checkpoint},
                   state_dir=str(state_dir))
    # Cut off at the fourth reading of the clock: after the first training episode, in the
    # middle of the first screen (two episodes, one reading each).
    monkeypatch.setattr(learning, 'time', _Clock(4))
    first = learning.run(TASK, 'residual_no_human', 0, dict(options, deadline=1.0))
    assert first['status'] == 'cut_off'
    assert 0 < first['env_steps'] < TINY['max_steps']
    assert list(state_dir.iterdir()) == [state_dir / f'{TASK}__residual_no_human__0.pt']
    monkeypatch.undo()
    second = learning.run(TASK, 'residual_no_human', 0, options)
    assert second['status'] in ('budget', 'reached', 'stopped_unconfirmed')
    assert not list(state_dir.iterdir())  # finished: its state is gone
    points = [json.loads(line) for line in results.read_text().splitlines()]
    assert len({p['attempt'] for p in points}) == 1
    screens = [p for p in points if p['kind'] == 'screen']
    # The screen the cut interrupted is played when the run goes on, at the same steps.
    assert screens[0]['env_steps'] == first['env_steps']
    assert sum(p['interval_steps'] for p in screens) == screens[-1]['env_steps']
    final = points[-1]
    assert final['kind'] == 'final' and final['env_steps'] == second['env_steps']
    # The learner went on too: one update per step since the start, not since the restart.
    assert final['updates'] == final['env_steps']
    assert (TASK, 'residual_no_human', 0) in learning.finished_runs(results)
    table = learning.results_table()
    (run,) = table.runs_of(table.read_points([results]))[(TASK, 'residual_no_human')]
    assert run.finished and run.env_steps == second['env_steps']


def test_residual_rl_with_demonstrations_relabels_them_with_the_base_policy(base_checkpoint):
    learning = _module('learning')
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_sim.headless_cell import HeadlessCell
    settings = learning.cell_settings(TASK)
    base = BCPolicy(base_checkpoint)
    cell = HeadlessCell(TASK, base)
    try:
        options = dict(TINY, demos=2)
        learner, _ = learning._learners(TASK, 'residual_operator_demos', 0, options, settings,
                                        cell, base)
        full, _ = learning._learners(TASK, 'full_rl_operator', 0, options, settings, cell, base)
    finally:
        cell.close()
    assert learner.demo_steps > 0 and learner.demo_steps == full.demo_steps
    assert len(learner.online) == 0  # demonstrations are not robot steps
    stored = learner.intervention._data
    count = len(learner.intervention)
    relabelled = np.stack([base.act({'task_state': o})[0]
                           for o in stored['observation'][:count]])
    assert np.allclose(stored['base_action'][:count], relabelled, atol=1e-6)
    assert not np.allclose(relabelled, 0.0)
    assert np.all(full.intervention._data['base_action'][:count] == 0.0)


def test_pixel_demonstrations_hold_what_the_pixel_residual_sees_and_the_relabelled_base(
        base_checkpoint):
    learning = _module('learning')
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_sim.demos import collect_demonstrations
    from hilresrl_sim.headless_cell import HeadlessCell
    settings = learning.cell_settings(TASK, {'image_size': [36, 36]}, pixels=True)
    sensors = settings['sensors']
    base = BCPolicy(base_checkpoint)
    cell = HeadlessCell(TASK, base, sensors=sensors)
    try:
        learner, _ = learning._learners(TASK, 'pixels_operator_demos', 0, dict(TINY, demos=2),
                                        settings, cell, base)
        obs_dim = cell.sensed()[0].size
    finally:
        cell.close()
    # The same demonstrations, recorded again, and what the learner should have made of them.
    demos = collect_demonstrations(TASK, 2, 0.1, seed=learning._DEMO_STREAM,
                                   cameras=[camera for _, camera in sensors.cameras],
                                   image_size=36)
    count = len(learner.intervention)
    assert count == learner.demo_steps > 0 and len(learner.online) == 0
    stored = learner.intervention._data
    assert stored['observation'].shape[1] == obs_dim != demos.observations.shape[1]
    first = demos.step_arrays(0)
    assert np.allclose(stored['observation'][0], np.concatenate(
        [np.ravel(first[name]) for name in sensors.inputs]), atol=1e-6)
    corner = 'image/camera/corner/image_raw'
    frames = learner.intervention.frames.frames(np.arange(count))[corner]
    assert np.array_equal(frames[0], first[corner].transpose(2, 0, 1))
    # Relabelled from the task state, which the pixel residual never sees.
    relabelled = base.act({'task_state': demos.observations[0]})[0]
    assert np.allclose(stored['base_action'][0], relabelled, atol=1e-6)

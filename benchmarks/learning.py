"""
Env steps and human-controlled steps to 95% success: residual RL with the operator, on a broad set.

Headless and parallel: each run drives the simulated task through the suite's cores
(hilresrl_sim.headless_cell: base policy, residual, SpaceMouse arbitration, safety filter, the
simulated person) and learns with the same ResidualLearner the learner node runs. No ROS: it runs
where only PyTorch, MuJoCo, Meta-World, gymnasium and gym-hil are installed (PYTHONPATH set to
the src/<package> folders). No per-task tuning: every Meta-World task runs with the settings of
the sim cell profile (config/cells/sim.yaml), PandaPickCube with sim_panda.yaml.

Tasks (default): twelve Meta-World v3 tasks, each with a scripted expert in metaworld.policies and
a BC base policy the suite's builder lands in its 30-70% band (FAMILIES below), plus PandaPickCube.

Methods, side by side on the same seeds (the default set is the first five):
  base               the frozen BC base policy alone (evaluated once)
  residual_operator_demos  residual RL with the simulated operator intervening and 20 scripted
                     demonstrations in the intervention buffer, their base action relabelled
                     by the frozen base policy (the main method: what the learner node does
                     with demonstrations:=auto)
  residual_operator  the same without demonstrations: the person's corrections alone
  residual_no_human  residual RL, nobody intervenes
  full_rl_operator   full-action RL from scratch with the same operator plus the same 20
                     demonstrations (the HIL-SERL recipe)
and, not by default, learning without privileged state:
  pixels_operator    residual_operator, but the residual and the critic see what a real cell's
                     sensors give, never the task state: the profile sim_pixels (sim_panda_pixels
                     for PandaPickCube) names the cameras (rendered by the simulator), the
                     proprioception and the wrist wrench; the base policy and the simulated
                     person still read the task state. No demonstrations. Its learner runs on
                     --image-device.
  pixels_operator_demos  the same with the 20 scripted demonstrations, recorded with the
                     profile's cameras and proprioception (what demonstrations:=auto loads on
                     a pixel cell), their base action relabelled from the task state
and, with a flow-matching base policy (hilresrl_policy.flow_bc), the learner node's actor modes,
all with the operator: flow_base, flow_residual, flow_latent, flow_dual.

Evaluation: the stopping rule and the reported success use different episodes.
  screening  every --screen-every env steps, --screen-episodes episodes from fresh seeds (no
             exploration, no intervention). A run STOPS at the first screen at which the last
             --stop-screens screens together succeed in at least --target of their episodes.
  held-back  --eval-episodes episodes of a fixed set per seed, disjoint from every screening
             and training seed, played at the fixed budgets (5k, 10k, 20k env steps: the first
             episode end at or past each), at the stop and at the end of the step budget. It
             never decides anything in the run. A run that stops before a budget keeps its
             policy: its success at that budget is the held-back success at the stop.
  steps to 95%  a run reaches the target at the env steps of its stop if the held-back set,
             played there once, succeeds in at least --target of its episodes; if it does not
             (a lucky screen), or the run never stops, the run did not reach it within budget.
Human-controlled steps (the cell's per-episode count of steps whose executed action was the
person's) are summed per run; each screen records the person's share of the steps since the
previous screen, and the stop the total so far (for full_rl_operator the table adds the
demonstration steps, also a person's work).

Every point goes to the --results JSONL file as it comes, one line each (task, method, seed,
attempt, kind: screen | held_back | final, env_steps, human_steps, ...), so a run cut off by
--time-limit-s (checked between episodes and evaluations) still leaves its points and a final
line saying so. Runs with a final line of status reached or budget in the file are not run again;
a cut-off run leaves its state (networks, optimisers, buffers, counters) under --state-dir and
the next call goes on from it as the same attempt, so 20k-step runs fit in 10-minute calls.
Base policies are built on first use into $HILRESRL_HOME (--build-only builds them and
exits). The table (benchmarks/learning_table.py) reads the file.

    source scripts/env.sh && python benchmarks/learning.py --workers 2 --seeds 0 1 2
    python benchmarks/learning.py --build-only --workers 16                 # base policies
    python benchmarks/learning.py --workers 16 --time-limit-s 540 --results r.jsonl
    python benchmarks/learning.py --table r.jsonl
"""

import argparse
from concurrent.futures import as_completed, ProcessPoolExecutor
import json
import os
import pathlib
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple
import uuid

import numpy as np
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent

# The broad set, by what the robot does. Every base policy built by the suite's builder (seed 0,
# 50 episodes) inside its 30-70% band, 2026-11-29: pick-place 44%, shelf-place 34%, basketball
# 32%, peg-insert-side 58%, assembly 44%, push 38%, plate-slide 44%, hammer 46%, stick-push 38%,
# door-open 50%, drawer-open 62%, faucet-open 34%.
FAMILIES = {
    'pick and place': ('pick-place-v3', 'shelf-place-v3', 'basketball-v3', 'PandaPickCube'),
    'insertion': ('peg-insert-side-v3', 'assembly-v3'),
    'pushing': ('push-v3', 'plate-slide-v3'),
    'tool use': ('hammer-v3', 'stick-push-v3'),
    'articulated': ('door-open-v3', 'drawer-open-v3', 'faucet-open-v3'),
}
TASKS = tuple(task for tasks in FAMILIES.values() for task in tasks)
# The main method is what `hilresrl launch train` runs on a simulated cell: residual RL with the
# person, the intervention buffer preloaded with demonstrations (demonstrations:=auto).
MAIN_METHOD = 'residual_operator_demos'
DEFAULT_METHODS = ('base', 'residual_operator_demos', 'residual_operator', 'residual_no_human',
                   'full_rl_operator')
FLOW_METHODS = ('flow_base', 'flow_residual', 'flow_latent', 'flow_dual')
PIXEL_METHODS = ('pixels_operator', 'pixels_operator_demos')
METHODS = DEFAULT_METHODS + FLOW_METHODS + PIXEL_METHODS
FIXED_METHODS = ('base', 'flow_base')  # nothing learns: evaluated once
OPERATOR_METHODS = ('residual_operator', 'full_rl_operator', 'residual_operator_demos',
                    'flow_residual', 'flow_latent', 'flow_dual', 'pixels_operator',
                    'pixels_operator_demos')
# Methods whose intervention buffer starts with --demos scripted demonstrations.
DEMO_METHODS = ('full_rl_operator', 'residual_operator_demos', 'pixels_operator_demos')
PANDA_TASKS = ('PandaPickCube',)
BUDGETS = (5_000, 10_000, 20_000)
# Seed streams: the held-back set's, the screens', and the demonstrations of full-action RL.
_HELD_BACK_STREAM = 10_000
_SCREEN_STREAM = 20_000
_DEMO_STREAM = 100


def cell_settings(task: str, learner_set: Optional[Dict[str, object]] = None,
                  pixels: bool = False) -> dict:
    """
    Return the learner, operator and residual settings of the task's cell profile.

    Each node's values are its declared defaults (the tables the nodes declare), then the
    profile's "/**" section, then the node's own section, as ROS applies a parameter file;
    ``learner_set`` then overrides learner parameters by name, for every task alike (to
    measure a choice, never to tune a task). With ``pixels``, the profile without privileged
    state (sim_pixels, sim_panda_pixels), and under 'sensors' what its residual sees.
    """
    from hilresrl_common.parameters import defaults
    from hilresrl_learner.learner_parameters import config_settings, latent_scale
    from hilresrl_learner.learner_parameters import PARAMETERS as LEARNER
    from hilresrl_policy.base_policy_parameters import PARAMETERS as BASE_POLICY
    from hilresrl_policy.residual_policy_parameters import PARAMETERS as RESIDUAL_POLICY
    from hilresrl_sim.sim_cell_parameters import PARAMETERS as SIM_CELL
    from hilresrl_sim.simulated_operator_parameters import operator_settings
    from hilresrl_sim.simulated_operator_parameters import PARAMETERS as OPERATOR
    name = ('sim_panda' if task in PANDA_TASKS else 'sim') + ('_pixels' if pixels else '')
    name += '.yaml'
    profile = yaml.safe_load((REPO / 'config' / 'cells' / name).read_text())

    def node(table, name):
        values = defaults(table)
        for key in ('/**', f'/**/{name}'):
            given = (profile.get(key) or {}).get('ros__parameters', {})
            values.update((parameter, value) for parameter, value in given.items()
                          if parameter in values)
        return values

    learner = node(LEARNER, 'learner')
    unknown = sorted(set(learner_set or {}) - set(learner))
    if unknown:
        raise ValueError(f'not learner parameters: {", ".join(unknown)}')
    learner.update(learner_set or {})
    residual = node(RESIDUAL_POLICY, 'residual_policy')
    return {
        'sensors': pixel_sensors(learner, residual, node(SIM_CELL, 'sim_cell')) if pixels
        else None,
        'config': config_settings(learner),
        'update_to_data': learner['update_to_data'],
        'intervention_fraction': learner['intervention_fraction'],
        'exploration_std': residual['exploration_std'],
        'operator': operator_settings(node(OPERATOR, 'simulated_operator')),
        'latent_scale': latent_scale(learner),
        'latent_actor_lr': learner['latent.actor_lr'],
        'latent_exploration_std': node(BASE_POLICY, 'base_policy')['latent_exploration_std'],
    }


def pixel_sensors(learner: dict, residual: dict, sim_cell: dict):
    """
    Return the headless cell's SensorInputs for a pixel profile's residual and learner.

    The residual's policy_inputs, and the learner's cameras as the simulator renders them
    (camera input image/camera/<name>/image_raw is simulator camera <name>), at the learner's
    image size (learner_set may change it: the cell renders at that size).
    """
    from hilresrl_sim.headless_cell import SensorInputs
    if list(residual['camera_inputs']) != list(learner['camera_inputs']):
        raise ValueError(f'the profile\'s residual sees cameras {residual["camera_inputs"]}, '
                         f'its learner {learner["camera_inputs"]}')
    height, width = learner['image_size']
    if height != width:
        raise ValueError(f'image_size {height}x{width}: the simulator renders square frames')
    simulated = {f'image/camera/{camera}/image_raw': camera for camera in sim_cell['cameras']}
    missing = [name for name in learner['camera_inputs'] if name not in simulated]
    if missing:
        raise ValueError(f'camera inputs {missing}: the simulated cell renders '
                         f'{sorted(simulated)}')
    return SensorInputs(tuple(residual['policy_inputs']),
                        tuple((name, simulated[name]) for name in learner['camera_inputs']),
                        height)


def base_checkpoint(task: str, base_dir: Optional[pathlib.Path] = None,
                    kind: str = 'bc') -> pathlib.Path:
    """
    Return the task's base policy of kind bc or flow, built (as the main job builds it).

    It is where hilresrl launch looks for it ($HILRESRL_HOME/base_policies), or under
    ``base_dir`` by the same name.
    """
    from hilresrl_common.home import base_policy_folder
    from hilresrl_sim.base_policy_builder import build_base_policy
    path = base_policy_folder(task, kind)
    if base_dir is not None:
        path = pathlib.Path(base_dir) / path.name
    if not (path / 'config.json').is_file():
        build_base_policy(task, path, kind=kind,
                          progress=lambda line: print(f'[{task} {kind}] {line}', flush=True))
    return path


def schedule(tasks: Sequence[str], methods: Sequence[str],
             seeds: Sequence[int]) -> List[Tuple[str, str, int]]:
    """
    Return the runs in the order they start: the main method's first, then the others.

    Within a method, seed by seed over the tasks, so a cut-off benchmark still has every task's
    first seed. (A time limit then cuts the last methods, never the main one first.)
    """
    ordered = sorted(methods, key=lambda method: (method != MAIN_METHOD,
                                                  METHODS.index(method)))
    return [(task, method, seed) for method in ordered for seed in seeds for task in tasks]


def fresh_seed(stream: int, index: int, excluded: Iterable[int]) -> int:
    """Return reset seed ``index`` of ``stream``, moved off any seed in ``excluded``."""
    from hilresrl_sim.demos import episode_seed
    value = episode_seed(stream, index)
    while value in excluded:
        value = (value + 1) % 2 ** 31
    return value


class PointWriter:
    """Append a run's points to the JSONL results file as they come, one line each."""

    def __init__(self, path: Optional[str], task: str, method: str, seed: int,
                 attempt: Optional[str] = None):
        self.path = path
        self.key = {'task': task, 'method': method, 'seed': seed,
                    'attempt': attempt or uuid.uuid4().hex[:12]}
        self.points: List[dict] = []

    def write(self, point: dict) -> dict:
        """Record one point (with the run's key) and return it as written."""
        line = dict(self.key, **point)
        self.points.append(line)
        if self.path is not None:
            # One write of one line to a file opened for appending: workers' lines never mix.
            with open(self.path, 'a') as stream:
                stream.write(json.dumps(line) + '\n')
        return line


def human_steps_of(outcome) -> int:
    """Return the steps of an episode under the person's control, as the cell reports them."""
    reported = getattr(outcome, 'human_steps', None)
    if reported is not None:
        return int(reported)
    # (A cell that reports no count: the steps whose executed action was the person's.)
    return sum(t.human_action is not None for t in outcome.transitions)


def run(task: str, method: str, seed: int, options: dict) -> dict:
    """
    Run one (task, method, seed), writing its points as they come; return its outcome.

    ``options`` holds the command line's settings (max_steps, target, screen_every,
    screen_episodes, eval_episodes, demos, algorithm, residual_scale) and base_checkpoints
    (flow_checkpoints for the flow methods); optionally results (the JSONL path),
    stop_screens, budgets, deadline (time.time() at which to stop), actor_out, learner_set,
    state_dir. With a state_dir, a run cut off by the deadline leaves its state there (networks,
    optimisers, buffers, counters, the evaluations still owed) and the next call goes on from
    it, as the same attempt: a 20k-step run fits in several 10-minute calls.
    """
    from hilresrl_common.success_statistics import wilson_interval
    from hilresrl_sim.base_policy_builder import evaluation_seeds
    from hilresrl_sim.headless_cell import HeadlessCell
    from hilresrl_sim.operator_model import OperatorConfig
    deadline = options.get('deadline')
    saved = RunState(options.get('state_dir'), task, method, seed)
    state = saved.load()
    writer = PointWriter(options.get('results'), task, method, seed,
                         attempt=state['attempt'] if state else None)
    result = {'task': task, 'method': method, 'seed': seed, 'points': writer.points,
              'reached_at': None, 'final': None, 'env_steps': 0, 'human_steps': 0}
    if deadline is not None and time.time() >= deadline:
        return dict(result, status='not_started')

    def cut_off() -> bool:
        return deadline is not None and time.time() >= deadline

    import torch
    torch.set_num_threads(1)
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_policy.adapters.flow_policy import FlowBCPolicy
    settings = cell_settings(task, options.get('learner_set'), method in PIXEL_METHODS)
    flow = method in FLOW_METHODS
    base = (FlowBCPolicy(options['flow_checkpoints'][task], seed=seed) if flow
            else BCPolicy(options['base_checkpoints'][task]))
    full_rl = method == 'full_rl_operator'
    scale = (1.0,) if full_rl else tuple(options.get('residual_scale')
                                         or settings['config']['residual_scale'])
    with_operator = method in OPERATOR_METHODS
    operator = OperatorConfig(**settings['operator']) if with_operator else None
    cell = HeadlessCell(task, _ZeroPolicy(base.action_dim) if full_rl else base, operator,
                        residual_scale=scale, seed=seed, sensors=settings['sensors'])
    held_back = evaluation_seeds(_HELD_BACK_STREAM + seed, options['eval_episodes'])
    excluded = frozenset(held_back)
    if state is not None:
        learner, steering = _Learner(state['learner']), state['steering']
        result.update(final=state['final'], reached_at=state['reached_at'])
        print(f'[{task} {method} seed {seed}] goes on from {state["env_steps"]} steps',
              flush=True)
    elif method not in FIXED_METHODS:
        learner, steering = _learners(task, method, seed, options, settings, cell, base)
    else:
        learner = steering = None
    # The loop's counters: all of them in the saved state, so a later call goes on exactly.
    loop = state['loop'] if state else {
        'env_steps': 0, 'human_steps': 0, 'episode': 0, 'screens': [],
        'next_screen': options['screen_every'], 'since_screen': [0, 0],
        'budgets': [b for b in options.get('budgets', ()) if b <= options['max_steps']],
        'stop_pending': False}
    started = time.monotonic() - (state['wall_s'] if state else 0.0)

    def policy(observation, base_action, explore, frames=None):
        if learner is None or method == 'flow_latent':
            return np.zeros_like(base_action)
        return learner.residual(observation, base_action,
                                settings['exploration_std'] if explore else 0.0, frames)

    latent = steering.latent if steering is not None else None

    def evaluate(seeds: Sequence[int]) -> Optional[dict]:
        """Play the episodes without exploration or intervention; None if cut off."""
        successes = 0
        for reset_seed in seeds:
            if cut_off():
                return None
            successes += cell.run_episode(reset_seed, policy, explore=False,
                                          allow_intervention=False, latent=latent).success
        low, high = wilson_interval(successes, len(seeds))
        return {'success_rate': successes / len(seeds), 'successes': successes,
                'episodes': len(seeds), 'ci_low': low, 'ci_high': high}

    demo_steps = learner.demo_steps if learner is not None else 0

    def finish(status: str) -> dict:
        env_steps, human_steps = loop['env_steps'], loop['human_steps']
        if status == 'cut_off' and learner is not None:
            saved.save({'attempt': writer.key['attempt'], 'learner': learner.learner,
                        'steering': steering, 'loop': loop, 'final': result['final'],
                        'reached_at': result['reached_at'], 'env_steps': env_steps,
                        'wall_s': time.monotonic() - started})
        else:
            saved.remove()
        point = writer.write({'kind': 'final', 'status': status, 'env_steps': env_steps,
                              'human_steps': human_steps, 'demo_steps': demo_steps,
                              'max_steps': options['max_steps'], 'target': options['target'],
                              'budgets': list(options.get('budgets', ())),
                              'learner_set': options.get('learner_set') or {},
                              'reached_at': result['reached_at'],
                              'held_back': result['final'],
                              'updates': learner.updates if learner is not None else 0,
                              'wall_s': time.monotonic() - started})
        print(f'[{task} {method} seed {seed}] {status} after {env_steps} steps '
              f'({human_steps} by the person)' + (
                  f', held-back {100 * result["final"]["success_rate"]:.0f}%'
                  if result['final'] else ''), flush=True)
        cell.close()
        return dict(result, status=status, env_steps=env_steps, human_steps=human_steps,
                    wall_s=point['wall_s'])

    def held_back_point(at: str, budget: Optional[int]) -> Optional[dict]:
        outcome = evaluate(held_back)
        if outcome is None:
            return None
        result['final'] = writer.write(dict(
            outcome, kind='held_back', at=at, budget=budget, env_steps=loop['env_steps'],
            human_steps=loop['human_steps'], wall_s=time.monotonic() - started))
        return result['final']

    if method in FIXED_METHODS:
        return finish('budget' if held_back_point('base', None) else 'cut_off')

    stop_screens = options.get('stop_screens', 2)
    screens = loop['screens']
    while True:
        # The evaluations owed at these steps first: a counter moves only once its evaluation
        # is written, so a run cut off in one plays it again when it goes on.
        env_steps = loop['env_steps']
        crossed = [b for b in loop['budgets'] if env_steps >= b]
        if crossed:
            if not held_back_point('budget', max(crossed)):
                return finish('cut_off')
            loop['budgets'] = [b for b in loop['budgets'] if b not in crossed]
        if not loop['stop_pending'] and (env_steps >= loop['next_screen']
                                         or env_steps >= options['max_steps']):
            seeds = [fresh_seed(_SCREEN_STREAM + seed, len(screens) * 1000 + k, excluded)
                     for k in range(options['screen_episodes'])]
            outcome = evaluate(seeds)
            if outcome is None:
                return finish('cut_off')
            interval, interval_human = loop['since_screen']
            screens.append(writer.write(dict(
                outcome, kind='screen', env_steps=env_steps, human_steps=loop['human_steps'],
                interval_steps=interval, interval_human_steps=interval_human,
                human_share=interval_human / max(1, interval),
                episodes_trained=loop['episode'], wall_s=time.monotonic() - started)))
            loop['since_screen'] = [0, 0]
            loop['next_screen'] = env_steps + options['screen_every']
            print(f'[{task} {method} seed {seed}] {env_steps} steps: screen '
                  f'{100 * outcome["success_rate"]:.0f}%, person '
                  f'{100 * screens[-1]["human_share"]:.0f}% of the steps', flush=True)
            recent = screens[-stop_screens:]
            pooled = (sum(p['successes'] for p in recent) / sum(p['episodes'] for p in recent))
            loop['stop_pending'] = len(recent) == stop_screens and pooled >= options['target']
        if loop['stop_pending']:
            point = result['final']
            if point is None or point['env_steps'] != env_steps:
                point = held_back_point('stop', None)
                if point is None:
                    return finish('cut_off')
            else:
                point['at'] = 'stop'  # (a budget's evaluation at this very step serves both)
            if point['success_rate'] >= options['target']:
                result['reached_at'] = {'env_steps': env_steps,
                                        'human_steps': loop['human_steps'],
                                        'wall_s': time.monotonic() - started}
            _save_actor(learner, options, result)
            return finish('reached' if result['reached_at'] else 'stopped_unconfirmed')
        if env_steps >= options['max_steps']:
            break
        if cut_off():
            return finish('cut_off')
        outcome = cell.run_episode(fresh_seed(seed, loop['episode'], excluded), policy,
                                   explore=True, allow_intervention=with_operator,
                                   keep_transitions=True, latent=latent,
                                   subtasks=options.get('subtasks', 1))
        loop['episode'] += 1
        learner.store(outcome.transitions, loop['episode'])
        if steering is not None:
            steering.store(outcome.transitions, loop['episode'])
        episode_human = human_steps_of(outcome)
        loop['env_steps'] += len(outcome.transitions)
        loop['human_steps'] += episode_human
        loop['since_screen'][0] += len(outcome.transitions)
        loop['since_screen'][1] += episode_human
        if method != 'flow_latent':  # (the refinement actor alone acts)
            learner.train_due()
        if steering is not None:
            steering.train_due(loop['env_steps'])
    if result['final'] is None or result['final']['env_steps'] != loop['env_steps']:
        if not held_back_point('end', None):
            return finish('cut_off')
    _save_actor(learner, options, result)
    return finish('budget')


class RunState:
    """A cut-off run's state in state_dir, to go on from in a later call (none: no state)."""

    def __init__(self, state_dir: Optional[str], task: str, method: str, seed: int):
        self.path = (pathlib.Path(state_dir) / f'{task}__{method}__{seed}.pt'
                     if state_dir else None)

    def load(self) -> Optional[dict]:
        """Return the saved state, or None."""
        if self.path is None or not self.path.is_file():
            return None
        import torch
        return torch.load(self.path, weights_only=False)  # (our own file, written below)

    def save(self, state: dict) -> None:
        """Write the state whole or not at all (a file written aside, then renamed)."""
        if self.path is None:
            return
        import torch
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix('.partial')
        torch.save(state, partial)
        partial.replace(self.path)

    def remove(self) -> None:
        """Forget the state: the run finished."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _ZeroPolicy:
    """No base policy: the actor's output is the whole action (full-action RL)."""

    def __init__(self, action_dim: int):
        self.action_dim = action_dim

    def reset(self, instruction: str = '') -> None:
        """Nothing to reset."""

    def act(self, observation):
        """Return zeros: the residual is the action."""
        return np.zeros((1, self.action_dim), np.float32)


class _Learner:
    """The method's ResidualLearner, fed episode by episode at the cell profile's UTD."""

    def __init__(self, learner):
        self.learner = learner

    def __getattr__(self, name):
        return getattr(self.learner, name)

    def store(self, transitions, episode: int) -> None:
        """Add an episode's steps; each finished sub-task of a chain is an episode of its own."""
        from hilresrl_learner.training import StepRecord
        part = step = 0
        for t in transitions:
            self.learner.add(StepRecord(
                (episode, part), step, t.observation, t.base_action, t.executed_action,
                t.reward, t.next_observation, t.terminated, t.truncated, t.human_action,
                getattr(t, 'intervened_axes', None),  # (None: every axis the person's)
                frames=t.frames, next_frames=t.next_frames))
            part, step = (part + 1, 0) if t.terminated or t.truncated else (part, step + 1)

    def train_due(self) -> None:
        """Do the updates the update-to-data ratio owes (on a GPU in whole captured runs)."""
        self.learner.train(self.learner.whole_runs(self.learner.updates_due()))


class _Steering:
    """The refinement actor of actor modes latent and dual: TD3 on the flow policy's latent."""

    def __init__(self, config, settings: dict, seed: int, latent_dim: int, state_dim: int):
        from hilresrl_common.corrections import COMMAND_FEATURE_SIZE
        from hilresrl_learner.latent_steps import refinement_config
        from hilresrl_learner.training import ResidualLearner
        self.refiner = ResidualLearner(refinement_config(
            state_dim, latent_dim, config, settings['latent_actor_lr']),
            settings['update_to_data'], 0.0, seed=seed + 1)
        self.settings = settings
        self.latent_dim = latent_dim
        # No command here: the condition features are zeros.
        self.no_command = np.zeros(COMMAND_FEATURE_SIZE, np.float32)
        self.rng = np.random.default_rng([seed, 77])

    def latent(self, observation: np.ndarray, explore: bool) -> np.ndarray:
        """Return the latent to act from: sampled, as the base policy would, until trained."""
        from hilresrl_common.residual_contract import latent_from_unit
        scale = self.settings['latent_scale']
        if not self.refiner.agent.actor_updates:
            return np.clip(self.rng.normal(size=self.latent_dim), -scale,
                           scale).astype(np.float32)
        output = self.refiner.residual(
            np.concatenate([observation, self.no_command]),
            np.zeros(self.latent_dim, np.float32),
            self.settings['latent_exploration_std'] if explore else 0.0)
        return latent_from_unit(output, scale)

    def store(self, transitions, episode: int) -> None:
        """Add the steps the policy chose (not the person's) to the refinement actor."""
        from hilresrl_learner.latent_steps import steered_step
        part = step = 0
        for t in transitions:
            if t.human_action is None:
                self.refiner.add(steered_step(
                    (episode, part), step, t.observation, t.next_observation, t.latent,
                    self.no_command, t.reward, t.terminated, t.truncated,
                    self.settings['latent_scale']))
            part, step = (part + 1, 0) if t.terminated or t.truncated else (part, step + 1)

    def train_due(self, env_steps: int) -> None:
        """Keep pace with all the robot's steps."""
        self.refiner.train(self.refiner.whole_runs(self.refiner.updates_due(env_steps)))


def _learners(task: str, method: str, seed: int, options: dict, settings: dict, cell,
              base) -> Tuple[_Learner, Optional[_Steering]]:
    """Return the method's learner (demonstrations loaded) and refinement actor, if any."""
    from hilresrl_common.instruction_features import policy_vector
    from hilresrl_learner.residual_td3 import LearnerConfig
    from hilresrl_learner.training import demonstration_records, ResidualLearner
    from hilresrl_sim.demos import collect_demonstrations
    full_rl = method == 'full_rl_operator'
    seen = cell.sensed()[0]  # the task state, or the sensors' vector of a pixel cell
    config = LearnerConfig(obs_dim=seen.size, action_dim=base.action_dim,
                           **dict(settings['config'], residual_scale=tuple(cell.residual_scale),
                                  algorithm=options['algorithm']))
    device = options.get('device', 'cpu')
    if method in PIXEL_METHODS:
        device = options.get('image_device') or device
    learner = ResidualLearner(config, settings['update_to_data'],
                              settings['intervention_fraction'], seed=seed, device=device)
    if method in DEMO_METHODS:
        sensors = settings['sensors']
        demos = collect_demonstrations(
            task, options['demos'], 0.1, seed=_DEMO_STREAM + seed,
            cameras=[camera for _, camera in sensors.cameras] if sensors else (),
            image_size=sensors.image_size if sensors else 128)
        zeros = np.zeros(base.action_dim, np.float32)

        def base_action(observation):
            # What the frozen base policy does there, as the learner node relabels demos.
            if full_rl:
                return zeros
            base.reset(cell.task.instruction)
            return np.asarray(base.act({'task_state': observation})[0], np.float32)

        seen = frames = None
        if sensors is not None:  # what the pixel cell's residual sees, as the learner node reads
            seen = np.stack([policy_vector(demos.step_arrays(step), sensors.inputs,
                                           demos.instruction)
                             for step in range(len(demos.observations))])
            frames = {name: np.ascontiguousarray(demos.observed[name].transpose(0, 3, 1, 2))
                      for name, _ in sensors.cameras}
        for record in demonstration_records(demos, base_policy=base_action, observations=seen,
                                            frames=frames):
            learner.add(record, demonstration=True)
    steering = (_Steering(settings['config'], settings, seed, base.latent_dim,
                          cell.task.state_dim)
                if method in ('flow_latent', 'flow_dual') else None)
    return _Learner(learner), steering


def _save_actor(learner: _Learner, options: dict, result: dict) -> None:
    # The fine-tuned residual, for benchmarks that evaluate it further (long_horizon.py).
    if not options.get('actor_out'):
        return
    from hilresrl_policy.residual import serialize_actor
    weights = serialize_actor(learner.agent.actor)
    pathlib.Path(options['actor_out']).write_bytes(weights.blob)
    result['actor'] = {'path': options['actor_out'], 'sha256': weights.sha256,
                       'architecture': weights.architecture}


def results_table():
    """Return benchmarks/learning_table.py, the module that reads and tables the results."""
    here = str(pathlib.Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import learning_table
    return learning_table


def finished_runs(path: pathlib.Path) -> set:
    """Return the (task, method, seed) runs the results file holds a finished final line of."""
    return {(line['task'], line['method'], line['seed'])
            for line in results_table().read_points([path])
            if line['kind'] == 'final' and line['status'] not in ('cut_off',)}


def _one_thread() -> None:
    """Give each worker one torch thread: a worker per core, and no more threads than cores."""
    # Left at its default, every worker's torch took a thread per core: on 16 cores, 16 workers
    # evaluating base policies ran 30-50 steps/s instead of hundreds (measured on the H200
    # machine, 2026-11-29).
    import torch
    torch.set_num_threads(1)


def build_all(pool, tasks: Sequence[str], methods: Sequence[str],
              base_dir: Optional[pathlib.Path]) -> Dict[str, Dict[str, str]]:
    """Build (or find) every base policy the runs need, in parallel; return their paths."""
    kinds = ['bc'] + (['flow'] if set(methods) & set(FLOW_METHODS) else [])
    futures = {(kind, task): pool.submit(base_checkpoint, task, base_dir, kind)
               for kind in kinds for task in tasks}
    paths: Dict[str, Dict[str, str]] = {kind: {} for kind in kinds}
    for (kind, task), future in futures.items():
        paths[kind][task] = str(future.result())
    return paths


def learner_overrides(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict:
    """Return --learner-set's NAME=VALUE items as a dict (values read as YAML), checked."""
    if not items:
        return {}
    overrides = {}
    for item in items:
        name, equals, value = item.partition('=')
        if not equals or not name:
            parser.error(f'--learner-set takes NAME=VALUE, not {item!r}')
        overrides[name] = yaml.safe_load(value)
    try:
        cell_settings(TASKS[0], overrides)
    except ValueError as error:
        parser.error(f'--learner-set: {error}')
    return overrides


def main(argv=None) -> int:
    """Run the benchmark (or build, or print the table)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+', default=list(TASKS))
    parser.add_argument('--methods', nargs='+', default=list(DEFAULT_METHODS), choices=METHODS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--max-steps', type=int, default=BUDGETS[-1],
                        help='environment steps per run (the largest budget)')
    parser.add_argument('--target', type=float, default=0.95)
    parser.add_argument('--screen-every', type=int, default=1000)
    parser.add_argument('--screen-episodes', type=int, default=20)
    parser.add_argument('--stop-screens', type=int, default=2,
                        help='a run stops when this many last screens together reach --target')
    parser.add_argument('--eval-episodes', type=int, default=100,
                        help='episodes of the held-back set')
    parser.add_argument('--budgets', nargs='+', type=int, default=list(BUDGETS),
                        help='env steps at which the held-back set is played')
    parser.add_argument('--demos', type=int, default=20,
                        help='scripted demonstrations for full_rl_operator')
    parser.add_argument('--workers', type=int, default=os.cpu_count())
    parser.add_argument('--base-dir', type=pathlib.Path, default=None,
                        help='base policies (default: $HILRESRL_HOME/base_policies)')
    parser.add_argument('--results', type=pathlib.Path,
                        default=pathlib.Path('learning-results') / 'results.jsonl',
                        help='JSONL file the points are appended to')
    parser.add_argument('--state-dir', type=pathlib.Path, default=None,
                        help='where cut-off runs leave their state, to go on from in the next '
                             'call (default: beside --results, <name>-state)')
    parser.add_argument('--time-limit-s', type=float, default=None,
                        help='stop every run cleanly this long after the start (leave room for '
                             'one evaluation in flight)')
    parser.add_argument('--build-only', action='store_true',
                        help='build the base policies the runs need, then exit')
    parser.add_argument('--table', nargs='+', type=pathlib.Path, default=None, metavar='JSONL',
                        help='print the table of these results files, then exit')
    parser.add_argument('--image-device', default=None,
                        help='where the pixel methods learn (default: --device), e.g. cuda')
    parser.add_argument('--device', default='cpu',
                        help='torch device of the learners (cuda: every worker shares the GPU '
                             'for its updates; the cells stay on the CPU)')
    parser.add_argument('--algorithm', choices=('td3', 'sac'), default='td3',
                        help='residual TD3 (what the learner node runs) or residual SAC')
    parser.add_argument('--residual-scale', nargs='+', type=float, default=None,
                        help='residual scale per axis for the residual methods (default: the '
                             "cell profile's), e.g. to compare gripper scales")
    parser.add_argument('--learner-set', nargs='+', default=[], metavar='NAME=VALUE',
                        help='override learner parameters of the cell profile for every task '
                             '(YAML values), e.g. support_weight=1.0 warmup_updates=2000')
    args = parser.parse_args(argv)
    args.learner_set = learner_overrides(parser, args.learner_set)
    if args.table:
        tables = results_table()
        print(tables.table(tables.read_points(args.table), args.target))
        return 0
    started = time.monotonic()
    deadline = None if args.time_limit_s is None else time.time() + args.time_limit_s
    os.environ.setdefault('MUJOCO_GL', 'egl')
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = finished_runs(args.results) if args.results.is_file() else set()
    jobs = [job for job in schedule(args.tasks, args.methods, args.seeds) if job not in done]
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_one_thread) as pool:
        checkpoints = build_all(pool, args.tasks, args.methods, args.base_dir)
        if args.build_only:
            print('\n'.join(f'{kind} {task}: {path}' for kind, paths in checkpoints.items()
                            for task, path in paths.items()))
            return 0
        state_dir = args.state_dir or args.results.with_name(args.results.stem + '-state')
        options = dict(vars(args), results=str(args.results), deadline=deadline,
                       state_dir=str(state_dir),
                       base_dir=str(args.base_dir) if args.base_dir else None,
                       base_checkpoints=checkpoints['bc'],
                       flow_checkpoints=checkpoints.get('flow', {}))
        del options['table']
        print(f'{len(jobs)} runs ({len(done)} already in {args.results}), main method first',
              flush=True)
        futures = [pool.submit(run, *job, options) for job in jobs]
        for count, future in enumerate(as_completed(futures), 1):
            result = future.result()
            print(f'done {result["task"]} {result["method"]} seed {result["seed"]}: '
                  f'{result["status"]} ({count}/{len(futures)}, '
                  f'{time.monotonic() - started:.0f} s in all)', flush=True)
    tables = results_table()
    report = tables.table(tables.read_points([args.results]), args.target)
    print(report)
    (args.results.parent / 'table.md').write_text(report + '\n')
    print(f'points in {args.results}, table beside it ({time.monotonic() - started:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

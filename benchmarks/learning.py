"""
Steps to 95% evaluation success: residual RL with the operator against its baselines.

Headless and parallel: each run drives the simulated task through the suite's cores
(hilresrl_sim.headless_cell: base policy, residual, SpaceMouse arbitration, safety filter, the
simulated person) and learns with the same ResidualLearner the learner node runs, with the
settings of the task's cell profile (config/cells/sim.yaml, sim_panda.yaml). No ROS.

Methods, side by side on the same seeds:
  base               the frozen BC base policy alone (evaluated once)
  residual_operator  residual RL with the simulated operator intervening (the main job)
  residual_no_human  residual RL, nobody intervenes
  full_rl_operator   full-action RL from scratch with the same operator plus 20 scripted
                     demonstrations in the intervention buffer (the HIL-SERL recipe)

and with a generative base policy (flow-matching BC, hilresrl_policy.flow_bc, built from the
same noisy demonstrations), the three actor modes of the learner node, all with the operator:
  flow_base          the flow base policy alone, latents drawn from N(0, I)
  flow_residual      actor_mode residual: a residual on the flow policy's action
  flow_latent        actor_mode latent: the refinement actor chooses the latent, no residual
  flow_dual          actor_mode dual: the refinement actor steers, the residual corrects

Every ``--screen-every`` env steps a run plays ``--screen-episodes`` evaluation episodes (no
exploration, no intervention); at 90% or more, and at the end of the budget, it plays the
``--eval-episodes`` episodes of the fixed evaluation set. A run reaches the target when that
set's success is at least ``--target``, and stops there.

    source scripts/env.sh && python benchmarks/learning.py --workers 2 --seeds 0 1 2
"""

import argparse
from concurrent.futures import as_completed, ProcessPoolExecutor
import json
import os
import pathlib
import sys
import time
from typing import Optional

import numpy as np
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
TASKS = ('pick-place-v3', 'peg-insert-side-v3', 'assembly-v3', 'PandaPickCube')
METHODS = ('base', 'residual_operator', 'residual_no_human', 'full_rl_operator',
           'flow_base', 'flow_residual', 'flow_latent', 'flow_dual')
FLOW_METHODS = METHODS[4:]
PANDA_TASKS = ('PandaPickCube',)


def cell_settings(task: str) -> dict:
    """
    Return the learner, operator and residual settings of the task's cell profile.

    Each node's values are its declared defaults (the tables the nodes declare), then the
    profile's "/**" section, then the node's own section, as ROS applies a parameter file.
    """
    from hilresrl_common.parameters import defaults
    from hilresrl_learner.learner_parameters import config_settings, latent_scale
    from hilresrl_learner.learner_parameters import PARAMETERS as LEARNER
    from hilresrl_policy.base_policy_parameters import PARAMETERS as BASE_POLICY
    from hilresrl_policy.residual_policy_parameters import PARAMETERS as RESIDUAL_POLICY
    from hilresrl_sim.simulated_operator_parameters import operator_settings
    from hilresrl_sim.simulated_operator_parameters import PARAMETERS as OPERATOR
    name = 'sim_panda.yaml' if task in PANDA_TASKS else 'sim.yaml'
    profile = yaml.safe_load((REPO / 'config' / 'cells' / name).read_text())

    def node(table, name):
        values = defaults(table)
        for key in ('/**', f'/**/{name}'):
            given = (profile.get(key) or {}).get('ros__parameters', {})
            values.update((parameter, value) for parameter, value in given.items()
                          if parameter in values)
        return values

    learner = node(LEARNER, 'learner')
    return {
        'config': config_settings(learner),
        'update_to_data': learner['update_to_data'],
        'intervention_fraction': learner['intervention_fraction'],
        'exploration_std': node(RESIDUAL_POLICY, 'residual_policy')['exploration_std'],
        'operator': operator_settings(node(OPERATOR, 'simulated_operator')),
        'latent_scale': latent_scale(learner),
        'latent_actor_lr': learner['latent.actor_lr'],
        'latent_exploration_std': node(BASE_POLICY, 'base_policy')['latent_exploration_std'],
    }


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


def run(task: str, method: str, seed: int, options: dict) -> dict:
    """Run one (task, method, seed) and return its curve and outcome."""
    import torch
    torch.set_num_threads(1)
    from hilresrl_learner.latent_steps import refinement_config, steered_step
    from hilresrl_learner.residual_td3 import LearnerConfig
    from hilresrl_learner.training import demonstration_records, ResidualLearner, StepRecord
    from hilresrl_common.corrections import COMMAND_FEATURE_SIZE
    from hilresrl_common.residual_contract import latent_from_unit
    from hilresrl_common.success_statistics import wilson_interval
    from hilresrl_policy.adapters.base import BasePolicy
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_policy.adapters.flow_policy import FlowBCPolicy
    from hilresrl_sim.base_policy_builder import evaluation_seeds
    from hilresrl_sim.demos import collect_demonstrations, episode_seed
    from hilresrl_sim.headless_cell import HeadlessCell
    from hilresrl_sim.operator_model import OperatorConfig

    class ZeroPolicy(BasePolicy):
        """No base policy: the actor's output is the whole action (full-action RL)."""

        def __init__(self, action_dim):
            self.action_dim = action_dim

        def act(self, observation):
            return np.zeros((1, self.action_dim), np.float32)

    settings = cell_settings(task)
    started = time.monotonic()
    flow = method in FLOW_METHODS
    base = (FlowBCPolicy(options['flow_checkpoints'][task], seed=seed) if flow
            else BCPolicy(options['base_checkpoints'][task]))
    full_rl = method == 'full_rl_operator'
    scale = (1.0,) if full_rl else tuple(options['residual_scale']
                                         or settings['config']['residual_scale'])
    with_operator = method in ('residual_operator', 'full_rl_operator', 'flow_residual',
                               'flow_latent', 'flow_dual')
    learns_residual = method not in ('base', 'flow_base', 'flow_latent')
    steers = method in ('flow_latent', 'flow_dual')
    operator = OperatorConfig(**settings['operator']) if with_operator else None
    cell = HeadlessCell(task, ZeroPolicy(base.action_dim) if full_rl else base, operator,
                        residual_scale=scale, seed=seed)
    eval_seeds = evaluation_seeds(10_000 + seed, options['eval_episodes'])
    result = {'task': task, 'method': method, 'seed': seed, 'curve': [], 'reached_at': None}

    def evaluate(seeds, policy):
        # (latent: the refinement actor's choice, defined below, when it steers)
        successes = sum(cell.run_episode(s, policy, explore=False, allow_intervention=False,
                                         latent=latent if steers else None).success
                        for s in seeds)
        low, high = wilson_interval(successes, len(seeds))
        return {'success_rate': successes / len(seeds), 'ci_low': low, 'ci_high': high,
                'episodes': len(seeds)}

    if method in ('base', 'flow_base'):
        final = evaluate(eval_seeds, None)
        result.update(final=final, env_steps=0, wall_s=time.monotonic() - started)
        cell.close()
        return result

    config = LearnerConfig(obs_dim=cell.task.state_dim, action_dim=base.action_dim,
                           **dict(settings['config'], residual_scale=scale,
                                  algorithm=options['algorithm']))
    learner = ResidualLearner(config, settings['update_to_data'],
                              settings['intervention_fraction'], seed=seed)
    if full_rl:
        demos = collect_demonstrations(task, options['demos'], 0.1, seed=100 + seed)
        zeros = np.zeros(base.action_dim, np.float32)
        for record in demonstration_records(demos.observations, demos.expert_actions,
                                            demos.episode_index, demos.episode_success,
                                            base_policy=lambda observation: zeros):
            learner.add(record, demonstration=True)

    # The refinement actor: TD3 on the latent, as the learner node runs it (no command here:
    # its condition features are zeros).
    refiner = ResidualLearner(refinement_config(
        cell.task.state_dim, base.latent_dim, settings['config'], settings['latent_actor_lr']),
        settings['update_to_data'], 0.0, seed=seed + 1) if steers else None
    no_command = np.zeros(COMMAND_FEATURE_SIZE, np.float32)
    latent_scale = settings['latent_scale']
    latent_rng = np.random.default_rng([seed, 77])

    def policy(observation, base_action, explore):
        if not learns_residual:
            return np.zeros_like(base_action)
        return learner.residual(observation, base_action,
                                settings['exploration_std'] if explore else 0.0)

    def latent(observation, explore):
        # Sampled, as the base policy itself would, until the refinement actor has moved.
        if not refiner.agent.actor_updates:
            return np.clip(latent_rng.normal(size=base.latent_dim), -latent_scale,
                           latent_scale).astype(np.float32)
        output = refiner.residual(np.concatenate([observation, no_command]),
                                  np.zeros(base.latent_dim, np.float32),
                                  settings['latent_exploration_std'] if explore else 0.0)
        return latent_from_unit(output, latent_scale)

    episode, next_screen, env_steps = 0, options['screen_every'], 0
    final = None
    while env_steps < options['max_steps']:
        # (chained scenes: 'subtasks' sub-tasks back to back, each an episode for learning)
        outcome = cell.run_episode(episode_seed(seed, episode), policy, explore=True,
                                   allow_intervention=with_operator, keep_transitions=True,
                                   latent=latent if steers else None,
                                   subtasks=options.get('subtasks', 1))
        part, step = 0, 0
        for t in outcome.transitions:
            learner.add(StepRecord((episode, part), step, t.observation, t.base_action,
                                   t.executed_action, t.reward, t.next_observation,
                                   t.terminated, t.truncated, t.human_action))
            if steers and t.human_action is None:
                refiner.add(steered_step((episode, part), step, t.observation,
                                         t.next_observation, t.latent, no_command, t.reward,
                                         t.terminated, t.truncated, latent_scale))
            part, step = (part + 1, 0) if t.terminated or t.truncated else (part, step + 1)
        env_steps += len(outcome.transitions)
        if learns_residual:
            learner.train(learner.updates_due())
        if steers:
            refiner.train(refiner.updates_due(env_steps))
        episode += 1
        if env_steps < next_screen and env_steps < options['max_steps']:
            continue
        next_screen = env_steps + options['screen_every']
        screen_seeds = [episode_seed(20_000 + seed, episode * 100 + k)
                        for k in range(options['screen_episodes'])]
        point = dict(evaluate(screen_seeds, policy), kind='screen', env_steps=env_steps,
                     wall_s=time.monotonic() - started,
                     intervention_rate=outcome.intervention_steps / max(1, outcome.steps))
        result['curve'].append(point)
        if point['success_rate'] >= 0.9 or env_steps >= options['max_steps']:
            final = dict(evaluate(eval_seeds, policy), kind='eval',
                         env_steps=env_steps, wall_s=time.monotonic() - started)
            result['curve'].append(final)
            if final['success_rate'] >= options['target']:
                result['reached_at'] = {'env_steps': env_steps,
                                        'wall_s': final['wall_s']}
                break
        print(f'[{task} {method} seed {seed}] {env_steps} steps: screen '
              f'{100 * point["success_rate"]:.0f}%' + (
                  f', eval {100 * final["success_rate"]:.0f}%' if final is not None
                  and final['env_steps'] == env_steps else ''), flush=True)
    result.update(final=final, env_steps=env_steps, wall_s=time.monotonic() - started,
                  updates=learner.updates,
                  latent_updates=refiner.updates if refiner is not None else 0)
    if options.get('actor_out') and learns_residual:
        # The fine-tuned residual, for benchmarks that evaluate it further (long_horizon.py).
        from hilresrl_policy.residual import serialize_actor
        weights = serialize_actor(learner.agent.actor)
        pathlib.Path(options['actor_out']).write_bytes(weights.blob)
        result['actor'] = {'path': options['actor_out'], 'sha256': weights.sha256,
                           'architecture': weights.architecture}
    cell.close()
    return result


def table(results, tasks, methods, target) -> str:
    """Return the markdown table: per task and method, steps and time to target, final."""
    from hilresrl_common.success_statistics import wilson_interval
    lines = ['| task | method | seeds at target | env steps to target (per seed) | '
             'wall-clock to target (s) | final success (95% CI) |',
             '|---|---|---|---|---|---|']
    for task in tasks:
        for method in methods:
            runs = sorted((r for r in results if r['task'] == task and r['method'] == method),
                          key=lambda r: r['seed'])
            if not runs:
                continue
            reached = [r['reached_at'] for r in runs]
            steps = ', '.join(str(r['env_steps']) if r else '-' for r in reached)
            wall = ', '.join(f'{r["wall_s"]:.0f}' if r else '-' for r in reached)
            successes = sum(round(r['final']['success_rate'] * r['final']['episodes'])
                            for r in runs)
            episodes = sum(r['final']['episodes'] for r in runs)
            low, high = wilson_interval(successes, episodes)
            fixed = method in ('base', 'flow_base')
            at_target = ('n/a' if fixed
                         else f'{sum(r is not None for r in reached)}/{len(runs)}')
            lines.append(f'| {task} | {method} | {at_target} | '
                         f'{"n/a" if fixed else steps} | '
                         f'{"n/a" if fixed else wall} | '
                         f'{100 * successes / episodes:.1f}% '
                         f'({100 * low:.0f}-{100 * high:.0f}%) |')
    lines.append(f'\nTarget: {100 * target:.0f}% on the fixed evaluation set; final = the last '
                 'evaluation of each run (at the target or at the step budget), pooled over '
                 'seeds.')
    return '\n'.join(lines)


def plot(results, tasks, methods, path: pathlib.Path) -> None:
    """Save evaluation success against env steps, one panel per task."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure, axes = pyplot.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8),
                                   squeeze=False)
    colours = dict(zip(METHODS, ('0.4', 'tab:blue', 'tab:green', 'tab:red', '0.7',
                                 'tab:cyan', 'tab:orange', 'tab:purple')))
    for axis, task in zip(axes[0], tasks):
        for method in methods:
            for index, r in enumerate(r for r in results
                                      if r['task'] == task and r['method'] == method):
                label = method if index == 0 else None
                if method in ('base', 'flow_base'):
                    axis.axhline(r['final']['success_rate'], color=colours[method],
                                 linestyle='--', label=label)
                    continue
                points = [p for p in r['curve'] if p['kind'] == 'screen']
                axis.plot([p['env_steps'] for p in points], [p['success_rate'] for p in points],
                          color=colours[method], alpha=0.7, label=label)
                evals = [p for p in r['curve'] if p['kind'] == 'eval']
                axis.plot([p['env_steps'] for p in evals], [p['success_rate'] for p in evals],
                          'o', color=colours[method])
        axis.axhline(0.95, color='k', linewidth=0.5)
        axis.set_title(task)
        axis.set_xlabel('environment steps')
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel('evaluation success')
    axes[0][0].legend(fontsize=7, loc='lower right')
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv=None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--tasks', nargs='+', default=list(TASKS))
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--max-steps', type=int, default=20_000,
                        help='environment steps per run (the target budget)')
    parser.add_argument('--target', type=float, default=0.95)
    parser.add_argument('--screen-every', type=int, default=1000)
    parser.add_argument('--screen-episodes', type=int, default=20)
    parser.add_argument('--eval-episodes', type=int, default=100)
    parser.add_argument('--demos', type=int, default=20,
                        help='scripted demonstrations for full_rl_operator')
    parser.add_argument('--workers', type=int, default=os.cpu_count())
    parser.add_argument('--base-dir', type=pathlib.Path, default=None,
                        help='BC base policies (default: $HILRESRL_HOME/base_policies)')
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('learning-results'))
    parser.add_argument('--algorithm', choices=('td3', 'sac'), default='td3',
                        help='residual TD3 (what the learner node runs) or residual SAC')
    parser.add_argument('--residual-scale', nargs='+', type=float, default=None,
                        help='residual scale per axis for the residual methods (default: the '
                             "cell profile's), e.g. to compare gripper scales")
    args = parser.parse_args(argv)
    os.environ.setdefault('MUJOCO_GL', 'egl')

    base_dir = args.base_dir
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        built = {task: pool.submit(base_checkpoint, task, base_dir) for task in args.tasks}
        flows = {task: pool.submit(base_checkpoint, task, base_dir, 'flow')
                 for task in args.tasks if set(args.methods) & set(FLOW_METHODS)}
        checkpoints = {task: str(future.result()) for task, future in built.items()}
        options = dict(vars(args), base_checkpoints=checkpoints, out=str(args.out),
                       base_dir=str(base_dir) if base_dir else None,
                       flow_checkpoints={task: str(future.result())
                                         for task, future in flows.items()})
        # Longest first: runs that may take the whole budget start before quick ones.
        order = sorted(((t, m, s) for t in args.tasks for m in args.methods for s in args.seeds),
                       key=lambda job: job[1] in ('residual_operator', 'flow_dual',
                                                  'flow_residual'))
        futures = {pool.submit(run, *job, options): job for job in order}
        results = []
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            final = result['final']
            print(f'done {result["task"]} {result["method"]} seed {result["seed"]}: '
                  f'{100 * final["success_rate"]:.0f}% after {result["env_steps"]} steps, '
                  f'{result["wall_s"]:.0f} s ({len(results)}/{len(futures)}, '
                  f'{time.monotonic() - started:.0f} s in all)', flush=True)
            (args.out / 'results.json').write_text(json.dumps(results, indent=1))
    report = table(results, args.tasks, args.methods, args.target)
    print(report)
    (args.out / 'table.md').write_text(report + '\n')
    plot(results, args.tasks, args.methods, args.out / 'learning_curves.png')
    print(f'results, table and curves in {args.out} ({time.monotonic() - started:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())

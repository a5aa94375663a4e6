"""
Several robots, one learner: env steps per second and wall-clock to 95% evaluation success.

Headless and without ROS, in the shape of ``hilresrl launch train cell:=sim robots:=N``: N robot
processes each run the simulated cell's cores (base policy, residual, the simulated person,
arbitration, safety: hilresrl_sim.headless_cell) at a robot's control rate, ``--rate-hz`` per
robot (a real arm does not step faster because the computer is idle), and send their
transitions to one learner process, which trains the same ResidualLearner as the learner node at
the cell profile's update-to-data ratio and sends its weights back to every robot, as the
policy_weights topic does. An evaluator (niced, so that it takes what the robots and the
learner leave) plays the fixed evaluation set on snapshots of the weights: a run reaches the
target at the wall-clock time and env step of the first snapshot whose 100 evaluation episodes
reach ``--target``.

    source scripts/env.sh && python benchmarks/multi_robot.py --robots 1 2 4 --seeds 0
    # on the GPU machine (no ROS): the cores on PYTHONPATH, one process per seed and robot count
    export MUJOCO_GL=disable PYTHONPATH=$(ls -d $PWD/src/hilresrl_* | paste -sd:)
    python benchmarks/multi_robot.py --robots 2 --seeds 3 --learner-device cuda

The paper's claim (two robots: 2x efficiency) is about wall-clock with robots that run at a
fixed rate; this measures that, with the learner on this machine's CPU or (--learner-device)
on its GPU.
"""

import argparse
import json
import multiprocessing
import os
import pathlib
import queue
import sys
import time

from learning import base_checkpoint, cell_settings, learner_overrides
import numpy as np

SNAPSHOT_PERIOD_S = 20.0
BROADCAST_UPDATES, BROADCAST_PERIOD_S = 200, 5.0  # as the learner node's defaults


def _latest(inbox: multiprocessing.Queue):
    """Return the newest item waiting in a queue (None: none), dropping older ones."""
    item = None
    while True:
        try:
            item = inbox.get_nowait()
        except queue.Empty:
            return item


def robot(index: int, options: dict, transitions: multiprocessing.Queue,
          weights: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """Run training episodes at the robot's rate with the newest weights; send every step."""
    import torch
    torch.set_num_threads(1)
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_policy.residual import load_actor_weights, ResidualActor, ResidualConfig
    from hilresrl_sim.demos import episode_seed
    from hilresrl_sim.headless_cell import HeadlessCell
    from hilresrl_sim.operator_model import OperatorConfig

    settings = cell_settings(options['task'])
    seed = options['seed'] + 1000 * index  # as the launch graph seeds robot k
    cell = HeadlessCell(options['task'], BCPolicy(options['checkpoint']),
                        OperatorConfig(**settings['operator']),
                        residual_scale=settings['config']['residual_scale'], seed=seed)
    rng = np.random.default_rng(seed)
    actor = None
    episode = 0
    while not stop.is_set():
        update = _latest(weights)
        if update is not None:
            config = ResidualConfig.from_json(update['architecture'])
            actor = actor if actor is not None and actor.config == config \
                else ResidualActor(config)
            load_actor_weights(actor, update['blob'], update['sha256'], update['architecture'])

        def residual(observation, base_action, explore):
            if actor is None:
                return np.zeros_like(base_action)
            with torch.no_grad():
                output = actor(torch.from_numpy(observation)[None],
                               torch.from_numpy(base_action)[None])[0].numpy()
            return np.clip(output + rng.normal(0.0, settings['exploration_std'], output.shape),
                           -1.0, 1.0)

        started = time.monotonic()
        outcome = cell.run_episode(episode_seed(seed, episode), residual, explore=True,
                                   allow_intervention=True, keep_transitions=True)
        # A real arm takes 1 / rate_hz per step, however fast the computer is.
        time.sleep(max(0.0, outcome.steps / options['rate_hz'] - (time.monotonic() - started)))
        transitions.put((index, episode, [
            (t.observation, t.base_action, t.executed_action, t.reward, t.next_observation,
             t.terminated, t.truncated, t.human_action) for t in outcome.transitions],
            outcome.success))
        episode += 1
    cell.close()


def evaluator(options: dict, snapshots: multiprocessing.Queue,
              verdicts: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """Evaluate the newest snapshot: 20 screening episodes, then the 100-episode set."""
    os.nice(19)
    import torch
    torch.set_num_threads(1)
    from hilresrl_policy.adapters.bc_policy import BCPolicy
    from hilresrl_policy.residual import load_actor_weights, ResidualActor, ResidualConfig
    from hilresrl_sim.base_policy_builder import evaluation_seeds
    from hilresrl_sim.demos import episode_seed
    from hilresrl_sim.headless_cell import HeadlessCell

    settings = cell_settings(options['task'])
    cell = HeadlessCell(options['task'], BCPolicy(options['checkpoint']),
                        residual_scale=settings['config']['residual_scale'],
                        seed=options['seed'])
    eval_seeds = evaluation_seeds(10_000 + options['seed'], options['eval_episodes'])
    while not stop.is_set():
        snapshot = _latest(snapshots)
        if snapshot is None:
            time.sleep(0.2)
            continue
        actor = ResidualActor(ResidualConfig.from_json(snapshot['architecture']))
        load_actor_weights(actor, snapshot['blob'], snapshot['sha256'],
                           snapshot['architecture'])

        def residual(observation, base_action, explore):
            with torch.no_grad():
                return actor(torch.from_numpy(observation)[None],
                             torch.from_numpy(base_action)[None])[0].numpy()

        def success_rate(seeds):
            return sum(cell.run_episode(s, residual, allow_intervention=False).success
                       for s in seeds) / len(seeds)

        screen = success_rate([episode_seed(20_000 + options['seed'], snapshot['version'] * 100
                                            + k) for k in range(options['screen_episodes'])])
        verdict = {key: snapshot[key] for key in ('version', 'wall_s', 'env_steps')}
        verdict.update(screen=screen, evaluation=None)
        if screen >= 0.9:
            verdict['evaluation'] = success_rate(eval_seeds)
        verdicts.put(verdict)
    cell.close()


def run(robots: int, options: dict) -> dict:
    """Train with this many robots until the target or the budget; return the figures."""
    import torch
    torch.set_num_threads(1)
    from hilresrl_learner.residual_td3 import LearnerConfig
    from hilresrl_learner.training import ResidualLearner, StepRecord
    from hilresrl_policy.residual import serialize_actor

    settings = cell_settings(options['task'], options['learner_set'])
    context = multiprocessing.get_context('spawn')
    transitions, snapshots, verdicts = context.Queue(), context.Queue(), context.Queue()
    inboxes = [context.Queue() for _ in range(robots)]
    for outbox in inboxes + [snapshots]:  # weights nobody reads at the end must not block exit
        outbox.cancel_join_thread()
    stop = context.Event()
    processes = [context.Process(target=robot, args=(index, options, transitions,
                                                     inboxes[index], stop), daemon=True)
                 for index in range(robots)]
    processes.append(context.Process(target=evaluator, args=(options, snapshots, verdicts,
                                                             stop), daemon=True))
    for process in processes:
        process.start()
    learner = None
    started = time.monotonic()
    version, last_broadcast = 0, (0, started)
    next_snapshot = started + SNAPSHOT_PERIOD_S
    result = {'robots': robots, 'seed': options['seed'], 'task': options['task'],
              'rate_hz': options['rate_hz'], 'learner_device': options['learner_device'],
              'learner_set': options['learner_set'],
              'critic_heads': settings['config']['critic_heads'],
              'target_update_to_data': settings['update_to_data'],
              'reached_at': None, 'curve': [], 'episodes': 0,
              'train_successes': 0}
    last_report = started
    while True:
        now = time.monotonic()
        try:
            while True:
                index, episode, steps, success = transitions.get_nowait()
                result['episodes'] += 1
                result['train_successes'] += int(success)
                for step, values in enumerate(steps):
                    if learner is None:
                        config = LearnerConfig(obs_dim=values[0].size, action_dim=values[1].size,
                                               **settings['config'])
                        learner = ResidualLearner(config, settings['update_to_data'],
                                                  settings['intervention_fraction'],
                                                  device=options['learner_device'],
                                                  seed=options['seed'])
                    learner.add(StepRecord((index, episode), step, *values))
        except queue.Empty:
            pass
        if learner is not None:
            learner.train(learner.whole_runs(min(learner.updates_due(),
                                                 10 * learner.updates_per_call)))
            if learner.agent.actor_updates and learner.updates > last_broadcast[0] and (
                    learner.updates - last_broadcast[0] >= BROADCAST_UPDATES
                    or now - last_broadcast[1] >= BROADCAST_PERIOD_S):
                weights = serialize_actor(learner.agent.actor)
                version += 1
                message = {'version': version, 'blob': weights.blob, 'sha256': weights.sha256,
                           'architecture': weights.architecture}
                for inbox in inboxes:
                    inbox.put(message)
                last_broadcast = (learner.updates, now)
                if now >= next_snapshot:
                    snapshots.put(dict(message, wall_s=now - started,
                                       env_steps=learner.env_steps))
                    next_snapshot = now + SNAPSHOT_PERIOD_S
        try:
            while True:
                verdict = verdicts.get_nowait()
                result['curve'].append(verdict)
                print(f'[{robots} robot(s), seed {options["seed"]}] snapshot v{verdict["version"]}'
                      f' at {verdict["wall_s"]:.0f} s, {verdict["env_steps"]} steps: screen '
                      f'{100 * verdict["screen"]:.0f}%' + (
                          f', evaluation {100 * verdict["evaluation"]:.0f}%'
                          if verdict['evaluation'] is not None else ''), flush=True)
                if verdict['evaluation'] is not None and \
                        verdict['evaluation'] >= options['target'] and not result['reached_at']:
                    result['reached_at'] = {'wall_s': verdict['wall_s'],
                                            'env_steps': verdict['env_steps']}
        except queue.Empty:
            pass
        steps = learner.env_steps if learner is not None else 0
        if now - last_report >= 30.0:
            last_report = now
            print(f'[{robots} robot(s), seed {options["seed"]}] {now - started:.0f} s: {steps} '
                  f'steps ({steps / (now - started):.1f}/s), '
                  f'{learner.updates if learner else 0} updates', flush=True)
        if result['reached_at'] or now - started >= options['max_wall_s'] \
                or steps >= options['max_steps']:
            break
        if learner is None or not learner.updates_due():
            time.sleep(0.005)
    elapsed = time.monotonic() - started
    stop.set()
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    result.update(wall_s=elapsed, env_steps=learner.env_steps if learner else 0,
                  updates=learner.updates if learner else 0)
    result['steps_per_s'] = result['env_steps'] / elapsed
    result['update_to_data'] = result['updates'] / max(1, result['env_steps'])
    if options['learner_device'].startswith('cuda'):
        result['learner_gpu_peak_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def table(results) -> str:
    """Return the markdown table, one row per robot count (seeds pooled)."""
    lines = ['| robots | critic heads | env steps/s | updates per step (asked) | seeds at 95% | '
             'wall-clock to 95% (s, per seed) | x one robot | env steps to 95% (per seed) |',
             '|---|---|---|---|---|---|---|---|']
    by_robots = {}
    for result in results:
        by_robots.setdefault(result['robots'], []).append(result)
    one = {r['seed']: r['reached_at']['wall_s'] for r in by_robots.get(1, []) if r['reached_at']}
    for robots in sorted(by_robots):
        runs = sorted(by_robots[robots], key=lambda r: r['seed'])
        reached = [r['reached_at'] for r in runs]
        ratios = [r['reached_at']['wall_s'] / one[r['seed']] for r in runs
                  if r['reached_at'] and r['seed'] in one]
        lines.append(
            f'| {robots} | {runs[0].get("critic_heads", "-")} | '
            f'{np.mean([r["steps_per_s"] for r in runs]):.1f} | '
            f'{np.mean([r["update_to_data"] for r in runs]):.2f} '
            f'({runs[0].get("target_update_to_data", "-")}) | '
            f'{sum(r is not None for r in reached)}/{len(runs)} | '
            + ', '.join(f'{r["wall_s"]:.0f}' if r else '-' for r in reached) + ' | '
            + (f'{np.mean(ratios):.2f}' if ratios else '-') + ' | '
            + ', '.join(str(r['env_steps']) if r else '-' for r in reached) + ' |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--task', default='pick-place-v3')
    parser.add_argument('--robots', nargs='+', type=int, default=[1, 2, 4])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--rate-hz', type=float, default=10.0,
                        help="each robot's control rate (the sim cell's: 10 Hz)")
    parser.add_argument('--learner-device', default='cpu',
                        help="the learner's torch device (cuda on the GPU machine)")
    parser.add_argument('--target', type=float, default=0.95)
    parser.add_argument('--screen-episodes', type=int, default=20)
    parser.add_argument('--eval-episodes', type=int, default=100)
    parser.add_argument('--max-wall-s', type=float, default=1800.0)
    parser.add_argument('--max-steps', type=int, default=30_000)
    parser.add_argument('--base-dir', type=pathlib.Path, default=None)
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('multi-robot-results'))
    parser.add_argument('--learner-set', nargs='+', default=[], metavar='NAME=VALUE',
                        help="learner parameters over the cell profile's, e.g. critic.heads=10 "
                        'update_to_data=4 (every run alike)')
    args = parser.parse_args(argv)
    args.learner_set = learner_overrides(parser, args.learner_set)
    os.environ.setdefault('MUJOCO_GL', 'egl')
    checkpoint = base_checkpoint(args.task, args.base_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        for robots in args.robots:  # one run at a time: they would share the cores
            options = dict(vars(args), seed=seed, checkpoint=str(checkpoint), out=str(args.out))
            result = run(robots, options)
            results.append(result)
            print(f'done: {robots} robot(s), seed {seed}: {result["env_steps"]} steps in '
                  f'{result["wall_s"]:.0f} s ({result["steps_per_s"]:.1f} steps/s, UTD '
                  f'{result["update_to_data"]:.2f}), target '
                  + (f'at {result["reached_at"]["wall_s"]:.0f} s' if result['reached_at']
                     else 'not reached'), flush=True)
            (args.out / 'results.json').write_text(json.dumps(results, indent=1))
    report = table(results)
    print(report)
    (args.out / 'table.md').write_text(report + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

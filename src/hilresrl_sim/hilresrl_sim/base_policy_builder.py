"""
Build the default base policy a user "brings": a behaviour-cloning MLP of a simulated task.

It learns from noisy scripted demonstrations and is deliberately imperfect: the number of
demonstrations is adjusted until its measured success lies in a target band (default 30-70%).
With --kind flow it is a flow-matching policy instead, whose latent an actor can steer.
"""

import argparse
import pathlib
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hilresrl_common.home import base_policy_demonstrations, base_policy_folder
from hilresrl_common.success_statistics import wilson_interval
from hilresrl_policy.bc import BCNetwork, load_checkpoint, save_checkpoint, train_bc
from hilresrl_policy.flow_bc import FlowPolicy, load_flow_checkpoint, save_flow_checkpoint
from hilresrl_policy.flow_bc import train_flow
from hilresrl_policy.model_checkpoint import check_checkpoint_destination, CheckpointError
from hilresrl_sim.demos import collect_demonstrations, Demonstrations, episode_seed
from hilresrl_sim.tasks import make_task, SimTask
import numpy as np

DEFAULT_TASK = 'pick-place-v3'
DEFAULT_TARGET = (0.3, 0.7)
# Measured with noise 0.3 and 50 evaluation episodes: pick-place-v3 from 8/10/15 demonstrations
# reached 20/52/76% success, PandaPickCube from 5/10/20 reached 20/38/64%; start near the
# middle of the band so that one or two trainings usually suffice.
_FIRST_DEMOS = {'pick-place-v3': 10, 'PandaPickCube': 15}
_DEFAULT_FIRST_DEMOS = 10
NOISE_STD = 0.3
EPOCHS = 200
HIDDEN_SIZES = (256, 256)
BATCH_SIZE = 256
LEARNING_RATE = 1e-3
MAX_TRAININGS = 8
MAX_DEMOS = 400
KINDS = ('bc', 'flow')
# The flow policy from the same noisy demonstrations, measured on pick-place-v3 with 50
# evaluation episodes and latents drawn from N(0, I) (seed 0): 5/8/10/15/20 demonstrations
# reached 14/24/52/66/92% success, close to BC, so it starts from the same demo counts. A
# training takes about 3 s on one core.
FLOW_EPOCHS = 200
FLOW_HIDDEN_SIZES = (256, 256, 256)
FLOW_BATCH_SIZE = 256
FLOW_LEARNING_RATE = 1e-3
FLOW_STEPS = 8
# Evaluation seeds come from their own stream, apart from the demonstrations' seeds.
_EVALUATION_STREAM = 1_000_003
# And the latents a flow policy acts from during evaluation from another.
_LATENT_STREAM = 1_000_033

Progress = Optional[Callable[[str], None]]


def default_checkpoint_dir(task: str, kind: str = 'bc') -> pathlib.Path:
    """Return where the builder puts a task's checkpoint of ``kind`` unless told otherwise."""
    # The same place hilresrl launch looks for it; a flow policy beside the BC one.
    return base_policy_folder(task, kind)


def evaluation_seeds(seed: int, episodes: int) -> List[int]:
    """Return the reset seeds of the evaluation episodes of a build with ``seed``."""
    generator = np.random.default_rng([seed, _EVALUATION_STREAM])
    return [int(value) for value in generator.integers(2 ** 31, size=episodes)]


def evaluate(task: SimTask, network: BCNetwork, seeds: Sequence[int],
             max_steps: Optional[int] = None) -> List[bool]:
    """
    Run the network headless for one episode per seed; return whether each succeeded.

    ``network`` is anything with ``act(task_state) -> action`` (a ``LatentSampler`` for a
    flow policy).
    """
    limit = task.max_episode_steps if max_steps is None else max_steps
    outcomes = []
    for seed in seeds:
        task.reset(seed=seed)
        succeeded = False
        for _ in range(limit):
            task.step(network.act(task.task_state()))
            if task.success():
                succeeded = True
                break
        outcomes.append(succeeded)
    return outcomes


class LatentSampler:
    """A flow policy acting as its adapter does: each action from a fresh N(0, I) latent."""

    def __init__(self, model: FlowPolicy, seed: int):
        self.model = model
        self.latents = np.random.default_rng([seed, _LATENT_STREAM])

    def act(self, state: np.ndarray) -> np.ndarray:
        """Return the action for one task state, from the next latent."""
        latent = self.latents.standard_normal(self.model.config.latent_dim).astype(np.float32)
        return self.model.act(state, latent)


def build_base_policy(task: str, out_dir, target: Tuple[float, float] = DEFAULT_TARGET,
                      eval_episodes: int = 50, seed: int = 0,
                      progress: Progress = print, kind: str = 'bc') -> Dict:
    """
    Train and save a base policy of ``kind`` whose measured success lies in ``target``.

    Trains on the first N noisy expert demonstrations, evaluates on ``eval_episodes`` fresh
    seeds, and moves N (doubling, halving, then bisecting) until the success rate is inside
    ``target``; the same arguments give the same checkpoint. If no N lands in the band within
    a few trainings, the one closest to it is kept and ``in_band`` is False. Returns what was
    stored in the checkpoint's config.json, plus ``checkpoint`` and ``source_model``.

    kind 'bc' is a behaviour-cloning MLP (hilresrl_policy.bc); kind 'flow' a flow-matching
    policy (hilresrl_policy.flow_bc), evaluated with latents drawn from N(0, I).
    """
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {", ".join(KINDS)}, got {kind!r}')
    train_and_evaluate = _train_and_evaluate if kind == 'bc' else _train_and_evaluate_flow
    low, high = float(target[0]), float(target[1])
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f'target must be (low, high) with 0 <= low <= high <= 1, got {target}')
    if eval_episodes < 1:
        raise ValueError(f'eval_episodes must be at least 1, got {eval_episodes}')
    say = progress or (lambda line: None)
    started = time.monotonic()
    out_dir = pathlib.Path(out_dir)
    check_checkpoint_destination(out_dir)  # before minutes of work, not after
    task_env = make_task(task, seed=seed)
    try:
        seeds = evaluation_seeds(seed, eval_episodes)
        demos: Optional[Demonstrations] = None
        trials: List[Dict] = []
        below, above = 0, None  # most demonstrations known too few, fewest known too many
        count = _FIRST_DEMOS.get(task, _DEFAULT_FIRST_DEMOS)
        while True:
            if demos is None or demos.episodes < count:
                demos = _collect(task, max(count, 2 * (demos.episodes if demos else 0)), seed,
                                 say)
            trial = train_and_evaluate(task_env, demos.first_episodes(count), seeds, seed,
                                       len(trials) + 1, say)
            trials.append(trial)
            rate = trial['success_rate']
            if low <= rate <= high:
                break
            if rate < low:
                below = max(below, count)
                following = count * 2 if above is None else (count + above) // 2
            else:
                above = count if above is None else min(above, count)
                following = max(1, count // 2) if below == 0 else (below + count) // 2
            following = min(following, MAX_DEMOS)
            tried = {entry['demos'] for entry in trials}
            if len(trials) >= MAX_TRAININGS or following in tried:
                break
            count = following
        chosen = min(trials, key=lambda entry: (_distance(entry['success_rate'], low, high),
                                                entry['demos']))
        in_band = low <= chosen['success_rate'] <= high
        network = chosen['network']
        successes = chosen['successes']
        metadata = {
            'builder': 'hilresrl_sim.base_policy_builder',
            'task': task,
            'seed': seed,
            'success_rate': chosen['success_rate'],
            'success_interval_95': list(wilson_interval(successes, eval_episodes)),
            'target': [low, high],
            'in_band': in_band,
            'demonstrations': {
                'file': base_policy_demonstrations(out_dir).name,
                'episodes': chosen['demos'], 'steps': chosen['samples'],
                'noise_std': NOISE_STD, 'seed': seed,
                'episode_seeds': [episode_seed(seed, index) for index in range(chosen['demos'])],
                'expert_success_rate': chosen['demo_success_rate']},
            'training': {
                'epochs': EPOCHS, 'batch_size': BATCH_SIZE, 'learning_rate': LEARNING_RATE,
                'hidden_sizes': list(HIDDEN_SIZES), 'seed': seed, 'final_loss': chosen['loss']},
            'evaluation': {
                'episodes': eval_episodes, 'successes': successes,
                'max_episode_steps': task_env.max_episode_steps, 'seeds': seeds},
            'calibration': [{key: trial[key] for key in ('demos', 'success_rate')}
                            for trial in trials],
        }
        if kind == 'flow':
            metadata['training'] = {
                'kind': network.config.kind, 'objective': 'rectified flow',
                'epochs': FLOW_EPOCHS, 'batch_size': FLOW_BATCH_SIZE,
                'learning_rate': FLOW_LEARNING_RATE, 'hidden_sizes': list(FLOW_HIDDEN_SIZES),
                'integration_steps': FLOW_STEPS, 'seed': seed, 'final_loss': chosen['loss']}
            metadata['evaluation']['latents'] = {'distribution': 'N(0, I)',
                                                 'numpy_seed': [seed, _LATENT_STREAM]}
    finally:
        task_env.close()
    if kind == 'flow':
        path = save_flow_checkpoint(out_dir, network, metadata)
        source_model = f'{network.config.kind}:{task}@{load_flow_checkpoint(path).sha256[:12]}'
    else:
        path = save_checkpoint(out_dir, network, metadata)
        source_model = f'bc_mlp:{task}@{load_checkpoint(path).sha256[:12]}'
    # The demonstrations it learnt from, beside it: the learner preloads them (the person's
    # guidance over whole episodes, not only at the failures the person corrects).
    demos.first_episodes(chosen['demos']).save(base_policy_demonstrations(path))
    low_ci, high_ci = metadata['success_interval_95']
    verdict = 'inside' if in_band else 'OUTSIDE'
    say(f'saved {path} ({source_model}): success {chosen["success_rate"]:.0%} '
        f'(95% CI {low_ci:.0%}-{high_ci:.0%}) from {chosen["demos"]} demonstrations, '
        f'{verdict} the target {low:.0%}-{high:.0%}, in {time.monotonic() - started:.0f} s')
    return dict(metadata, checkpoint=str(path), source_model=source_model)


def _collect(task: str, episodes: int, seed: int, say: Callable[[str], None]) -> Demonstrations:
    started = time.monotonic()
    demos = collect_demonstrations(task, episodes, NOISE_STD, seed)
    say(f'demonstrations: {episodes} episodes of {task} with noise {NOISE_STD} '
        f'({len(demos)} steps, the expert succeeded in {demos.success_rate:.0%}) in '
        f'{time.monotonic() - started:.1f} s')
    return demos


def _train_and_evaluate(task: SimTask, demos: Demonstrations, seeds: Sequence[int], seed: int,
                        number: int, say: Callable[[str], None]) -> Dict:
    started = time.monotonic()
    losses: List[float] = []
    network = train_bc(demos.observations, demos.expert_actions, hidden_sizes=HIDDEN_SIZES,
                       epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
                       seed=seed, task=task.name,
                       progress=lambda epoch, loss: losses.append(loss))
    say(f'training {number}: {demos.episodes} demonstrations ({len(demos)} steps), '
        f'{EPOCHS} epochs, loss {losses[-1]:.4f} in {time.monotonic() - started:.1f} s')
    started = time.monotonic()
    outcomes = evaluate(task, network, seeds)
    successes = int(sum(outcomes))
    rate = successes / len(outcomes)
    low_ci, high_ci = wilson_interval(successes, len(outcomes))
    say(f'evaluation {number}: {successes}/{len(outcomes)} episodes succeeded, {rate:.0%} '
        f'(95% CI {low_ci:.0%}-{high_ci:.0%}) in {time.monotonic() - started:.1f} s')
    return {'demos': demos.episodes, 'samples': len(demos), 'success_rate': rate,
            'successes': successes, 'loss': losses[-1], 'network': network,
            'demo_success_rate': demos.success_rate}


def _train_and_evaluate_flow(task: SimTask, demos: Demonstrations, seeds: Sequence[int],
                             seed: int, number: int, say: Callable[[str], None]) -> Dict:
    started = time.monotonic()
    losses: List[float] = []
    model = train_flow(demos.observations, demos.expert_actions, hidden_sizes=FLOW_HIDDEN_SIZES,
                       steps=FLOW_STEPS, epochs=FLOW_EPOCHS, batch_size=FLOW_BATCH_SIZE,
                       learning_rate=FLOW_LEARNING_RATE, seed=seed, task=task.name,
                       progress=lambda epoch, loss: losses.append(loss))
    say(f'training {number}: flow matching on {demos.episodes} demonstrations '
        f'({len(demos)} steps), {FLOW_EPOCHS} epochs, loss {losses[-1]:.4f} in '
        f'{time.monotonic() - started:.1f} s')
    started = time.monotonic()
    # Every training of a build meets the same latents, as it meets the same episodes.
    outcomes = evaluate(task, LatentSampler(model, seed), seeds)
    successes = int(sum(outcomes))
    rate = successes / len(outcomes)
    low_ci, high_ci = wilson_interval(successes, len(outcomes))
    say(f'evaluation {number}: {successes}/{len(outcomes)} episodes succeeded, {rate:.0%} '
        f'(95% CI {low_ci:.0%}-{high_ci:.0%}, latents from N(0, I)) in '
        f'{time.monotonic() - started:.1f} s')
    return {'demos': demos.episodes, 'samples': len(demos), 'success_rate': rate,
            'successes': successes, 'loss': losses[-1], 'network': model,
            'demo_success_rate': demos.success_rate}


def _distance(rate: float, low: float, high: float) -> float:
    return max(low - rate, rate - high, 0.0)


def _valid_checkpoint(directory: pathlib.Path, task: str, kind: str = 'bc') -> Optional[str]:
    """Return why ``directory`` is not a usable ``kind`` checkpoint of ``task`` (None if it is)."""
    if not directory.exists():
        return 'there is none'
    try:
        if kind == 'flow':
            stored_task = load_flow_checkpoint(directory).model.config.task
        else:
            stored_task = load_checkpoint(directory).network.config.task
    except CheckpointError as error:
        return str(error)
    if stored_task != task:
        return f'it is for task {stored_task!r}'
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build the base policy from the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog='python -m hilresrl_sim.base_policy_builder', description=__doc__.strip())
    parser.add_argument('--task', default=DEFAULT_TASK,
                        help=f'simulated task (default {DEFAULT_TASK}; or PandaPickCube, or '
                             'another Meta-World v3 task)')
    parser.add_argument('--kind', choices=KINDS, default='bc',
                        help='bc: behaviour-cloning MLP (default); flow: flow-matching policy '
                             'whose latent can be steered (adapter flow_bc)')
    parser.add_argument('--out', type=pathlib.Path, default=None,
                        help='checkpoint directory (default ~/.cache/hilresrl/base_policies/'
                             '<task>, or <task>-flow for --kind flow)')
    parser.add_argument('--if-missing', action='store_true',
                        help='do nothing if --out already holds a valid checkpoint of the task')
    parser.add_argument('--eval-episodes', type=int, default=50,
                        help='evaluation episodes per training (default 50)')
    parser.add_argument('--seed', type=int, default=0, help='seed of everything (default 0)')
    parser.add_argument('--target', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                        default=DEFAULT_TARGET,
                        help='success band to land in (default 0.3 0.7)')
    args = parser.parse_args(argv)
    out_dir = args.out if args.out is not None else default_checkpoint_dir(args.task,
                                                                           args.kind)
    if args.if_missing:
        problem = _valid_checkpoint(out_dir, args.task, args.kind)
        if problem is None:
            print(f'{out_dir} already holds a base policy for {args.task}: nothing to do')
            return 0
        print(f'building a base policy for {args.task} at {out_dir}: {problem}')
    try:
        result = build_base_policy(args.task, out_dir, target=tuple(args.target),
                                   eval_episodes=args.eval_episodes, seed=args.seed,
                                   progress=lambda line: print(line, flush=True),
                                   kind=args.kind)
    except (ValueError, CheckpointError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    if not result['in_band']:
        print(f'warning: no number of demonstrations landed in the target band; kept the '
              f'closest ({result["success_rate"]:.0%})', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())

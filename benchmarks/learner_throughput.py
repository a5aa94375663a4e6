r"""
Learner updates per second: residual TD3 at batch 256 with 2 and 10 critic heads.

Each update is what the learner node does per step of its schedule: draw a mixed batch from the
replay buffers (n-step returns, a fifth of the steps a person's), one critic update of the whole
ensemble, and every second update after the warm-up one actor update, plus the target
networks' averaging. The networks are those of the main job (actor 256x256, critic heads 3x256
with LayerNorm, 39 observation values, 4 action axes). Sampling is included in every mode.

Modes: ``host`` draws batches from the host buffers and copies them over (the CPU's path, and
the GPU's before device replay); ``device`` draws them on the device (device_replay), eager;
``graphs`` runs of --graph-updates updates, sampling included, captured as CUDA graphs
(graphed_updates), what the learner does on a GPU; ``graphs-compile`` the same with the losses
through torch.compile (fused kernels inside the captured runs); ``compile`` and ``cudagraphs``
the losses through torch.compile (host sampling). Printed per configuration: updates/s, the
control rate it serves at update-to-data ratios 1, 4 and 20, and on a GPU the share of the time
the GPU spent in kernels (torch.profiler). With --reference, the reference update
(../shared/bench/learner_update_reference.py: random tensors, no sampling, one CUDA graph) runs
in the same run for the same head counts, and the ratio is printed.

    source scripts/env.sh && python benchmarks/learner_throughput.py            # this CPU
    PYTHONPATH=src/hilresrl_learner:src/hilresrl_policy:src/hilresrl_common python \
        benchmarks/learner_throughput.py --device cuda --modes host graphs --reference \
        path/to/learner_update_reference.py --output results.json
"""

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time

from hilresrl_common.residual_contract import IMAGE_ENCODER_LAYOUTS
from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import ResidualLearner, StepRecord
import numpy as np
import torch

OBS_DIM, ACTION_DIM = 39, 4
MODES = ('host', 'device', 'graphs', 'graphs-compile', 'compile', 'cudagraphs')


def filled_learner(heads: int, device: str, mode: str, graph_updates: int,
                   steps: int = 20_000, cameras: int = 0,
                   image_size: int = 128, image_encoder: str = '') -> ResidualLearner:
    """Return a learner with `steps` random transitions (a fifth of them human) in its buffers."""
    names = tuple(f'image/camera{index}/image_raw' for index in range(cameras))
    config = LearnerConfig(obs_dim=OBS_DIM, action_dim=ACTION_DIM, critic_heads=heads,
                           residual_scale=(0.5, 0.5, 0.5, 1.0), warmup_updates=0,
                           cameras=names, image_size=(image_size, image_size, 3) if names
                           else (), image_encoder=image_encoder if names else '')
    # A pool of random frames to draw from: the buffers store a copy of each step's.
    pool = np.random.default_rng(1).integers(0, 256, (64, 3, image_size, image_size),
                                             dtype=np.uint8) if names else None
    learner = ResidualLearner(
        config, device=device, use_compile=mode in ('compile', 'cudagraphs', 'graphs-compile'),
        device_replay=mode in ('device', 'graphs', 'graphs-compile'),
        graph_updates=graph_updates if mode.startswith('graphs') else 0)
    if mode in ('compile', 'cudagraphs'):
        learner.agent.compile_mode = 'default' if mode == 'compile' else 'reduce-overhead'
    rng = np.random.default_rng(0)
    for index in range(steps):
        episode, step = divmod(index, 100)
        human = rng.uniform(-1, 1, ACTION_DIM).astype(np.float32) if index % 5 == 0 else None
        frames = next_frames = None
        if names:
            frames = {name: pool[(index + k) % 64] for k, name in enumerate(names)}
            next_frames = {name: pool[(index + k + 1) % 64] for k, name in enumerate(names)}
        learner.add(StepRecord(episode, step, rng.normal(size=OBS_DIM).astype(np.float32),
                               rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                               rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                               float(step == 99), rng.normal(size=OBS_DIM).astype(np.float32),
                               step == 99, False, human, frames=frames,
                               next_frames=next_frames))
    return learner


def kernel_share(learner: ResidualLearner, calls: int, per_call: int) -> float:
    """Return the share of wall time the GPU spent in kernels over `calls` train calls."""
    from torch.profiler import profile, ProfilerActivity

    torch.cuda.synchronize()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        for _ in range(calls):
            learner.train(per_call)
        torch.cuda.synchronize()
    wall_us = (time.perf_counter() - started) * 1e6
    # Every kernel's own duration (the averages by operator leave out kernels launched from
    # captured graphs, and counted a graphed update's GPU a fifth busy when it was not idle).
    kernel_us = sum(event.device_time for event in profiler.events()
                    if event.device_type == torch.autograd.DeviceType.CUDA)
    return kernel_us / wall_us


def measure(heads: int, device: str, mode: str, seconds: float, graph_updates: int,
            cameras: int = 0, image_size: int = 128,
            encoder_precision: str = 'bfloat16', image_encoder: str = '') -> dict:
    """Return updates/s of one configuration, after a warm-up that includes any compilation."""
    learner = filled_learner(heads, device, mode, graph_updates,
                             steps=5_000 if cameras else 20_000, cameras=cameras,
                             image_size=image_size, image_encoder=image_encoder)
    if cameras:  # the convolutions' type on a GPU (image_encoder.CameraEncoder.gpu_dtype)
        for camera in learner.agent.encoder.cameras:
            camera.gpu_dtype = getattr(torch, encoder_precision)
    per_call = max(graph_updates, 8) * 4  # as the node asks: many updates per timer tick
    started = time.perf_counter()
    learner.train(3 * per_call)  # compiles or captures here, and warms caches and allocator
    float(learner.last_metrics['critic_loss'])
    warmup_s = time.perf_counter() - started
    updates = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        learner.train(per_call)
        updates += per_call
    learner.last_metrics  # waits for the device to finish the queued updates
    elapsed = time.perf_counter() - started
    result = {'heads': heads, 'mode': mode, 'updates_per_s': updates / elapsed,
              'warmup_s': warmup_s, 'updates_per_call': per_call, 'cameras': cameras,
              'image_size': image_size if cameras else 0,
              'encoder_precision': encoder_precision if cameras else None,
              'image_encoder': (image_encoder or 'drqv2') if cameras else None}
    if device.startswith('cuda'):
        result['kernel_share'] = kernel_share(learner, 3, per_call)
    return result


def reference(script: str, heads: int) -> dict:
    """Run the reference update script for this head count; return its updates/s."""
    found = subprocess.run([sys.executable, script, 'cuda', str(heads)], capture_output=True,
                           text=True, timeout=600)
    rates = dict(re.findall(r'(eager|cuda-graph) updates/s: (\d+)', found.stdout))
    return {name: float(value) for name, value in rates.items()}


def main(argv=None) -> int:
    """Time every configuration and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--heads', nargs='+', type=int, default=[2, 10])
    parser.add_argument('--modes', nargs='+', default=['host'], choices=MODES)
    parser.add_argument('--utd', nargs='+', type=int, default=[1, 4, 20])
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--graph-updates', type=int, default=8,
                        help='updates per captured graph in the graphs mode')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='CPU threads for torch (default: all)')
    parser.add_argument('--matmul-precision', default='highest',
                        choices=('highest', 'high', 'medium'),
                        help="float32 matrix products (the learner's matmul_precision): high "
                             'lets an NVIDIA GPU use TF32')
    parser.add_argument('--cameras', type=int, default=0,
                        help='camera images per step (the image learner: DrQ-v2 encoder, '
                             'random shifts; 5,000 steps of random frames in the buffers)')
    parser.add_argument('--image-size', type=int, nargs='+', default=[128],
                        help='height and width of each camera frame (several: each measured)')
    parser.add_argument('--encoder-precision', nargs='+', default=['bfloat16'],
                        choices=('float32', 'bfloat16'),
                        help="the image encoder's convolutions on a GPU (default bfloat16, "
                             'channels-last; float32 as before)')
    parser.add_argument('--image-encoder', nargs='+', default=['drqv2'],
                        choices=sorted(IMAGE_ENCODER_LAYOUTS),
                        help='built-in image encoders to measure (default drqv2, the '
                             "learner's default)")
    parser.add_argument('--reference', help='learner_update_reference.py, run alongside (GPU)')
    parser.add_argument('--output', help='write the raw results here (JSON)')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    where = (torch.cuda.get_device_name(0) if args.device.startswith('cuda')
             else f'CPU, {args.threads} thread(s) of {os.cpu_count()} cores')
    sizes = ', '.join(f'{size}x{size}' for size in args.image_size)
    images = (f'; {args.cameras} camera(s) at {sizes} through the image encoder, the actor '
              "reading the critic step's features" if args.cameras else '')
    print(f'torch {torch.__version__} on {where}; batch 256, actor 256x256, critic heads '
          f'3x256 + LayerNorm{images}; sampling included; float32 matmul precision '
          f'{args.matmul_precision} (the reference: highest, state only)', flush=True)
    utd = ' | '.join(f'Hz at UTD {ratio}' for ratio in args.utd)
    lines = [f'| critic heads | mode | image | updates/s | {utd} | GPU busy | reference | '
             'ratio |', '|---|---|---|---|' + '---|' * len(args.utd) + '---|---|---|']
    results = []
    images = [(size, precision, encoder) for size in args.image_size
              for precision in args.encoder_precision
              for encoder in args.image_encoder] if args.cameras else [(0, None, '')]
    references = {}
    for heads, mode, image in itertools.product(args.heads, args.modes, images):
        size, precision, encoder = image
        if heads not in references:
            references[heads] = reference(args.reference, heads) if args.reference else {}
        expected = references[heads]
        result = measure(heads, args.device, mode, args.seconds, args.graph_updates,
                         args.cameras, size, precision or 'bfloat16', encoder)
        result['reference'] = expected
        results.append(result)
        rates = ' | '.join(f'{result["updates_per_s"] / ratio:.1f}' for ratio in args.utd)
        busy = (f'{100 * result["kernel_share"]:.0f}%' if 'kernel_share' in result
                else '-')
        graph_rate = expected.get('cuda-graph')
        ratio = f'{result["updates_per_s"] / graph_rate:.2f}' if graph_rate else '-'
        image = f'{size}x{size} {precision} {encoder}' if size else '-'
        lines.append(f'| {heads} | {mode} | {image} | {result["updates_per_s"]:.0f} | {rates} | '
                     f'{busy} | {graph_rate or "-"} | {ratio} |')
        print(lines[-1], flush=True)
        if args.output:  # as they come: a run cut short keeps its points
            with open(args.output, 'w') as stream:
                json.dump({'device': where, 'torch': torch.__version__,
                           'matmul_precision': args.matmul_precision,
                           'cameras': args.cameras, 'image_size': args.image_size,
                           'results': results}, stream, indent=1)
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())

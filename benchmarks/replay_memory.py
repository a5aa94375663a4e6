"""
Replay memory with camera images: bytes per stored step, and per 100,000 steps.

Fills the learner's buffers (training.ResidualLearner, as the learner node stores transitions)
with --steps steps of episodes of --episode-steps steps, each step with one frame per camera and
its next frame, a --human-share of them a person's in stretches of --segment steps (those go to
the intervention buffer too), and prints what the frames take: stored (frames x bytes),
allocated (the stores grow by doubling), and the reference a replay that copies both frames
into every step would take. The frames of 100,000 steps follow by proportion (every frame has
the same size). No ROS, CPU only.

    python benchmarks/replay_memory.py --steps 20000 --cameras 2 --image-size 128
"""

import argparse
import json
import sys

from hilresrl_learner.residual_td3 import LearnerConfig
from hilresrl_learner.training import ResidualLearner, StepRecord
import numpy as np

GIB = 1024 ** 3


def filled(steps: int, cameras: int, size: int, episode_steps: int, human_share: float,
           segment: int) -> ResidualLearner:
    """Return a learner whose buffers hold ``steps`` steps with frames."""
    names = tuple(f'image/camera{index}/image_raw' for index in range(cameras))
    config = LearnerConfig(obs_dim=39, action_dim=4, cameras=names,
                           image_size=(size, size, 3))
    learner = ResidualLearner(config)
    rng = np.random.default_rng(0)
    zeros = np.zeros(4, np.float32)
    frame = {name: rng.integers(0, 256, (3, size, size), dtype=np.uint8) for name in names}
    # A person takes over for segments of steps (the simulated operator corrects for 15).
    segments = rng.random(steps // segment + 1) < human_share
    for index in range(steps):
        episode, step = divmod(index, episode_steps)
        # A step's frames are a new array each time, as images arrive from a camera.
        current = {name: pixels.copy() for name, pixels in frame.items()}
        following = {name: pixels.copy() for name, pixels in frame.items()}
        human = zeros if segments[index // segment] else None
        learner.add(StepRecord(episode, step, np.zeros(39, np.float32), zeros, zeros, 0.0,
                               np.zeros(39, np.float32), step + 1 == episode_steps, False,
                               human, frames=current, next_frames=following))
    return learner


def main(argv=None) -> int:
    """Fill the buffers and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=20_000)
    parser.add_argument('--cameras', type=int, default=2)
    parser.add_argument('--image-size', type=int, default=128)
    parser.add_argument('--episode-steps', type=int, default=150,
                        help='steps per episode (each episode adds one last next frame)')
    parser.add_argument('--human-share', type=float, default=0.2,
                        help='share of steps a person controlled (stored in both buffers)')
    parser.add_argument('--segment', type=int, default=15,
                        help='steps per stretch a person controls')
    parser.add_argument('--output', help='write the raw results here (JSON)')
    args = parser.parse_args(argv)
    learner = filled(args.steps, args.cameras, args.image_size, args.episode_steps,
                     args.human_share, args.segment)
    frame_bytes = 3 * args.image_size ** 2
    buffers = {'online': learner.online, 'intervention': learner.intervention}
    stored = {name: buffer.frames.nbytes for name, buffer in buffers.items()}
    allocated = {name: sum(store._frames.nbytes for store in buffer.frames.stores.values())
                 for name, buffer in buffers.items()}
    steps = {name: len(buffer) for name, buffer in buffers.items()}
    copied = sum(steps.values()) * 2 * args.cameras * frame_bytes  # s_t and s_t+1 per step
    per_step = sum(stored.values()) / args.steps
    scale = 100_000 / args.steps
    print(f'{args.steps} steps ({steps["intervention"]} of them a person\'s, in both buffers), '
          f'{args.cameras} camera(s) at {args.image_size}x{args.image_size}, episodes of '
          f'{args.episode_steps} steps; frames only (the step rows are 100s of bytes)')
    print('| replay | bytes per robot step | per 100,000 robot steps |')
    print('|---|---|---|')
    print(f'| frames stored once (this replay) | {per_step / 1e3:.1f} kB | '
          f'{sum(stored.values()) * scale / GIB:.2f} GiB |')
    print(f'| allocated (stores grow by doubling) | '
          f'{sum(allocated.values()) / args.steps / 1e3:.1f} kB | at most 2x the above |')
    print(f'| reference: both frames copied into every step | '
          f'{copied / args.steps / 1e3:.1f} kB | {copied * scale / GIB:.2f} GiB |')
    print('A GPU learner mirrors the frames in device memory as well (device_replay): the same '
          'again there.')
    if args.output:
        with open(args.output, 'w') as stream:
            json.dump({'command': ' '.join(sys.argv), 'steps': steps, 'stored_bytes': stored,
                       'allocated_bytes': allocated, 'copied_reference_bytes': copied,
                       'frame_bytes': frame_bytes, 'args': vars(args)}, stream, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())

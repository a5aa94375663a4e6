r"""
Kernels per learner update on a GPU, and the time the GPU spends in them, by kernel.

An update drawn on the device and run eagerly (device replay), profiled over 20 updates after
20 to warm up, for 2 and 10 critic heads: what a captured graph replays, kernel by kernel.
When the kernels' own time is the whole of a graphed update's time, fewer (fused) kernels are
what a faster update needs, not less host work.

    PYTHONPATH=src/hilresrl_learner:src/hilresrl_policy:src/hilresrl_common \
        python benchmarks/learner_kernels.py [--compile] [--matmul-precision high]

With --compile, the losses and the replay's look-ahead through torch.compile (compile_updates),
as the graphs-compile mode of learner_throughput.py captures them.
"""

import argparse
import sys

from learner_throughput import filled_learner
import torch
from torch.profiler import profile, ProfilerActivity


def census(heads: int, compiled: bool, updates: int = 20, shown: int = 25) -> None:
    """Print kernels per update and the kernels that take the most time."""
    # graphs-compile with no graphs: the same kernels, launched one by one to be counted
    learner = filled_learner(heads, 'cuda', 'graphs-compile' if compiled else 'device', 0,
                             steps=5000)
    learner.train(updates)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as profiler:
        learner.train(updates)
        torch.cuda.synchronize()
    kernels = [event for event in profiler.events()
               if event.device_type == torch.autograd.DeviceType.CUDA]
    total_us = sum(event.device_time for event in kernels)
    print(f'heads {heads}: {len(kernels) / updates:.0f} kernels/update, '
          f'{total_us / updates:.0f} us kernel time/update', flush=True)
    by_name = {}
    for event in kernels:
        count_time = by_name.setdefault(event.name[:70], [0, 0.0])
        count_time[0] += 1
        count_time[1] += event.device_time
    for name, (count, time_us) in sorted(by_name.items(), key=lambda item: -item[1][1])[:shown]:
        print(f'   {count / updates:5.1f}/upd {time_us / updates:7.1f} us  {name}')


def main(argv=None) -> int:
    """Census for 2 and 10 critic heads."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--compile', action='store_true', help='as compile_updates:=true')
    parser.add_argument('--matmul-precision', default='highest',
                        choices=('highest', 'high', 'medium'))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print('needs a CUDA device')
        return 1
    torch.set_float32_matmul_precision(args.matmul_precision)
    print(f'compiled: {args.compile}; float32 matmul precision {args.matmul_precision}')
    for heads in (2, 10):
        census(heads, args.compile)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
Observation-to-command latency of the control chain over real DDS, at 10, 30 and 50 Hz.

Runs the simulated cell in real time (it stamps each observation with the time it publishes
it), the scripted base policy, the residual policy, the intervention arbiter and the episode
manager as separate processes, exactly as ``hilresrl launch`` starts them, and listens to the
twist commands the arbiter sends: each carries the stamp of the observation it answers, so
receipt time minus stamp is the chain's latency. Two ways: the base policy asynchronous (the
residual corrects the newest chunk at once: sim -> residual -> arbiter, as on a real cell) and
in the chain (the residual waits for the chunk planned from the same observation, as in
lockstep: sim -> base -> residual -> arbiter). Alongside,
the same chain's computation without DDS (the residual forward pass, composition, arbitration
and safety filter, in one process) is timed as the baseline that transport adds to.

    source scripts/env.sh && python benchmarks/control_latency.py [--seconds 20] [--rates 10 30 50]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def chain_latency(rate_hz: float, seconds: float, domain_id: int,
                  wait_for_chunk: bool) -> dict:
    """Run the chain at rate_hz for seconds; return latency percentiles and achieved rate."""
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from hilresrl_common.conversions import stamp_to_ns
    from hilresrl_common.node_runner import make_executor
    from hilresrl_common.qos import COMMAND_QOS
    from rclpy.node import Node

    period_s = 1.0 / rate_hz
    overrides = f"""
/**:
  ros__parameters:
    control_rate_hz: {rate_hz}
    control_period_s: {period_s}
    linear_speed_scale_mps: {0.01 * rate_hz}
/**/sim_cell:
  ros__parameters:
    clock_mode: realtime
/**/base_policy:
  ros__parameters:
    step_period_s: {period_s}
/**/residual_policy:
  ros__parameters:
    wait_for_chunk: {'true' if wait_for_chunk else 'false'}
/**/episode_manager:
  ros__parameters:
    max_episode_steps: 1000000
"""
    with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as stream:
        stream.write(overrides)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    graph = subprocess.Popen(
        ['hilresrl', 'launch', 'eval', 'base_policy:=scripted', 'episodes:=0',
         f'params_file:={stream.name}', 'log_level:=warn'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = Node('latency_probe', context=context)
    executor = make_executor(context)  # the fast executor, as a C++ driver would receive
    executor.add_node(node)
    latencies, stamps = [], []
    recording = {'on': False}

    def on_command(message: TwistStamped) -> None:
        received_ns = node.get_clock().now().nanoseconds
        if recording['on']:
            stamp = stamp_to_ns(message.header.stamp)
            latencies.append((received_ns - stamp) * 1e-6)
            stamps.append(stamp)

    node.create_subscription(TwistStamped, 'servo/delta_twist_cmds', on_command, COMMAND_QOS)
    try:
        deadline = time.monotonic() + 60.0  # start-up: wait for the first commands
        while node.count_publishers('servo/delta_twist_cmds') == 0 and \
                time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        warm_up = time.monotonic() + 5.0
        while time.monotonic() < warm_up:
            executor.spin_once(timeout_sec=0.1)
        recording['on'] = True
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.1)
    finally:
        recording['on'] = False
        os.killpg(graph.pid, 2)
        graph.wait(timeout=60)
        node.destroy_node()
        context.try_shutdown()
        os.unlink(stream.name)
    commands = len(set(stamps))
    values = np.asarray(latencies)
    return {'rate_hz': rate_hz, 'commands': commands,
            'achieved_hz': commands / seconds,
            'p50_ms': float(np.percentile(values, 50)) if len(values) else float('nan'),
            'p99_ms': float(np.percentile(values, 99)) if len(values) else float('nan'),
            'max_ms': float(values.max()) if len(values) else float('nan')}


def in_process_chain(repeats: int = 2000) -> dict:
    """Time the chain's computation without DDS: the baseline transport adds to."""
    import torch
    from hilresrl_common.residual_contract import compose, residual_scale_vector
    from hilresrl_policy.residual import ResidualActor, ResidualConfig
    from hilresrl_teleop.arbitration import InterventionArbiter
    from hilresrl_teleop.safety import SafetyFilter, SafetyLimits
    from hilresrl_teleop.spacemouse import DeviceReading

    torch.set_num_threads(1)
    actor = ResidualActor(ResidualConfig(obs_dim=39, action_dim=4)).eval()
    arbiter = InterventionArbiter(4)
    safety = SafetyFilter(SafetyLimits(action_dim=4, workspace_min=(-0.55, 0.35, 0.0),
                                       workspace_max=(0.55, 1.05, 0.55),
                                       translation_step_m=0.01))
    state = np.random.default_rng(0).normal(size=39).astype(np.float32)
    base = np.zeros(4, dtype=np.float32)
    scale = residual_scale_vector([0.5], 4)
    idle = DeviceReading.idle(4)
    forward, chain = [], []
    for k in range(repeats):
        started = time.perf_counter()
        with torch.no_grad():
            residual = actor(torch.from_numpy(state)[None], torch.from_numpy(base)[None])[0]
        forwarded = time.perf_counter()
        composed = compose(base, residual.numpy(), scale)
        decision = arbiter.arbitrate(k * 0.02, composed.astype(np.float64), idle)
        safety.filter(decision.executed, np.array([0.0, 0.6, 0.2]))
        done = time.perf_counter()
        forward.append((forwarded - started) * 1e3)
        chain.append((done - started) * 1e3)
    return {'residual_forward_p50_ms': float(np.percentile(forward, 50)),
            'residual_forward_p99_ms': float(np.percentile(forward, 99)),
            'chain_compute_p50_ms': float(np.percentile(chain, 50)),
            'chain_compute_p99_ms': float(np.percentile(chain, 99))}


def main(argv=None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='measured seconds per rate')
    parser.add_argument('--rates', type=float, nargs='+', default=[10.0, 30.0, 50.0])
    parser.add_argument('--domain-id', type=int, default=117)
    options = parser.parse_args(argv)

    compute = in_process_chain()
    print('in-process chain (no DDS), CPU, 1 thread:')
    print(f"  residual forward (39+4 -> 2x256 -> 4): p50 {compute['residual_forward_p50_ms']:.3f}"
          f" ms, p99 {compute['residual_forward_p99_ms']:.3f} ms")
    print(f"  forward + compose + arbitrate + safety: p50 {compute['chain_compute_p50_ms']:.3f} "
          f"ms, p99 {compute['chain_compute_p99_ms']:.3f} ms")
    print('\nover DDS, separate processes (observation stamp -> twist command received):')
    print(f"{'base policy':>32} {'rate':>6} {'achieved':>9} {'commands':>9} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7}")
    runs = [(wait, rate) for wait in (False, True) for rate in options.rates]
    for index, (wait, rate) in enumerate(runs):
        result = chain_latency(rate, options.seconds, options.domain_id + index, wait)
        label = 'in the chain (waits for chunk)' if wait else 'asynchronous (newest chunk)'
        print(f"{label:>32} {result['rate_hz']:>4.0f}Hz {result['achieved_hz']:>7.1f}Hz "
              f"{result['commands']:>9d} {result['p50_ms']:>7.2f} {result['p99_ms']:>7.2f} "
              f"{result['max_ms']:>7.2f}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

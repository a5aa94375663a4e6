"""
Observation-to-command latency of the control chain over real DDS, in both process layouts.

Runs the simulated cell in real time (it stamps each observation with the time it publishes
it), the scripted base policy, the residual policy, the intervention arbiter and the episode
manager exactly as ``hilresrl launch`` starts them, and listens to the twist commands the
arbiter sends: each carries the stamp of the observation it answers, so receipt time minus
stamp is the chain's latency. Two layouts, measured in the same run: the residual and the
arbiter in separate processes (the default: sim -> residual -> arbiter, two DDS hops to the
command) and the residual in the arbiter's process (``residual_in_arbiter:=true``: one hop).
Two ways of using the base policy: asynchronous (the residual corrects the newest chunk at
once, as on a real cell) and in the chain (the residual waits for the chunk planned from the
same observation, as in lockstep: sim -> base -> residual -> arbiter). Alongside, the same
chain's computation without DDS (the residual forward pass, composition, arbitration and
safety filter, in one process) is timed as the baseline that transport adds to, and so is the
machine itself: how late an idle process wakes from a sleep of one period, and the share of CPU
time a virtual machine's host took (steal) during each run. Raw latencies
go to benchmarks/results/control-latency-RATES-DATE.json (--output).

With ``--cameras N`` the residual actor also sees N cameras through its image encoder (random
weights: what counts is the forward pass): a process of its own publishes sensor_msgs/Image
frames of ``--image-size`` pixels square on camera/bench_<i>/image_raw at the control rate, each
frame at a random point of its period (a free-running camera, its phase against the control
loop unknown), and the residual takes the newest frame of each camera (observation_sync latest;
the simulated cell's state still clocks each step). ``--image-encoder`` names the built-in
encoders to measure (several: each in every layout, alternating). Raw latencies then go to
control-latency-RATES-images-DATE.json.

    source scripts/env.sh && python benchmarks/control_latency.py [--seconds 20] [--rates 10 30 50]
    python benchmarks/control_latency.py --rates 30 --seconds 30 --cameras 2 --image-size 128 \
        --image-encoder drqv2 nature
"""

import argparse
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from hilresrl_common.residual_contract import IMAGE_ENCODER_LAYOUTS
import numpy as np

LAYOUTS = {'two processes': 'false', 'residual in arbiter': 'true'}
BASES = {'asynchronous': False, 'in the chain': True}
RESULTS = pathlib.Path(__file__).resolve().parent / 'results'


def camera_topics(cameras: int) -> list:
    """Return the topics of the benchmark's cameras."""
    return [f'camera/bench_{index}/image_raw' for index in range(cameras)]


def publish_camera_frames(domain_id: int, cameras: int, image_size: int, rate_hz: float,
                          stop) -> None:
    """
    Publish frames on each camera topic at rate_hz until ``stop`` is set (a process of its own).

    Each camera publishes one frame a period, at a random point of it, stamped when published,
    as a free-running camera driver whose phase against the control loop nobody knows.
    """
    import rclpy
    from hilresrl_common.conversions import array_to_image
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = Node('benchmark_cameras', context=context)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                     reliability=ReliabilityPolicy.RELIABLE)
    publishers = [node.create_publisher(Image, topic, qos) for topic in camera_topics(cameras)]
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, image_size, image_size, 3), dtype=np.uint8)
    period_s = 1.0 / rate_hz
    start = time.monotonic()
    try:
        for period in range(1 << 62):
            if stop.is_set():
                break
            offsets = sorted((rng.uniform(0.0, period_s), index) for index in range(cameras))
            for offset, index in offsets:
                delay = start + period * period_s + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                stamp = node.get_clock().now().to_msg()
                publishers[index].publish(array_to_image(frames[(period + index) % len(frames)],
                                                         stamp, f'bench_{index}'))
    finally:
        node.destroy_node()
        context.try_shutdown()


def chain_latency(rate_hz: float, seconds: float, domain_id: int, wait_for_chunk: bool,
                  residual_in_arbiter: str = 'false', cameras: int = 0,
                  image_size: int = 128, image_encoder: str = '') -> dict:
    """Run the chain at rate_hz for seconds; return latencies, percentiles and achieved rate."""
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
    if cameras:  # the residual's own observation: the cell's state and the newest frames
        topics = camera_topics(cameras)
        residual = (f"    observation_sources: {json.dumps(['task_state'] + topics)}\n"
                    '    observation_sync: latest\n'
                    f"    camera_inputs: {json.dumps(['image/' + topic for topic in topics])}\n"
                    f'    image_size: [{image_size}, {image_size}]\n'
                    f'    image_encoder: {json.dumps(image_encoder)}\n')
        overrides = overrides.replace('/**/episode_manager:', residual + '/**/episode_manager:')
    with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as stream:
        stream.write(overrides)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    graph = subprocess.Popen(
        ['hilresrl', 'launch', 'eval', 'base_policy:=scripted', 'episodes:=0',
         f'residual_in_arbiter:={residual_in_arbiter}', f'params_file:={stream.name}',
         'log_level:=warn'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    camera_process, stop_cameras = None, None
    if cameras:
        spawn = multiprocessing.get_context('spawn')
        stop_cameras = spawn.Event()
        camera_process = spawn.Process(target=publish_camera_frames, args=(
            domain_id, cameras, image_size, rate_hz, stop_cameras), daemon=True)
        camera_process.start()
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
        if camera_process is not None:
            stop_cameras.set()
            camera_process.join(timeout=10)
            if camera_process.is_alive():
                camera_process.terminate()
        node.destroy_node()
        context.try_shutdown()
        os.unlink(stream.name)
    commands = len(set(stamps))
    values = np.asarray(latencies)
    return {'rate_hz': rate_hz, 'commands': commands,
            'achieved_hz': commands / seconds,
            'p50_ms': float(np.percentile(values, 50)) if len(values) else float('nan'),
            'p99_ms': float(np.percentile(values, 99)) if len(values) else float('nan'),
            'max_ms': float(values.max()) if len(values) else float('nan'),
            'latencies_ms': [round(value, 4) for value in latencies]}


def image_forward(cameras: int, image_size: int, image_encoder: str = '',
                  repeats: int = 300) -> dict:
    """Time the residual's forward pass with cameras, in one process on one thread."""
    import torch
    from hilresrl_policy.image_encoder import encoder_frame
    from hilresrl_policy.residual import ResidualActor, ResidualConfig

    torch.set_num_threads(1)
    names = tuple('image/' + topic for topic in camera_topics(cameras))
    actor = ResidualActor(ResidualConfig(obs_dim=39, action_dim=4, cameras=names,
                                         image_size=(image_size, image_size, 3),
                                         image_encoder=image_encoder)).eval()
    rng = np.random.default_rng(0)
    state = torch.from_numpy(rng.normal(size=(1, 39)).astype(np.float32))
    base = torch.zeros(1, 4)
    pixels = rng.integers(0, 256, (cameras, image_size, image_size, 3), dtype=np.uint8)
    times = []
    for k in range(-repeats // 10, repeats):  # the first tenth warms up, untimed
        started = time.perf_counter()
        frames = [torch.from_numpy(encoder_frame(picture, actor.config.image_inputs))[None]
                  for picture in pixels]
        with torch.no_grad():
            actor(state, base, frames)[0].numpy()
        if k >= 0:
            times.append((time.perf_counter() - started) * 1e3)
    return {'image_forward_p50_ms': float(np.percentile(times, 50)),
            'image_forward_p99_ms': float(np.percentile(times, 99))}


def in_process_chain(repeats: int = 2000) -> dict:
    """Time the chain's computation without DDS: the baseline transport adds to."""
    import torch
    from hilresrl_common.residual_contract import compose, residual_scale_vector
    from hilresrl_policy.residual import ResidualActor, ResidualConfig, SingleStepActor
    from hilresrl_teleop.arbitration import InterventionArbiter
    from hilresrl_teleop.safety import SafetyFilter, SafetyLimits
    from hilresrl_teleop.spacemouse import DeviceReading

    torch.set_num_threads(1)
    actor = ResidualActor(ResidualConfig(obs_dim=39, action_dim=4)).eval()
    with torch.no_grad():  # trained-like weights: the zero last layer would flatter nothing
        for parameter in actor.parameters():
            parameter.normal_(0.0, 0.1)
    single_step = SingleStepActor(actor)  # what the residual node runs on the CPU
    arbiter = InterventionArbiter(4)
    safety = SafetyFilter(SafetyLimits(action_dim=4, workspace_min=(-0.55, 0.35, 0.0),
                                       workspace_max=(0.55, 1.05, 0.55),
                                       translation_step_m=0.01))
    state = np.random.default_rng(0).normal(size=39).astype(np.float32)
    base = np.zeros(4, dtype=np.float32)
    scale = residual_scale_vector([0.5], 4)
    idle = DeviceReading.idle(4)
    torch_forward, numpy_forward, chain = [], [], []
    for k in range(-repeats // 10, repeats):  # the first tenth warms up, untimed
        started = time.perf_counter()
        with torch.no_grad():
            actor(torch.from_numpy(state)[None], torch.from_numpy(base)[None])[0].numpy()
        torch_forward.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        residual = single_step(state, base)
        forwarded = time.perf_counter()
        composed = compose(base, residual, scale)
        decision = arbiter.arbitrate(k * 0.02, composed.astype(np.float64), idle)
        safety.filter(decision.executed, np.array([0.0, 0.6, 0.2]))
        done = time.perf_counter()
        if k < 0:
            torch_forward.pop()
            continue
        numpy_forward.append((forwarded - started) * 1e3)
        chain.append((done - started) * 1e3)

    def percentiles(name, values):
        return {f'{name}_p50_ms': float(np.percentile(values, 50)),
                f'{name}_p99_ms': float(np.percentile(values, 99))}
    return {**percentiles('torch_forward', torch_forward),
            **percentiles('numpy_forward', numpy_forward),
            **percentiles('chain_compute', chain)}


def cpu_times() -> np.ndarray:
    """Return the machine's CPU time so far by kind (/proc/stat: user ... steal), or zeros."""
    try:
        with open('/proc/stat') as stream:
            return np.array([float(value) for value in stream.readline().split()[1:9]])
    except OSError:  # not Linux
        return np.zeros(8)


def steal_share(before: np.ndarray, after: np.ndarray) -> float:
    """Return the share of CPU time a virtual machine's host took (steal) between two readings."""
    spent = after - before
    return float(spent[7] / spent.sum()) if spent.sum() > 0 else float('nan')


def timer_lateness(rate_hz: float, seconds: float) -> dict:
    """
    How late an idle process wakes from a sleep of one control period on this machine.

    The floor under every figure above: no DDS, no work, only the scheduler (and, on a virtual
    machine, its host). A chain cannot have a lower p99 than this machine gives a sleeping process.
    """
    period_s = 1.0 / rate_hz
    lateness = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        time.sleep(period_s)
        lateness.append((time.perf_counter() - started - period_s) * 1e3)
    values = np.asarray(lateness)
    return {'rate_hz': rate_hz, 'wakeups': len(values),
            'p50_ms': float(np.percentile(values, 50)), 'p99_ms': float(np.percentile(values, 99)),
            'max_ms': float(values.max())}


def main(argv=None) -> int:
    """Run the benchmark, print its tables and write the raw results."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='measured seconds per run')
    parser.add_argument('--rates', type=float, nargs='+', default=[10.0, 30.0, 50.0])
    parser.add_argument('--layouts', nargs='+', choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument('--bases', nargs='+', choices=list(BASES), default=list(BASES))
    parser.add_argument('--cameras', type=int, default=0,
                        help='cameras the residual actor sees (0: state only)')
    parser.add_argument('--image-size', type=int, default=128,
                        help='side of the published frames and of the encoder input (pixels)')
    parser.add_argument('--image-encoder', nargs='+', default=['drqv2'],
                        choices=sorted(IMAGE_ENCODER_LAYOUTS),
                        help='built-in image encoders of the residual (with --cameras; several: '
                             'each measured)')
    parser.add_argument('--domain-id', type=int, default=117)
    parser.add_argument('--output', type=pathlib.Path, default=None,
                        help='where the raw results go (JSON; default: results/'
                             'control-latency-RATES-DATE.json)')
    options = parser.parse_args(argv)
    rates = '-'.join(f'{rate:g}' for rate in options.rates)
    images = '-images' if options.cameras else ''
    options.output = options.output or (
        RESULTS / f'control-latency-{rates}hz{images}-{time.strftime("%Y-%m-%d")}.json')

    compute = in_process_chain()
    print('in-process chain (no DDS), CPU, 1 thread:')
    print('  residual forward (39+4 -> 2x256 -> 4), torch: p50 '
          f"{compute['torch_forward_p50_ms']:.3f} ms, p99 {compute['torch_forward_p99_ms']:.3f} "
          f"ms; numpy (the node's): p50 {compute['numpy_forward_p50_ms']:.3f} ms, p99 "
          f"{compute['numpy_forward_p99_ms']:.3f} ms")
    print('  numpy forward + compose + arbitrate + safety: p50 '
          f"{compute['chain_compute_p50_ms']:.3f} ms, p99 {compute['chain_compute_p99_ms']:.3f} "
          'ms', flush=True)
    encoders = options.image_encoder if options.cameras else ['']
    for encoder in encoders if options.cameras else []:
        forward = image_forward(options.cameras, options.image_size, encoder)
        compute.update({f'{encoder}_{name}': value for name, value in forward.items()})
        print(f'  with {options.cameras} camera(s) at {options.image_size}x{options.image_size} '
              f'through {encoder}: resize check + encoder + residual, torch: p50 '
              f"{forward['image_forward_p50_ms']:.3f} ms, p99 "
              f"{forward['image_forward_p99_ms']:.3f} ms", flush=True)
    times_before = cpu_times()
    floor = [timer_lateness(rate, min(10.0, options.seconds)) for rate in options.rates]
    floor_steal = steal_share(times_before, cpu_times())
    print('\nthe machine itself: an idle process waking from a sleep of one period, late by')
    for entry in floor:
        print(f"  {entry['rate_hz']:>4.0f}Hz: p50 {entry['p50_ms']:.2f} ms, p99 "
              f"{entry['p99_ms']:.2f} ms, max {entry['max_ms']:.2f} ms", flush=True)
    print(f'  (the host took {floor_steal:.1%} of the CPU time meanwhile: steal, on a virtual '
          'machine)')
    print('\nover DDS (observation stamp -> twist command received):')
    print(f"{'encoder':>8} {'layout':>20} {'base policy':>13} {'rate':>6} {'achieved':>9} "
          f"{'commands':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'steal':>6}", flush=True)
    # The layouts (and encoders) alternate, so that all meet the same state of the machine.
    runs = [(base, rate, layout, encoder) for base in options.bases for rate in options.rates
            for layout in options.layouts for encoder in encoders]
    results = []
    for index, (base, rate, layout, encoder) in enumerate(runs):
        load_before, times_before = os.getloadavg()[0], cpu_times()
        result = chain_latency(rate, options.seconds, options.domain_id + index, BASES[base],
                               LAYOUTS[layout], options.cameras, options.image_size, encoder)
        result.update(layout=layout, base_policy=base, load_1min_before=load_before,
                      steal=steal_share(times_before, cpu_times()), image_encoder=encoder)
        results.append(result)
        print(f"{encoder or '-':>8} {layout:>20} {base:>13} {result['rate_hz']:>4.0f}Hz "
              f"{result['achieved_hz']:>7.1f}Hz {result['commands']:>9d} "
              f"{result['p50_ms']:>7.2f} {result['p99_ms']:>7.2f} {result['max_ms']:>7.2f} "
              f"{result['steal']:>6.1%}", flush=True)

    print('\nside by side, p50 / p99 ms:')
    print(f"{'encoder':>8} {'base policy':>13} {'rate':>6} " + ''.join(
        f'{layout:>22}' for layout in options.layouts))
    for encoder in encoders:
        for base in options.bases:
            for rate in options.rates:
                cells = {r['layout']: f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}" for r in results
                         if r['base_policy'] == base and r['rate_hz'] == rate
                         and r['image_encoder'] == encoder}
                print(f"{encoder or '-':>8} {base:>13} {rate:>4.0f}Hz " + ''.join(
                    f'{cells[layout]:>22}' for layout in options.layouts))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps({
        'command': ' '.join(['python', 'benchmarks/control_latency.py'] + (
            sys.argv[1:] if argv is None else list(argv))),
        'cpus': os.cpu_count(), 'seconds': options.seconds, 'cameras': options.cameras,
        'image_size': options.image_size, 'in_process': compute,
        'timer_lateness': floor, 'timer_lateness_steal': floor_steal,
        'runs': results}, indent=1) + '\n')
    print(f'\nraw results: {options.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""
Recording while training: throughput, CPU share and drops of the recorder, against no recording.

Runs the training graph (simulated cell, simulated operator, learner) on the real-time clock at
``--rate`` Hz with two ``--image-size`` RGB cameras, first without recording (the baseline),
then with ``record:=true``, each for ``--minutes`` of simulated time (real time here), and
prints per run: episode steps and learner updates per second, and for the recorder:
messages/s, MB/s, its CPU share (of one core) and drops. A drop is a step of an episode whose
transition, state or either camera image is not in the bag, a gap in the transition sequence,
or a message the middleware reported lost.

    source scripts/env.sh && python benchmarks/recording.py --minutes 10
"""

import argparse
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


def parameter_file(folder: pathlib.Path, rate: float, cameras, image_size: int) -> pathlib.Path:
    """Return a parameter file: the sim profile at `rate` Hz with cameras in every transition."""
    sources = ['task_state', 'ee_pose', 'joint_states', 'success'] + [
        f'camera/{camera}/image_raw' for camera in cameras]
    text = f"""/**:
  ros__parameters:
    control_rate_hz: {rate}
    control_period_s: {1.0 / rate}
    linear_speed_scale_mps: {0.01 * rate}
/**/sim_cell:
  ros__parameters:
    cameras: {list(cameras)}
    image_size: {image_size}
/**/episode_manager:
  ros__parameters:
    observation_sources: {sources}
"""
    path = folder / 'recording_benchmark.yaml'
    path.write_text(text)
    return path


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a process has used so far."""
    fields = pathlib.Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_graph(label: str, seconds: float, arguments, folder: pathlib.Path) -> dict:
    """Run the train graph for `seconds`, then stop it; return its output and CPU figures."""
    # The process launcher: its 'started /node (..., pid N)' lines give each node's pid.
    command = ['hilresrl', 'launch', '--launcher', 'processes', 'train', 'cell:=sim',
               'clock:=realtime', *arguments]
    print(f'[{label}] {" ".join(command)}', flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    pids = {}
    while time.monotonic() < deadline and 'learner' not in pids:
        time.sleep(0.5)
        for line in list(lines):
            match = re.search(r'started /(\w+) \(.*pid (\d+)\)', line)
            if match:
                pids[match.group(1)] = int(match.group(2))
    started = time.monotonic()
    cpu_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    next_report = started + 60
    while time.monotonic() < started + seconds and process.poll() is None:
        time.sleep(1.0)
        if time.monotonic() >= next_report:
            next_report += 60
            print(f'[{label}] {time.monotonic() - started:.0f}/{seconds:.0f} s', flush=True)
    wall = time.monotonic() - started
    cpu = {name: cpu_seconds(pid) - cpu_start[name] for name, pid in pids.items()
           if pathlib.Path(f'/proc/{pid}').exists()}
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    reader.join(timeout=10)
    return {'wall_s': wall, 'cpu_s': cpu, 'output': ''.join(lines)}


def learner_rates(output: str):
    """Return (env steps, updates) at the last progress line of the learner."""
    matches = re.findall(r'\[learner\] .* (\d+) steps \| (\d+) updates', output)
    return tuple(map(int, matches[-1])) if matches else (0, 0)


def drops_in_bag(bag: pathlib.Path, cameras) -> dict:
    """Check the bag against the transitions in it: every step's data must be there."""
    from hilresrl_recording.bag import BagReader
    from hilresrl_msgs.msg import StateVector, Transition
    from rclpy.serialization import deserialize_message
    reader = BagReader(bag)
    counts, size = {}, 0
    stamps = {}
    transitions = []
    first, last = None, None
    for topic, stamp_ns, data in reader.messages():
        counts[topic] = counts.get(topic, 0) + 1
        size += len(data)
        first = stamp_ns if first is None else first
        last = stamp_ns
        if topic.endswith('/transitions'):
            transitions.append(deserialize_message(data, Transition))
        elif topic.endswith('/task_state'):
            stamps.setdefault(topic, set()).add(_stamp(deserialize_message(data,
                                                                           StateVector)))
        elif topic.endswith('/image_raw'):
            # the header is all that is needed: decode the stamp without the pixels
            stamps.setdefault(topic, set()).add(_image_stamp(data))
    missing = {'transition sequence gaps': 0, 'task_state': 0}
    missing.update(dict.fromkeys(cameras, 0))
    if transitions:
        sequences = sorted(t.sequence for t in transitions)
        missing['transition sequence gaps'] = sequences[-1] - sequences[0] + 1 - len(sequences)
    for transition in transitions:
        stamp = _stamp(transition)
        missing['task_state'] += stamp not in stamps.get('/task_state', set())
        for camera in cameras:
            missing[camera] += stamp not in stamps.get(f'/camera/{camera}/image_raw', set())
    return {'counts': counts, 'bytes': size, 'seconds': (last - first) / 1e9 if first else 0,
            'missing': missing, 'steps': len(transitions), 'problems': reader.problems}


def _stamp(message) -> int:
    return message.header.stamp.sec * 10**9 + message.header.stamp.nanosec


def _image_stamp(data: bytes) -> int:
    # CDR: 4-byte encapsulation header, then std_msgs/Header: int32 sec, uint32 nanosec.
    sec = int.from_bytes(data[4:8], 'little', signed=True)
    return sec * 10**9 + int.from_bytes(data[8:12], 'little')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0,
                        help='simulated (= real) minutes per run (default 10)')
    parser.add_argument('--rate', type=float, default=30.0, help='control rate, Hz')
    parser.add_argument('--cameras', nargs='+', default=['corner', 'topview'])
    parser.add_argument('--image-size', type=int, default=128)
    parser.add_argument('--skip-baseline', action='store_true',
                        help='only the recorded run')
    options = parser.parse_args()
    seconds = options.minutes * 60
    with tempfile.TemporaryDirectory(prefix='hilresrl-recording-') as tmp:
        folder = pathlib.Path(tmp)
        params = parameter_file(folder, options.rate, options.cameras, options.image_size)
        common = [f'params_file:={params}']
        runs = {}
        if not options.skip_baseline:
            runs['no recording'] = run_graph('baseline', seconds, common + [
                f'run_dir:={folder / "baseline"}'], folder)
        runs['recording'] = run_graph('recorded', seconds, common + [
            'record:=true', f'run_dir:={folder / "recorded"}'], folder)
        check = drops_in_bag(folder / 'recorded' / 'bag', options.cameras)
        lost = sum(int(n) for n in re.findall(r'(\d+) lost', runs['recording']['output']))

    print(f'\n{options.rate:g} Hz, cameras {", ".join(options.cameras)} '
          f'({options.image_size} px), {options.minutes:g} min per run, training')
    print('| run | episode steps/s (transitions) | learner updates/s | CPU of all nodes (cores) |')
    print('|---|---|---|---|')
    for label, run in runs.items():
        steps, updates = learner_rates(run['output'])
        print(f'| {label} | {steps / run["wall_s"]:.1f} | {updates / run["wall_s"]:.1f} | '
              f'{sum(run["cpu_s"].values()) / run["wall_s"]:.2f} |')
    recorder_cpu = runs['recording']['cpu_s'].get('recorder', float('nan'))
    messages = sum(check['counts'].values())
    states = check['counts'].get('/task_state', 0)
    print(f'\nsimulated cell: {states / check["seconds"]:.1f} observations/s (target '
          f'{options.rate:g}), each with {len(options.cameras)} images')
    print(f'recorder: {messages} messages on {len(check["counts"])} topics in '
          f'{check["seconds"]:.0f} s: {messages / check["seconds"]:.0f} messages/s, '
          f'{check["bytes"] / 1e6 / check["seconds"]:.2f} MB/s, CPU '
          f'{100 * recorder_cpu / runs["recording"]["wall_s"]:.1f}% of one core')
    drops = sum(check['missing'].values()) + lost
    print(f'drops: {drops} ({check["steps"]} episode steps checked; missing per kind '
          f'{check["missing"]}; middleware-reported lost {lost})')
    for problem in check['problems']:
        print('bag problem:', problem)
    return 0


if __name__ == '__main__':
    sys.exit(main())

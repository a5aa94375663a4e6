"""The learner's pure modules import on a machine without ROS (the benchmarks run there)."""

import subprocess
import sys
import textwrap

PURE_MODULES = ('actor_learners', 'bag_frames', 'camera_frames', 'checkpoint',
                'evaluation_rounds', 'intake', 'latent_steps', 'learner_parameters',
                'offline_data', 'progress', 'replay', 'residual_sac', 'residual_td3',
                'run_folder', 'run_progress', 'sequence_tracker', 'training', 'transition_data',
                'weights_channel')
# rclpy, our messages, and the ROS message packages they stand on
ROS_PACKAGES = ('rclpy', 'hilresrl_msgs', 'builtin_interfaces', 'std_msgs', 'geometry_msgs',
                'sensor_msgs', 'rcl_interfaces', 'rosidl_runtime_py', 'rosidl_parser')

CHECK = textwrap.dedent('''
    import importlib
    import sys

    BLOCKED = set(sys.argv[1].split(','))


    class NoRos:
        """Refuse every ROS package, as a machine without ROS would."""

        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ImportError(f'{name} imported (ROS is blocked)')
            return None


    sys.meta_path.insert(0, NoRos())
    for module in sys.argv[2].split(','):
        importlib.import_module(f'hilresrl_learner.{module}')
    leaked = sorted(name for name in sys.modules if name.split('.')[0] in BLOCKED)
    assert not leaked, leaked
''')


def _import_without_ros(modules, blocked=ROS_PACKAGES):
    return subprocess.run([sys.executable, '-c', CHECK, ','.join(blocked), ','.join(modules)],
                          capture_output=True, text=True, timeout=120)


def test_the_pure_learner_modules_import_without_ros():
    result = _import_without_ros(PURE_MODULES)
    assert result.returncode == 0, result.stderr


def test_the_check_catches_a_module_that_needs_ros():
    result = _import_without_ros(['learner_node'])
    assert result.returncode != 0 and 'ROS is blocked' in result.stderr

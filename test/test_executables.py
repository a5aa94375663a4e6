"""Every executable a user may run with ros2 run is installed, under its old package too."""

import os

from ament_index_python.packages import get_package_prefix
import pytest

EXECUTABLES = (
    ('hilresrl', 'hilresrl'), ('hilresrl', 'residual_in_arbiter'),
    ('hilresrl_sim', 'sim_cell'), ('hilresrl_sim', 'simulated_operator'),
    ('hilresrl_policy', 'base_policy_node'), ('hilresrl_policy', 'residual_policy_node'),
    ('hilresrl_policy', 'policy_server'),
    ('hilresrl_teleop', 'intervention_arbiter'), ('hilresrl_teleop', 'keyboard'),
    ('hilresrl_teleop', 'spacemouse'), ('hilresrl_teleop', 'ee_pose'), ('hilresrl_teleop', 'say'),
    ('hilresrl_episodes', 'episode_manager'),
    ('hilresrl_learner', 'learner_node'),
    ('hilresrl_recording', 'recorder'), ('hilresrl_recording', 'replay'),
    ('hilresrl_recording', 'export'), ('hilresrl_recording', 'bag_info'),
    # Names from before the recording tools and the episode manager had packages of their own.
    ('hilresrl_teleop', 'episode_manager'),
    ('hilresrl_learner', 'recorder'), ('hilresrl_learner', 'replay'),
    ('hilresrl_learner', 'export'), ('hilresrl_learner', 'bag_info'),
)


@pytest.mark.parametrize('package,executable', EXECUTABLES, ids='/'.join)
def test_executable_is_installed(package, executable):
    # The hilresrl command is on PATH; node executables are where ros2 run and launch look.
    folder = 'bin' if executable == 'hilresrl' else os.path.join('lib', package)
    path = os.path.join(get_package_prefix(package), folder, executable)
    assert os.access(path, os.X_OK), f'{path} is missing or not executable'

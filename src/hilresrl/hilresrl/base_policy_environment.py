"""
Where the base-policy node runs: in this environment, or in LeRobot's.

LeRobot 0.6.1 wants Python 3.12 and a torch of its own, so it lives in a virtual environment
beside the suite's (scripts/setup-lerobot.sh makes it): the ROS 2 wheels for its Python, the
suite's core packages, hilresrl_msgs built for it, and a program that starts the base-policy node
there (bin/hilresrl-base-policy-node). A graph whose base policy is LeRobot's, launched where
LeRobot cannot be imported, starts that program in place of the package's executable, with the
same node name, parameters and remappings; the other nodes cannot tell the difference.
"""

import importlib.util
import os
import pathlib

LEROBOT_VENV_VARIABLE = 'HILRESRL_LEROBOT_VENV'
NODE_PROGRAM = pathlib.Path('bin', 'hilresrl-base-policy-node')
AUTO, THIS = 'auto', 'this'


def lerobot_environment() -> pathlib.Path:
    """Return $HILRESRL_LEROBOT_VENV, else .venv-lerobot in the workspace of this install."""
    given = os.environ.get(LEROBOT_VENV_VARIABLE, '').strip()
    if given:
        return pathlib.Path(given).expanduser()
    try:
        from ament_index_python.packages import get_package_prefix
        prefix = pathlib.Path(get_package_prefix('hilresrl')).resolve()
    except (ImportError, LookupError):
        return pathlib.Path('.venv-lerobot').resolve()
    # <workspace>/install/hilresrl (colcon's isolated layout) or <workspace>/install (merged)
    install = prefix.parent if prefix.parent.name == 'install' else prefix
    return install.parent / '.venv-lerobot'


def base_policy_program(kind: str, environment: str) -> str:
    """
    Return the program that runs the base-policy node, or '' for the package's executable.

    ``environment``: this (always the package's executable), auto (LeRobot's environment for
    the lerobot adapter where LeRobot is not importable here) or the folder of an environment
    made as scripts/setup-lerobot.sh makes one. A ValueError says what is missing.
    """
    environment = environment.strip() or AUTO
    if environment == THIS:
        return ''
    if environment == AUTO:
        if kind != 'lerobot' or importlib.util.find_spec('lerobot') is not None:
            return ''
        folder = lerobot_environment()
        needs = (f'base_policy:=lerobot needs LeRobot, which is not in this environment and has '
                 f'no environment of its own at {folder} ({LEROBOT_VENV_VARIABLE}, else '
                 '.venv-lerobot beside the workspace)')
    else:
        folder = pathlib.Path(environment).expanduser()
        needs = f'base_policy_environment:={environment} is not an environment for the node'
    program = folder / NODE_PROGRAM
    if not os.access(program, os.X_OK):
        raise ValueError(f'{needs}: no {program}; scripts/setup-lerobot.sh makes it')
    return str(program)

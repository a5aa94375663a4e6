"""ros2 launch hilresrl eval.launch.py: the eval graph declared in hilresrl.graph."""

from hilresrl.launch_description import generate_for


def generate_launch_description():
    """Return the eval graph with its launch arguments (ros2 launch -s lists them)."""
    return generate_for('eval')

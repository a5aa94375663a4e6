"""ros2 launch hilresrl train.launch.py: the train graph declared in hilresrl.graph."""

from hilresrl.launch_description import generate_for


def generate_launch_description():
    """Return the train graph with its launch arguments (ros2 launch -s lists them)."""
    return generate_for('train')

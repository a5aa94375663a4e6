"""
Example driver stack for cell:=franka_cartesian: franka_ros2 and a Cartesian compliance controller.

    ros2 launch hilresrl franka_cartesian_driver.launch.py robot_ip:=172.16.0.2 \
        controller_params_file:=/path/to/cartesian_compliance_controller.yaml
franka_bringup's own controllers file defines no controller that takes a target pose: the
controller comes from its own ros2_control parameter file (FZI's cartesian_controllers ship one),
which the spawner loads. Any controller that takes a target pose works: set `controller` to its
name and remap target_pose to its topic in train.launch.py (README, "Dropping hilresrl into your
cell").
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _spawner(context):
    """Return the spawner of the controller, with its parameter file where one is given."""
    arguments = [LaunchConfiguration('controller').perform(context)]
    params_file = LaunchConfiguration('controller_params_file').perform(context)
    if params_file:
        arguments += ['--param-file', params_file]
    return [Node(package='controller_manager', executable='spawner', arguments=arguments,
                 output='screen')]


def generate_launch_description():
    """Return the Franka bringup and a spawner for the Cartesian controller."""
    bringup = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('franka_bringup'), 'launch', 'franka.launch.py'])),
        launch_arguments={'robot_ip': LaunchConfiguration('robot_ip'),
                          'load_gripper': 'true', 'use_rviz': 'false'}.items())
    return LaunchDescription([
        DeclareLaunchArgument('robot_ip', description='IP address of the Franka controller'),
        DeclareLaunchArgument('controller', default_value='cartesian_compliance_controller',
                              description='ros2_control controller that takes a target pose'),
        DeclareLaunchArgument('controller_params_file', default_value='',
                              description='ros2_control parameter file that defines it '
                                          "(franka_bringup's defines none that takes a pose; "
                                          'empty: the controller manager has it already)'),
        bringup, OpaqueFunction(function=_spawner)])

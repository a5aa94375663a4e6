"""
Example driver stack for cell:=joint_trajectory_arm: your ros2_control bringup, two spawners.

    ros2 launch hilresrl joint_trajectory_arm_driver.launch.py \
        bringup_package:=my_arm_bringup bringup_launch:=my_arm.launch.py
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Return the arm's bringup and the arm and hand joint_trajectory_controllers."""
    bringup = IncludeLaunchDescription(PythonLaunchDescriptionSource(PathJoinSubstitution(
        [FindPackageShare(LaunchConfiguration('bringup_package')), 'launch',
         LaunchConfiguration('bringup_launch')])))
    spawners = [Node(package='controller_manager', executable='spawner',
                     arguments=[LaunchConfiguration(name)], output='screen')
                for name in ('arm_controller', 'hand_controller')]
    return LaunchDescription([
        DeclareLaunchArgument('bringup_package', description='package of the arm bringup'),
        DeclareLaunchArgument('bringup_launch', description='its launch file (ros2_control)'),
        DeclareLaunchArgument('arm_controller', default_value='arm_controller',
                              description='joint_trajectory_controller of the arm'),
        DeclareLaunchArgument('hand_controller', default_value='hand_controller',
                              description='joint_trajectory_controller of the gripper'),
        bringup, *spawners])

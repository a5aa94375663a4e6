"""
Example driver stack for cell:=franka_cartesian: franka_ros2 and a Cartesian compliance controller.

    ros2 launch hilresrl franka_cartesian_driver.launch.py robot_ip:=172.16.0.2
Any controller that takes a target pose works: set `controller` to its name and remap
target_pose to its topic in train.launch.py (README, "Dropping hilresrl into your cell").
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Return the Franka bringup and a spawner for the Cartesian controller."""
    bringup = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('franka_bringup'), 'launch', 'franka.launch.py'])),
        launch_arguments={'robot_ip': LaunchConfiguration('robot_ip'),
                          'load_gripper': 'true', 'use_rviz': 'false'}.items())
    controller = Node(package='controller_manager', executable='spawner',
                      arguments=[LaunchConfiguration('controller')], output='screen')
    return LaunchDescription([
        DeclareLaunchArgument('robot_ip', description='IP address of the Franka controller'),
        DeclareLaunchArgument('controller', default_value='cartesian_compliance_controller',
                              description='ros2_control controller that takes a target pose'),
        bringup, controller])

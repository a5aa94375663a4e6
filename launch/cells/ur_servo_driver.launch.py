"""
Example driver stack for cell:=ur_servo: ur_robot_driver and MoveIt Servo (adapt to your arm).

    ros2 launch hilresrl ur_servo_driver.launch.py ur_type:=ur5e robot_ip:=192.168.1.10
then, in another terminal, ros2 launch hilresrl train.launch.py cell:=ur_servo (README).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Return the UR driver (forward controllers for Servo) and MoveIt with Servo."""
    ur_type, robot_ip = LaunchConfiguration('ur_type'), LaunchConfiguration('robot_ip')
    driver = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('ur_robot_driver'), 'launch', 'ur_control.launch.py'])),
        launch_arguments={'ur_type': ur_type, 'robot_ip': robot_ip, 'launch_rviz': 'false',
                          'initial_joint_controller': 'forward_position_controller'}.items())
    moveit = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('ur_moveit_config'), 'launch', 'ur_moveit.launch.py'])),
        launch_arguments={'ur_type': ur_type, 'launch_rviz': 'false',
                          'launch_servo': 'true'}.items())
    return LaunchDescription([
        DeclareLaunchArgument('ur_type', default_value='ur5e', description='UR model'),
        DeclareLaunchArgument('robot_ip', description='IP address of the robot controller'),
        driver, moveit])

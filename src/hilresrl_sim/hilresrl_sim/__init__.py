"""A simulated robot cell (MuJoCo) that speaks the topics of a real ROS 2 driver stack."""

"""rosbag2 recording, playback and export of hilresrl runs."""

"""Bringup of hilresrl: node graph, launch support and the hilresrl command line."""

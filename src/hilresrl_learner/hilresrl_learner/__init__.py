"""Learner: replay buffers, residual off-policy RL, checkpoints and weight broadcast."""

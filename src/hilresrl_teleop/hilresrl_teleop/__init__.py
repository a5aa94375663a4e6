"""SpaceMouse input, intervention arbitration, safety filter, and episode and reward control."""

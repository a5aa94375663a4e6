"""The person-to-robot path: SpaceMouse input, intervention arbitration, the safety filter."""

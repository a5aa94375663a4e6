"""Episode and reward control, and the transitions learned from."""

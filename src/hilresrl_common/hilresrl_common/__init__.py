"""Shared ground of the hilresrl packages: node plumbing, conversions, shared settings."""

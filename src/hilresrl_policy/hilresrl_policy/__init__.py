"""Base-policy node with model adapters, residual-policy node and action composition."""

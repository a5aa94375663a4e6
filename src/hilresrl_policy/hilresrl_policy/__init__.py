"""Base-policy node with model adapters, behaviour cloning, the residual actor and its node."""

"""
Base-policy adapters: any model that turns an observation into an action chunk.

An adapter is a ``BasePolicy``; adapters are found by name in the ``hilresrl.base_policies``
entry-point group, so a user registers their own model from their own package without editing
the suite (see ``load_base_policy``).
"""

from .base import BasePolicy, BasePolicyError, load_base_policy, registered_base_policies

__all__ = ['BasePolicy', 'BasePolicyError', 'load_base_policy', 'registered_base_policies']

"""
residual_in_arbiter: the residual policy and the intervention arbiter in one process.

The fast control path (``residual_in_arbiter:=true``): both nodes keep their names, parameters
and topics, and share one executor; each proposal reaches the arbiter by a direct call instead
of a DDS hop, then goes out on proposed_action for the operator, recorder and episode manager.
"""

from functools import partial

from hilresrl_common.node_runner import run_nodes
from hilresrl_policy.residual_policy_node import ResidualPolicyNode
from hilresrl_teleop.intervention_arbiter_node import InterventionArbiterNode


def hand_proposals(residual: ResidualPolicyNode, arbiter: InterventionArbiterNode) -> None:
    """Let the arbiter command each of the residual's proposals before it is published."""
    residual.hand_proposals_to(arbiter.take_proposal)


def main(args=None):
    """Run the residual policy and the intervention arbiter in one process until shutdown."""
    return run_nodes((ResidualPolicyNode,
                      partial(InterventionArbiterNode, proposals_in_process=True)),
                     args, connect=hand_proposals)


if __name__ == '__main__':
    main()

"""
DDS discovery kept on this machine unless the user chose otherwise: the suite's default.

The same rule as scripts/env.sh (which in-env.sh sources); ``hilresrl launch`` and the launch
files apply it to the processes they start. Multi-machine cells set the variables themselves.
"""

from typing import Dict, Mapping

RANGE = 'ROS_AUTOMATIC_DISCOVERY_RANGE'  # Iron and later: LOCALHOST, SUBNET, OFF, SYSTEM_DEFAULT
LOCALHOST_ONLY = 'ROS_LOCALHOST_ONLY'  # Humble (deprecated since Iron)


def localhost_defaults(environment: Mapping[str, str]) -> Dict[str, str]:
    """
    Return the variables to set so that discovery stays on this host, given the environment.

    Nothing when the user made a choice of their own: ROS_LOCALHOST_ONLY=0, or a discovery
    range other than LOCALHOST. Else ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST where unset, and on
    Humble (ROS_DISTRO=humble) also ROS_LOCALHOST_ONLY=1 where unset.
    """
    chosen_range = environment.get(RANGE, '')
    if environment.get(LOCALHOST_ONLY) == '0' or chosen_range not in ('', 'LOCALHOST'):
        return {}
    defaults = {}
    if not chosen_range:
        defaults[RANGE] = 'LOCALHOST'
    if environment.get('ROS_DISTRO') == 'humble' and not environment.get(LOCALHOST_ONLY):
        defaults[LOCALHOST_ONLY] = '1'
    return defaults


def apply_localhost_defaults(environment) -> Dict[str, str]:
    """Set the defaults of localhost_defaults() in ``environment`` (os.environ); return them."""
    defaults = localhost_defaults(environment)
    environment.update(defaults)
    return defaults

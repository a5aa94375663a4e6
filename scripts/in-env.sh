#!/usr/bin/env bash
# Run one command in hilresrl's environment (see env.sh): scripts/in-env.sh hilresrl launch train
set -eo pipefail
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# On a single machine, keep DDS discovery on this host unless the caller chose otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
if [ "${ROS_DISTRO:-}" = humble ]; then export ROS_LOCALHOST_ONLY="${ROS_LOCALHOST_ONLY:-1}"; fi
exec "$@"

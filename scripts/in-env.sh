#!/usr/bin/env bash
# Run one command in hilresrl's environment (see env.sh): scripts/in-env.sh hilresrl launch train
set -eo pipefail
# (env.sh also keeps DDS discovery on this host unless the caller chose otherwise.)
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$@"

# Source this file (bash or zsh) to use hilresrl in the current shell: it activates the virtual
# environment made by scripts/setup.sh and sources the built workspace (install/setup.bash).
# DDS discovery stays on this machine unless you chose otherwise (see the README's multi-machine
# section): ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, and ROS_LOCALHOST_ONLY=1 on Humble, where
# unset; ROS_LOCALHOST_ONLY=0 or another range leaves both as they are.
#   source scripts/env.sh
if [ -n "${BASH_SOURCE[0]:-}" ]; then _hilresrl_here="${BASH_SOURCE[0]}"; else _hilresrl_here="$0"; fi
_hilresrl_root="$(cd "$(dirname "$_hilresrl_here")/.." && pwd)"
_hilresrl_venv="${HILRESRL_VENV:-$_hilresrl_root/.venv}"
if [ ! -f "$_hilresrl_root/install/setup.bash" ] || [ ! -f "$_hilresrl_venv/bin/activate" ]; then
  echo "hilresrl: not set up yet: run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$_hilresrl_venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then
  # ROS 2 from wheels: their ament index and CMake configs live in the virtual environment.
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$_hilresrl_venv:"*) ;;
    *) export AMENT_PREFIX_PATH="$_hilresrl_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
  case ":${CMAKE_PREFIX_PATH:-}:" in
    *":$_hilresrl_venv:"*) ;;
    *) export CMAKE_PREFIX_PATH="$_hilresrl_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" ;;
  esac
fi
if [ -n "${ZSH_VERSION:-}" ]; then
  . "$_hilresrl_root/install/setup.zsh"
else
  . "$_hilresrl_root/install/setup.bash"
fi
# The rule of src/hilresrl/hilresrl/discovery.py (a test keeps the two in step).
case "${ROS_LOCALHOST_ONLY:-}:${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}" in
  0:*) ;;  # the user opened discovery
  *:LOCALHOST)
    export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
    if [ "${ROS_DISTRO:-}" = humble ]; then export ROS_LOCALHOST_ONLY="${ROS_LOCALHOST_ONLY:-1}"; fi
    ;;
esac
unset _hilresrl_here _hilresrl_root _hilresrl_venv

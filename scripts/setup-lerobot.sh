#!/usr/bin/env bash
# Set up the LeRobot environment: a Python 3.12 virtual environment (.venv-lerobot) with LeRobot
# and its own torch, pinned (requirements/lerobot.txt), beside the suite's .venv, which stays as
# it is. The suite's core packages (no ROS) are on its path, so the lerobot base-policy adapter
# and its tests run there against LeRobot itself. Safe to run again: an environment made from
# the same lock and interpreter is kept.
#
# Usage: scripts/setup-lerobot.sh [--optional]
#   --optional                   without Python 3.12, say so and succeed (make test: the LeRobot
#                                tests are then skipped, naming why)
#   LEROBOT_PYTHON=python3.12   interpreter (default: python3.12 on PATH, else pyenv's 3.12)
#   HILRESRL_LEROBOT_VENV=DIR    where the environment lives (default: .venv-lerobot)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HILRESRL_LEROBOT_VENV:-$root/.venv-lerobot}"
lock="$root/requirements/lerobot.txt"
optional=0
case "${1:-}" in
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --optional) optional=1 ;;
  '') ;;
  *) echo "setup-lerobot: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac
fail() { echo "setup-lerobot: $*" >&2; exit 1; }
no_python() {
  [ "$optional" = 1 ] || fail "$*"
  echo "==> no LeRobot environment: $* (the LeRobot tests will be skipped)"; exit 0
}
step() { echo "==> $*"; }

python="${LEROBOT_PYTHON:-}"
if [ -z "$python" ]; then
  if command -v python3.12 >/dev/null && python3.12 -c '' 2>/dev/null; then
    python=python3.12
  elif command -v pyenv >/dev/null && pyenv prefix 3.12 >/dev/null 2>&1; then
    python="$(pyenv prefix 3.12)/bin/python3.12"
  else
    no_python "LeRobot 0.6.1 needs Python 3.12: install it (apt install python3.12 python3.12-venv) or set LEROBOT_PYTHON"
  fi
fi
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$version" = 3.12 ] || no_python "$python is Python $version; LeRobot 0.6.1 needs 3.12 (set LEROBOT_PYTHON)"

stamp="$version $(sha256sum "$lock" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.hilresrl-lerobot" 2>/dev/null)" = "$stamp" ]; then
  step "LeRobot environment up to date ($venv)"
else
  started=$(date +%s)
  step "creating $venv (Python $version, LeRobot from $(basename "$lock"); about 5 GB)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # (this machine's pip configuration names local package folders that may not exist: hush)
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  echo "$stamp" > "$venv/.hilresrl-lerobot"
  step "LeRobot environment made in $(( $(date +%s) - started )) s, $(du -sh "$venv" | cut -f1)"
fi
# The suite's core packages (torch and numpy only, no ROS) from this checkout, as they are.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n' "$root/src/hilresrl_common" "$root/src/hilresrl_policy" \
  "$root/src/hilresrl_recording" > "$site/hilresrl-core.pth"
step "ready: $venv/bin/python -m pytest -m lerobot runs the tests against LeRobot"

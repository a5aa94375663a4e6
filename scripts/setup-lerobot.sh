#!/usr/bin/env bash
# Set up the LeRobot environment: a Python 3.12 virtual environment (.venv-lerobot) with LeRobot,
# its own torch and the ROS 2 wheels for Python 3.12, pinned (requirements/lerobot.txt), beside
# the suite's .venv, which stays as it is. The suite's core packages (hilresrl_common,
# hilresrl_policy, hilresrl_recording) are installed there from this checkout (editable) and
# hilresrl_msgs is built for its Python, so that the base-policy node runs a LeRobot policy
# itself: bin/hilresrl-base-policy-node there, which base_policy:=lerobot starts. Safe to run
# again: what is up to date is kept.
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
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# The suite's core packages (no ROS in them) from this checkout, as they are, with their entry
# points (base_policy.kind lerobot), and hilresrl_msgs built for this Python: colcon with the
# wheels' ament_cmake and rosidl, into the environment (not the suite's build/ and install/).
sources_stamp="$(cd "$root" && find src/hilresrl_msgs src/hilresrl_common/setup.py \
  src/hilresrl_policy/setup.py src/hilresrl_recording/setup.py -type f | sort \
  | xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/.hilresrl-build" 2>/dev/null)" != "$stamp $sources_stamp" ]; then
  step "installing the suite's core packages and building hilresrl_msgs for Python $version"
  rm -f "$venv/.hilresrl-build"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation -e "$root/src/hilresrl_common" -e "$root/src/hilresrl_policy" \
    -e "$root/src/hilresrl_recording" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  touch "$venv/COLCON_IGNORE"   # the wheels ship package.xml files; colcon must not build them
  "$venv/bin/python" "$root/scripts/fix_wheel_cmake_paths.py" "$venv"
  rm -rf "$venv/hilresrl"
  (cd "$root" && unset PYTHONPATH COLCON_PREFIX_PATH \
    && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" \
    CMAKE_PREFIX_PATH="$venv" "$venv/bin/python" "$venv/bin/colcon" \
    --log-base "$venv/hilresrl/log" build --base-paths src/hilresrl_msgs \
    --build-base "$venv/hilresrl/build" --install-base "$venv/hilresrl/install" \
    --event-handlers console_cohesion- status-)
  echo "$stamp $sources_stamp" > "$venv/.hilresrl-build"
else
  step "the suite's packages there up to date"
fi
# Programs run in this environment from any shell: the launching shell's Python path and
# workspace are the suite's (another Python), so they are set aside, and this environment's ROS 2
# and hilresrl_msgs take their place. hilresrl-lerobot-env runs a command so; the base-policy
# node is one (base_policy:=lerobot starts it).
ros_libraries="$venv/lib$(printf ':%s' "$site"/ros_*.libs)"
cat > "$venv/bin/hilresrl-lerobot-env" <<EOF
#!/usr/bin/env bash
# Run a command in the LeRobot environment, with its ROS 2 and hilresrl_msgs (written by
# scripts/setup-lerobot.sh), e.g. hilresrl-lerobot-env python -m pytest -m lerobot.
unset PYTHONPATH PYTHONHOME COLCON_PREFIX_PATH
export VIRTUAL_ENV="$venv" AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
export PATH="$venv/bin:\$PATH"
# The ROS 2 wheels' libraries of this environment first: a process of the suite's environment
# passes on its own (another Python's) and the guard that keeps the wheels' bootstrapper from
# adding these, so they are put in front here and the bootstrapper is not needed.
export LD_LIBRARY_PATH="$ros_libraries\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
. "$venv/hilresrl/install/local_setup.bash"
exec "\$@"
EOF
cat > "$venv/bin/hilresrl-base-policy-node" <<EOF
#!/usr/bin/env bash
# The suite's base-policy node in the LeRobot environment (written by scripts/setup-lerobot.sh).
exec "$venv/bin/hilresrl-lerobot-env" "$venv/bin/python" -m hilresrl_policy.base_policy_node "\$@"
EOF
chmod +x "$venv/bin/hilresrl-lerobot-env" "$venv/bin/hilresrl-base-policy-node"
step "ready: $venv/bin/hilresrl-lerobot-env python -m pytest -m lerobot runs the tests there, and"
step "base_policy:=lerobot runs the base-policy node there ($venv/bin/hilresrl-base-policy-node)"

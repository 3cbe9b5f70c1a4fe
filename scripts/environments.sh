# The project's virtual environments, in one place (sourced by scripts/setup, scripts/test and
# scripts/develop). Each is named after what tells it apart:
#
#   3.14     Python 3.14, the latest Home Assistant the test plugin supports (2026.10)
#   3.13     Python 3.13.0, the minimum Home Assistant (2025.4)
#   2026.11  Python 3.14, the newest Home Assistant release, ahead of the test plugin:
#            mypy and the browser test run there (requirements_newest.txt says how to move
#            the full suite there)
#
# shellcheck shell=bash

ALL_ENVIRONMENTS=(3.14 3.13 2026.11)
# The newest Home Assistant: the browser test runs here.
NEWEST_ENVIRONMENT=2026.11

# Which Python an environment is built with ($PYTHON314 / $PYTHON313 point at one).
environment_python_version() {
  case $1 in
    3.14 | 2026.11) echo 3.14 ;;
    3.13) echo 3.13 ;;
    *) return 1 ;;
  esac
}

# The requirement file scripts/setup builds the environment from.
environment_requirements() {
  case $1 in
    2026.11) echo requirements_newest.txt ;;
    3.14 | 3.13) echo requirements_test.txt ;;
    *) return 1 ;;
  esac
}

# What a real Home Assistant additionally needs there (scripts/develop, the browser test).
environment_dev_requirements() {
  case $1 in
    2026.11) echo requirements_newest_dev.txt ;;
    3.14 | 3.13) echo requirements_dev.txt ;;
    *) return 1 ;;
  esac
}

# Say which environments exist when a name is wrong.
check_environment_name() {
  environment_python_version "$1" >/dev/null && return 0
  echo "unknown environment '$1': use one of ${ALL_ENVIRONMENTS[*]}" >&2
  return 1
}

# Where the Python of a version is: $PYTHON314 / $PYTHON313, else python3.14 / python3.13 on
# PATH, else pyenv's. Prints the interpreter; fails when there is none.
find_python() {
  local version=$1 override
  case $version in
    3.14) override=${PYTHON314:-} ;;
    3.13) override=${PYTHON313:-} ;;
  esac
  if [[ -n $override ]]; then
    [[ -x $override ]] || command -v "$override" >/dev/null || { echo "not found: $override" >&2; return 1; }
    command -v "$override"
    return 0
  fi
  # A pyenv shim answers on PATH but fails when the version is not selected, so try it.
  if command -v "python$version" >/dev/null && "python$version" -c '' 2>/dev/null; then
    command -v "python$version"
    return 0
  fi
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  local candidate
  for candidate in "$root"/versions/"$version".*/bin/"python$version"; do
    [[ -x $candidate ]] && { echo "$candidate"; return 0; }
  done
  return 1
}

# How to get a missing Python, for the messages of scripts/setup and scripts/develop.
python_hint() {
  local version=$1 shared
  shared="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/toolchains/python$version"
  if [[ -x $shared ]]; then
    echo "this machine has one: PYTHON${version/./}=$(realpath "$shared")"
  else
    echo "install Python $version (python.org, your distribution or pyenv) and put python$version on PATH, or set PYTHON${version/./}=/path/to/python$version"
  fi
}

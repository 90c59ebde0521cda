#!/usr/bin/env bash
# Prepare this checkout: a virtualenv in .venv with the server installed (editable).
# Python 3.11+ (python3, or PYTHON=...). On Debian/Ubuntu a Python without venv support
# gets its python3.X-venv package (as root or with sudo).
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   plus test tools, and (as root or with sudo) the Debian
#                             packages the tests drive: chromium, coturn, redis-server
#                             (cluster mode), iproute2, nftables,
#                             libnss3-tools (certutil: a test's Chromium trusts a test CA),
#                             gcc (the relay floor benchmark builds a tiny C relay; pip
#                             builds sfu/_fanout_c/), python3-dev when Python.h is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

if (( want_test )); then
  missing=()
  for pair in chromium:/usr/bin/chromium coturn:/usr/bin/turnserver \
              redis-server:/usr/bin/redis-server iproute2:/usr/sbin/ip \
              nftables:/usr/sbin/nft libnss3-tools:/usr/bin/certutil gcc:/usr/bin/gcc \
              libc6-dev:/usr/include/stdio.h; do
    [[ -e "${pair#*:}" ]] || missing+=("${pair%%:*}")
  done
  # The optional C extensions (sfu/_fanout_c/, sfu/_receive_c/) need the headers of the Python in .venv.
  py=.venv/bin/python
  [[ -x $py ]] || py=${PYTHON:-python3}
  include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [[ -e "$include/Python.h" ]] || missing+=(python3-dev)
  if (( ${#missing[@]} )); then
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
      command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
      sudo="sudo"
    fi
    echo "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "setup: no $python found; install Python 3.11 or newer" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: $python is Python $("$python" -c 'import platform; print(platform.python_version())'); 3.11 or newer is needed (set PYTHON=...)" >&2
  exit 1
}

# Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package,
# python3.X-venv; without it `python -m venv` leaves a .venv that has no pip.
ensure_venv_support() {
  "$python" -c 'import ensurepip, venv' 2>/dev/null && return 0
  local package base
  package=$("$python" -c 'import sys; print(f"python3.{sys.version_info.minor}-venv")')
  base=$("$python" -c 'import sys; print(sys.base_prefix)')
  if [[ $base != /usr ]] || ! command -v apt-get >/dev/null; then
    echo "setup: $python ($base) cannot create a virtualenv: its ensurepip module is missing;" \
      "reinstall that Python with venv support or set PYTHON to one that has it" >&2
    exit 1
  fi
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || {
      echo "setup: $python cannot create a virtualenv; as root run: apt-get install $package" >&2
      exit 1
    }
    sudo="sudo"
  fi
  echo "installing Debian package: $package (venv support for $python)"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$package"
  "$python" -c 'import ensurepip, venv' 2>/dev/null || {
    echo "setup: $python still cannot import ensurepip after installing $package" >&2
    exit 1
  }
}

# A .venv without pip is what a failed `python -m venv` leaves behind: make it anew.
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import pip' 2>/dev/null; then
  ensure_venv_support
  rm -rf .venv
  "$python" -m venv .venv || {
    rm -rf .venv
    echo "setup: '$python -m venv .venv' failed (see above)" >&2
    exit 1
  }
fi
# setup.py and the C file too: a changed extension is rebuilt.
stamp=".venv/.installed-$(cat pyproject.toml setup.py sfu/_native_args.h sfu/_fanout_c/*.[ch] sfu/_receive_c/*.[ch] | sha1sum | cut -c1-12)-$want_test"
if [[ ! -e "$stamp" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if (( want_test )); then
    .venv/bin/python -m pip install -q -e ".[test]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi

#!/usr/bin/env bash
# Prepare this checkout: a virtualenv in .venv with the server installed (editable).
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   plus test tools, and (as root or with sudo) the Debian
#                             packages the tests drive: chromium, coturn, iproute2, nftables,
#                             libnss3-tools (certutil: a test's Chromium trusts a test CA),
#                             gcc (the relay floor benchmark builds a tiny C relay; pip
#                             builds sfu/_fanout.c), python3-dev when Python.h is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

if (( want_test )); then
  missing=()
  for pair in chromium:/usr/bin/chromium coturn:/usr/bin/turnserver iproute2:/usr/sbin/ip \
              nftables:/usr/sbin/nft libnss3-tools:/usr/bin/certutil gcc:/usr/bin/gcc \
              libc6-dev:/usr/include/stdio.h; do
    [[ -e "${pair#*:}" ]] || missing+=("${pair%%:*}")
  done
  # The optional C extension (sfu/_fanout.c) needs the headers of the Python in .venv.
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
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
# setup.py and the C file too: a changed extension is rebuilt.
stamp=".venv/.installed-$(cat pyproject.toml setup.py sfu/_fanout.c | sha1sum | cut -c1-12)-$want_test"
if [[ ! -e "$stamp" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if (( want_test )); then
    .venv/bin/python -m pip install -q -e ".[test]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi

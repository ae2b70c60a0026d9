#!/usr/bin/env bash
# Set up placer from a clone on Debian 12: Python 3.11 with venv (Debian's packages, via sudo when
# not root), then a virtual environment in .venv with placer and its test tools installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# run quietly, keep the exit status, drop pip's noise about unreachable local index paths
quiet() { local out rc=0; out=$("$@" 2>&1) || rc=$?; printf '%s\n' "$out" | grep -v '^WARNING: Location' | grep -v '^$' >&2 || true; return $rc; }

need_apt=()
if ! command -v python3 >/dev/null 2>&1; then
  need_apt+=(python3 python3-venv)
else
  # Debian splits venv/ensurepip into python3-venv: try making a venv to know
  probe=$(mktemp -d)
  python3 -m venv "$probe/v" >/dev/null 2>&1 || need_apt+=(python3-venv)
  rm -rf "$probe"
fi
if ((${#need_apt[@]})); then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install.sh: need root or sudo to apt-get install ${need_apt[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  echo "install.sh: installing Debian packages: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python3 - <<'PY' || { echo "install.sh: placer needs Python >= 3.11" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

# (re)create the venv unless a working one is there (a failed earlier attempt leaves one without pip)
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then python3 -m venv --clear .venv; fi
quiet .venv/bin/python -m pip install -q --upgrade pip
# editable: the checkout is what runs, so an edit needs no reinstall
quiet .venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/placer --version >/dev/null
echo "install.sh: ready: .venv/bin/placer" >&2

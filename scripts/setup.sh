#!/usr/bin/env bash
# Sets up a dsgen checkout: .venv with torch/torchvision and the package (editable, with dev extras),
# and the PostgreSQL and Redis server binaries the test suite starts throwaway servers with.
# Idempotent: a second run only checks, in a few seconds.
#
#   bash scripts/setup.sh            # PostgreSQL is installed if missing and we may (root or sudo -n)
#   DSGEN_REQUIRE_POSTGRES=1 bash scripts/setup.sh   # ... and failing that is an error (CI)
#   PYTHON=/path/to/python3.11 bash scripts/setup.sh  # choose the interpreter for a new .venv
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
STAMP=$VENV/.dsgen-setup

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# --------------------------------------------------------------------------- Python >= 3.11
find_python() {
    local c
    for c in "${PYTHON:-}" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python3.11 \
             /root/.pyenv/versions/3.11*/bin/python3.11 python3.11 python3.12 python3.13 python3; do
        [[ -n $c ]] || continue
        c=$(command -v "$c" 2>/dev/null) || continue
        if "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

if [[ ! -x $VENV/bin/python ]]; then
    PY=$(find_python) || die "no Python >= 3.11 with venv/ensurepip found (set PYTHON=/path/to/python3.11)"
    log "creating .venv with $PY ($("$PY" -V 2>&1))"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi

# --------------------------------------------------------------------------- Python packages
# The stamp records what the last successful install was made from; a change reinstalls.
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [[ -f $STAMP && $(cat "$STAMP") == "$want" && -x $VENV/bin/dsgen ]] \
   && "$VENV/bin/python" -c 'import dsgen_core' 2>/dev/null; then
    log "python packages up to date"
else
    # torch and torchvision as PyPI builds them. PyPI has no CPU build of torchvision, and the CUDA
    # torchvision cannot load its operators next to a CPU torch (ultralytics' validator imports it),
    # so both are the CUDA builds; they run on the CPU when there is no GPU. `===` refuses the local
    # +cpu wheel that pip's find-links offer for the same version.
    log "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
    "$VENV/bin/python" -m pip install -q "torch===$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    log "installing dsgen (editable, dev extras)"
    "$VENV/bin/python" -m pip install -q -e '.[dev]' "torch===$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    fresh_install=1
fi

# Ultralytics trains and validates only if torchvision's operators load next to this torch.
"$VENV/bin/python" -c '
import torch, torchvision
from torchvision.ops import nms
nms(torch.zeros((1, 4)), torch.zeros(1), 0.5)
print(f"[setup] torch {torch.__version__}, torchvision {torchvision.__version__}: operators load")
' || die "torchvision cannot run next to this torch; remove .venv and run this again"
if [[ -n ${fresh_install:-} ]]; then echo "$want" >"$STAMP"; fi

# --------------------------------------------------------------------------- PostgreSQL server binaries
have_pg() {
    { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

if have_pg; then
    log "postgresql binaries present"
else
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else SUDO=(none); fi
    fi
    if [[ ${SUDO[0]:-} == none ]] || ! command -v apt-get >/dev/null; then
        msg="PostgreSQL (initdb, pg_ctl) is missing and cannot be installed here (needs apt-get and root or sudo); install the postgresql package: the test suite runs every registry test on PostgreSQL too"
        [[ ${DSGEN_REQUIRE_POSTGRES:-0} == 1 ]] && die "$msg"
        log "warning: $msg"
    else
        log "installing postgresql (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update -q </dev/null
        "${SUDO[@]}" apt-get install -y -q postgresql </dev/null
        have_pg || die "postgresql installed but initdb/pg_ctl still not found"
    fi
fi

# --------------------------------------------------------------------------- web app (web/dist) and Chromium
# apt-get as root or through sudo -n, as for PostgreSQL; empty when neither is possible.
apt_install() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null || return 1
        sudo=(sudo -n)
    fi
    command -v apt-get >/dev/null || return 1
    export DEBIAN_FRONTEND=noninteractive
    if [[ -z ${APT_UPDATED:-} ]]; then "${sudo[@]}" apt-get update -q </dev/null; APT_UPDATED=1; fi
    "${sudo[@]}" apt-get install -y -q "$@" </dev/null
}

# The build is redone when package-lock.json or any source file changed since the last one.
WEB=$ROOT/web
WEB_STAMP=$WEB/dist/.dsgen-build
if ! command -v npm >/dev/null; then
    log "installing nodejs and npm (apt-get)"
    apt_install nodejs npm || log "warning: npm is missing and cannot be installed here: dsgen serve will serve the API without the web app"
fi
if command -v npm >/dev/null; then
    web_want=$(cd "$WEB" && find package.json package-lock.json index.html vite.config.ts tsconfig.json src -type f -print0 \
               | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
    if [[ -f $WEB_STAMP && $(cat "$WEB_STAMP") == "$web_want" && -f $WEB/dist/index.html ]]; then
        log "web app up to date"
    else
        log "building the web app (npm ci && npm run build in web/)"
        (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent) || die "the web app failed to build"
        echo "$web_want" >"$WEB_STAMP"
    fi
fi

# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
if [[ -x /usr/bin/chromium ]]; then
    log "chromium present"
else
    log "installing chromium and chromium-driver (apt-get)"
    apt_install chromium chromium-driver || log "warning: chromium cannot be installed here (needs apt-get and root or sudo): the browser tests will be skipped"
fi

# --------------------------------------------------------------------------- Redis server
# The rate-limit and revocation tests start throwaway redis-server processes (DSGEN_REDIS_URL).
if command -v redis-server >/dev/null 2>&1; then
    log "redis-server present"
else
    log "installing redis-server (apt-get)"
    if ! apt_install redis-server || ! command -v redis-server >/dev/null 2>&1; then
        msg="redis-server is missing and cannot be installed here (needs apt-get and root or sudo); install the redis-server package: the API's rate-limit tests run on Redis too"
        [[ ${DSGEN_REQUIRE_POSTGRES:-0} == 1 || ${CI:-} == true ]] && die "$msg"
        log "warning: $msg"
    fi
fi

log "ready: $VENV"

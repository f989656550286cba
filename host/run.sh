#!/usr/bin/env bash
# bitpath quick start: installs what is missing (idempotent), then runs one job.
#   bash host/run.sh demo   # the main job end to end on the embedded default
#   bash host/run.sh test   # the test suite (what CI runs)
#   bash host/run.sh setup  # only install
# Extra arguments after the job name are passed on (to `bitpath demo` or to pytest).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BITPATH_VENV:-$ROOT/.venv}"
APT_PKGS=(gcc make python3 python3-venv python3-dev gcc-arm-none-eabi libnewlib-arm-none-eabi
          qemu-system-arm dataset-fashion-mnist)
TORCH_PIN="torch==2.13.0"

log() { printf '\033[1m[bitpath]\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else log "need root for: $*  (run as root or install sudo)"; exit 1; fi
}

ensure_apt() {
    local missing=()
    for p in "${APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "apt: installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

pip_install() {  # quiet on success; on failure, pip's output (minus local-index noise) and exit
    local log
    log="$(mktemp)"
    if ! "$VENV/bin/python" -m pip install -q "$@" >"$log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
        rm -f "$log"
        log "pip install $* failed"
        exit 1
    fi
    rm -f "$log"
}

ensure_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtual environment $VENV"
        python3 -m venv "$VENV"
    fi
    local py="$VENV/bin/python"
    if ! "$py" -c "import torch" 2>/dev/null; then
        log "pip: installing $TORCH_PIN (CPU build) first"
        pip_install "$TORCH_PIN"
    fi
    local stamp="$VENV/.bitpath-installed" want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "pip: installing bitpath (editable) and test tools"
        pip_install -e "$ROOT[test]"
        echo "$want" > "$stamp"
    fi
    # The cffi kernel module compiles on first use; build it now so failures show here.
    "$py" -c "import bitpath.ckernels as k; k.load()"
    if [ -x "$ROOT/host/pio_offline.sh" ]; then
        PATH="$VENV/bin:$PATH" bash "$ROOT/host/pio_offline.sh"
    fi
}

job="${1:-help}"; shift || true
case "$job" in
    setup) ensure_apt; ensure_python ;;
    test)
        ensure_apt; ensure_python
        cd "$ROOT"
        exec env PATH="$VENV/bin:$PATH" HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" \
            "$VENV/bin/python" -m pytest -q "$@" ;;
    demo)
        ensure_apt; ensure_python
        cd "$ROOT"
        exec env PATH="$VENV/bin:$PATH" "$VENV/bin/bitpath" demo "$@" ;;
    *) sed -n '2,7p' "$0"; exit 2 ;;
esac

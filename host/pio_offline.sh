#!/usr/bin/env bash
# Make PlatformIO build bitpath's firmware without its registry (which this machine cannot reach).
#
#   bash host/pio_offline.sh            # idempotent; ~0.5 s when already done
#   bash host/pio_offline.sh --check    # only report whether the setup is complete (exit 0/1)
#
# What it does (DESIGN.md section 5):
#  1. builds the `tool-scons` core package PlatformIO needs from PyPI's scons wheel (pip download,
#     unpack, add scons.py, package.json name tool-scons version 4.41101.0), installs it with
#     `pio pkg install -g --tool file://DIR` and marks it "owner": "platformio" in its .piopm, so
#     PlatformIO finds it and never tries to download it;
#  2. turns off PlatformIO's telemetry and update checks (both would try the network).
# The development platform itself needs no install step: platformio.ini references the local
# platform at firmware/pio_platform (symlink://), which uses the system arm-none-eabi-gcc.
#
# Uses the `pio` and `python` found on PATH (host/run.sh puts the venv's bin first) and honours
# PLATFORMIO_CORE_DIR. Nothing here downloads from PlatformIO's registry.
set -euo pipefail

SCONS_VERSION="4.11.1"      # the scons release behind PlatformIO's tool-scons 4.41101.0
PIO_SCONS_VERSION="4.41101.0"

log() { printf '\033[1m[pio-offline]\033[0m %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v pio >/dev/null || die "pio not found on PATH (pip install platformio, or run host/run.sh setup)"
PY="$(command -v python || command -v python3)" || die "python not found on PATH"
# pio's own interpreter: the one whose site-packages hold the platformio module.
PIO_PY="$(head -1 "$(command -v pio)" | sed -n 's/^#!//p')"
[ -x "${PIO_PY:-}" ] || PIO_PY="$PY"

CORE_DIR="${PLATFORMIO_CORE_DIR:-$HOME/.platformio}"
PKG_DIR="$CORE_DIR/packages/tool-scons"

scons_ok() {
    # Installed, the expected version, and owned by "platformio" (what PlatformIO looks up).
    [ -f "$PKG_DIR/scons.py" ] && [ -f "$PKG_DIR/.piopm" ] || return 1
    "$PIO_PY" - "$PKG_DIR/.piopm" "$PIO_SCONS_VERSION" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
ok = meta.get("version") == sys.argv[2] and meta.get("spec", {}).get("owner") == "platformio" \
    and meta.get("spec", {}).get("name") == "tool-scons"
sys.exit(0 if ok else 1)
EOF
}

settings_ok() {
    "$PIO_PY" - "$CORE_DIR/appstate.json" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1])).get("settings", {})
except (OSError, ValueError):
    sys.exit(1)
sys.exit(0 if s.get("enable_telemetry") is False and s.get("check_platformio_interval", 0) >= 3650 else 1)
EOF
}

if [ "${1:-}" = "--check" ]; then
    if scons_ok && settings_ok; then log "ready ($PKG_DIR)"; exit 0; fi
    log "not set up (run: bash host/pio_offline.sh)"; exit 1
fi

if ! settings_ok; then
    # Telemetry and the update check both call home; offline they only cost time.
    pio settings set enable_telemetry no >/dev/null
    pio settings set check_platformio_interval 3650 >/dev/null
fi

if scons_ok; then
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "building tool-scons $PIO_SCONS_VERSION from PyPI's scons==$SCONS_VERSION wheel"
if ! "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$work/dl" "scons==$SCONS_VERSION" \
        2> "$work/pip.log"; then
    cat "$work/pip.log" >&2
    die "pip could not download scons==$SCONS_VERSION (PyPI or a local index must be reachable)"
fi
wheel="$(ls "$work"/dl/scons-*.whl 2>/dev/null | head -1)"
[ -n "$wheel" ] || die "no scons wheel in $work/dl"
mkdir -p "$work/tool-scons"
"$PY" -m zipfile -e "$wheel" "$work/tool-scons"
[ -d "$work/tool-scons/SCons" ] || die "the scons wheel has no SCons/ package"

cat > "$work/tool-scons/scons.py" <<'EOF'
# Entry point PlatformIO runs (`python scons.py ...`): SCons from PyPI's wheel, unpacked here.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from SCons.Script.Main import main  # noqa: E402

if __name__ == "__main__":
    main()
EOF
cat > "$work/tool-scons/package.json" <<EOF
{
  "name": "tool-scons",
  "version": "$PIO_SCONS_VERSION",
  "description": "SCons $SCONS_VERSION from PyPI, packaged offline by bitpath host/pio_offline.sh",
  "keywords": ["build tool"],
  "license": "MIT",
  "system": "*"
}
EOF

# A stale or half-installed copy would make `pio pkg install` refuse or keep the old one.
rm -rf "$PKG_DIR"
pio pkg install -g --tool "file://$work/tool-scons" >/dev/null \
    || die "pio pkg install -g --tool file://$work/tool-scons failed"

"$PIO_PY" - "$PKG_DIR/.piopm" <<'EOF'
import json, sys
path = sys.argv[1]
meta = json.load(open(path))
meta["spec"] = {"owner": "platformio", "id": None, "name": "tool-scons", "requirements": None, "uri": None}
json.dump(meta, open(path, "w"))
EOF

scons_ok || die "tool-scons installed but not recognised ($PKG_DIR/.piopm)"
log "tool-scons ready in $PKG_DIR"

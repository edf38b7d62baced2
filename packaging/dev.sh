#!/usr/bin/env bash
# discviewer developer entry point.
#   bash packaging/dev.sh demo   set up (Debian packages + .venv) and open the app on the demo study
#   bash packaging/dev.sh test   set up and run the whole test suite (GUI tests under Xvfb)
#   bash packaging/dev.sh setup  set up only
# Works on a fresh Debian machine as root (or with sudo). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

# Debian packages the app and the tests need: X server for GUI tests, GL/EGL for VTK, xcb libs for Qt,
# Orthanc (+ its DICOMweb plugin) for the PACS tests.
APT_PACKAGES="xvfb xauth libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri libglx-mesa0 libosmesa6 \
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 \
libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxcb-xinerama0 libfontconfig1 \
fonts-dejavu-core libdbus-1-3 libxrender1 libxi6 libsm6 libice6 libglib2.0-0 \
orthanc orthanc-dicomweb \
desktop-file-utils shared-mime-info"  # orthanc: a real PACS for tests/core/test_pacs.py (started on loopback by
# the tests); desktop-file-utils, shared-mime-info: tests/test_packaging.py validates the desktop entry and MIME type

setup_apt() {
    command -v dpkg-query >/dev/null 2>&1 || { echo "not a Debian system: install the X/GL libraries yourself" >&2; return 0; }
    local missing=""
    for p in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    local SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "== installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
}

setup_venv() {
    local stamp="$VENV/.discviewer-installed"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "== creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== installing discviewer and its dependencies into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e ".[test,bench]"
        touch "$stamp"
    fi
}

setup() { setup_apt; setup_venv; }

cmd=${1:-demo}
shift || true
case "$cmd" in
    setup) setup ;;
    demo)
        setup
        if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
            echo "no display: starting the app under Xvfb (set DISPLAY to see it)"
            exec xvfb-run -a -s "-screen 0 1600x1000x24" "$VENV/bin/discviewer" --demo "$@"
        fi
        exec "$VENV/bin/discviewer" --demo "$@"
        ;;
    test)
        setup
        export PYQTGRAPH_QT_LIB=PySide6
        exec xvfb-run -a -s "-screen 0 1600x1000x24" "$VENV/bin/python" -m pytest "$@"
        ;;
    *) echo "usage: $0 demo|test|setup [args]" >&2; exit 2 ;;
esac

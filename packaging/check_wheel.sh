#!/usr/bin/env bash
# Build the wheel and sdist, install the wheel into a fresh venv and check that the installed app runs.
#
#   bash packaging/check_wheel.sh [--no-gui] [--keep]
#
# 1. `python -m build` → dist/discviewer-<version>-py3-none-any.whl and dist/discviewer-<version>.tar.gz
#    (`build` is installed into .venv if missing; the build itself runs in an isolated environment);
# 2. a fresh venv in a temporary folder (base interpreter: $PYTHON, default python3), `pip install dist/*.whl`
#    (dependencies from the package index, or pip's cache);
# 3. from a folder outside the checkout: `discviewer --version`, the resources found inside the installed
#    package (hanging protocols, icons, desktop entry), `discviewer demo-data` (small phantom),
#    `discviewer scan --json` on it, and — when xvfb-run is present and not --no-gui — the GUI smoke test on
#    that study (screenshot written, exit 0);
# 4. the sdist installed over it (`pip install --no-deps --force-reinstall dist/*.tar.gz`): version and
#    resources again.
# Exits non-zero at the first failure. --keep leaves the temporary folder (venv, study, screenshot).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
DEV_PY="$ROOT/.venv/bin/python"
[ -x "$DEV_PY" ] || DEV_PY=$PY
gui=1
keep=0
for a in "$@"; do
    case "$a" in
        --no-gui) gui=0 ;;
        --keep) keep=1 ;;
        *) echo "usage: $0 [--no-gui] [--keep]" >&2; exit 2 ;;
    esac
done
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }

version=$("$DEV_PY" -c "import re,sys; print(re.search(r'__version__\s*=\s*\"([^\"]+)\"', open('discviewer/__init__.py').read()).group(1))")
echo "== building the wheel and sdist of discviewer $version"
"$DEV_PY" -c "import build" 2>/dev/null || "$DEV_PY" -m pip install -q build
mkdir -p dist
rm -f "dist/discviewer-$version-py3-none-any.whl" "dist/discviewer-$version.tar.gz"
"$DEV_PY" -m build --outdir dist . > dist/build.log 2>&1 || { tail -30 dist/build.log; fail "python -m build (log: dist/build.log)"; }
whl="dist/discviewer-$version-py3-none-any.whl"
sdist="dist/discviewer-$version.tar.gz"
[ -s "$whl" ] && [ -s "$sdist" ] || fail "no $whl / $sdist after the build"
ls -l "$whl" "$sdist"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/discviewer-wheel.XXXXXX")
if [ "$keep" = 1 ]; then echo "(keeping $tmp)"; else trap 'rm -rf "$tmp"' EXIT; fi
echo "== fresh venv in $tmp/venv ($("$PY" --version))"
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v -i "location.*ignored" || true
t0=$(date +%s)
"$tmp/venv/bin/python" -m pip install -q "$ROOT/$whl" > "$tmp/pip.log" 2>&1 || { tail -30 "$tmp/pip.log"; fail "pip install $whl"; }
echo "installed with its dependencies in $(( $(date +%s) - t0 )) s"

# run everything from a folder outside the checkout, with no override, so only the installed package is seen
cd "$tmp"
unset DISCVIEWER_RESOURCES PYTHONPATH
export DISCVIEWER_CACHE="$tmp/cache" DISCVIEWER_LOG_DIR="$tmp/logs" DISCVIEWER_SETTINGS="$tmp/settings.ini" \
       XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config"
dv="$tmp/venv/bin/discviewer"

check_installed() {  # the version and the resources inside site-packages
    echo "-- discviewer --version"
    out=$("$dv" --version) || fail "discviewer --version exited $?"
    echo "$out"
    [ "$out" = "discviewer $version" ] || fail "discviewer --version printed '$out'"
    echo "-- resources of the installed package"
    "$tmp/venv/bin/python" - "$tmp/venv" <<'EOF' || fail "resources not found in the installed package"
import sys
from pathlib import Path
from discviewer.resources import resources_dir
from discviewer.hanging import builtin_protocols
res = resources_dir().resolve()
venv = Path(sys.argv[1]).resolve()
assert venv in res.parents, f"resources from {res}, not from the installed package"
names = [p.name for p in builtin_protocols()]
assert names, "no hanging protocols"
for f in ["discviewer.svg", "discviewer.desktop", "discviewer-mime.xml"] + \
         [f"icons/discviewer-{n}.png" for n in (16, 32, 48, 64, 128, 256, 512)]:
    assert (res / f).is_file(), f"{f} missing from {res}"
print(f"{res}: {len(names)} hanging protocols, icons, desktop entry, MIME type")
EOF
}

echo "== the installed wheel"
check_installed
echo "-- discviewer demo-data (small phantom)"
"$dv" demo-data "$tmp/study" --size small > /dev/null || fail "discviewer demo-data exited $?"
echo "-- discviewer scan --json"
"$dv" scan "$tmp/study" --json > "$tmp/scan.json" || fail "discviewer scan exited $?"
"$tmp/venv/bin/python" - "$tmp/scan.json" <<'EOF' || fail "discviewer scan found no series"
import json, sys
d = json.load(open(sys.argv[1]))
n = len(d["series"])
assert n > 0, "no series in the scan"
print(f"{n} series found")
EOF
if [ "$gui" = 1 ] && command -v xvfb-run >/dev/null 2>&1; then
    echo "-- GUI smoke test (xvfb-run, DISCVIEWER_SCREENSHOT) on that study"
    shot="$tmp/wheel-smoke.png"
    DISCVIEWER_SCREENSHOT="$shot" DISCVIEWER_ACKNOWLEDGE_RESEARCH_USE=1 PYQTGRAPH_QT_LIB=PySide6 \
        timeout 300 xvfb-run -a -s "-screen 0 1600x1000x24" "$dv" "$tmp/study" > "$tmp/gui.log" 2>&1 \
        || { tail -30 "$tmp/gui.log"; fail "GUI smoke test exited $?"; }
    [ -s "$shot" ] || fail "GUI smoke test wrote no screenshot"
    echo "screenshot $(stat -c %s "$shot") bytes"
    [ "$keep" = 1 ] || cp "$shot" "$ROOT/dist/wheel-smoke.png"
elif [ "$gui" = 1 ]; then
    echo "-- GUI smoke test skipped: no xvfb-run"
fi

echo "== the sdist, installed over it"
"$tmp/venv/bin/python" -m pip install -q --no-deps --force-reinstall "$ROOT/$sdist" > "$tmp/pip-sdist.log" 2>&1 \
    || { tail -30 "$tmp/pip-sdist.log"; fail "pip install $sdist"; }
check_installed
echo "check_wheel: OK — $whl and $sdist install into a fresh venv and run"

#!/usr/bin/env bash
# Install discviewer's desktop entry, icons and project file type (.dvw) for the current user (Linux, freedesktop).
#
#   bash packaging/install_desktop.sh [--exec COMMAND] [--resources DIR] [--uninstall]
#
# Puts into ${XDG_DATA_HOME:-~/.local/share}:
#   applications/discviewer.desktop            (Exec= the command that starts discviewer, absolute path)
#   mime/packages/discviewer-mime.xml          (application/x-discviewer-project: *.dvw, HDF5 magic)
#   icons/hicolor/NxN/apps/discviewer.png      (16 … 512) and icons/hicolor/scalable/apps/discviewer.svg
# then runs, where present: update-mime-database, update-desktop-database, gtk-update-icon-cache and
# `xdg-mime default discviewer.desktop application/x-discviewer-project` (double-clicking a .dvw opens discviewer).
#
# COMMAND defaults to: the bundle's executable when this script sits in a PyInstaller bundle folder
# (dist/discviewer/), else `discviewer` found on PATH (e.g. an activated venv). Give --exec for a venv
# that is not on PATH:  bash packaging/install_desktop.sh --exec /opt/discviewer-venv/bin/discviewer
# The resources come from the checkout (resources/), the bundle (_internal/discviewer/_resources) or --resources.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec_cmd=""
res=""
uninstall=0
while [ $# -gt 0 ]; do
    case "$1" in
        --exec) exec_cmd=$2; shift 2 ;;
        --resources) res=$2; shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "install_desktop.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

data=${XDG_DATA_HOME:-$HOME/.local/share}
app_file="$data/applications/discviewer.desktop"
mime_file="$data/mime/packages/discviewer-mime.xml"
SIZES="16 32 48 64 128 256 512"

refresh() {  # the desktop's caches; each tool is optional
    if command -v update-mime-database >/dev/null 2>&1; then update-mime-database "$data/mime" >/dev/null; fi
    if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database -q "$data/applications" || true; fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$data/icons/hicolor/index.theme" ]; then
        gtk-update-icon-cache -q -f -t "$data/icons/hicolor" || true
    fi
}

if [ "$uninstall" = 1 ]; then
    rm -f "$app_file" "$mime_file" "$data/icons/hicolor/scalable/apps/discviewer.svg"
    for n in $SIZES; do rm -f "$data/icons/hicolor/${n}x${n}/apps/discviewer.png"; done
    mkdir -p "$data/mime/packages" "$data/applications"
    refresh
    echo "discviewer desktop entry, icons and file type removed from $data"
    exit 0
fi

if [ -z "$res" ]; then
    for d in "${DISCVIEWER_RESOURCES:-}" "$here/../resources" "$here/_internal/discviewer/_resources" \
             "$here/discviewer/_resources"; do
        if [ -n "$d" ] && [ -f "$d/discviewer.desktop" ]; then res=$d; break; fi
    done
fi
if [ -z "$res" ] || [ ! -f "$res/discviewer.desktop" ]; then
    echo "install_desktop.sh: discviewer resources (discviewer.desktop, icons) not found; give --resources DIR" >&2
    exit 1
fi

if [ -z "$exec_cmd" ]; then
    if [ -x "$here/discviewer" ] && [ -f "$here/discviewer" ]; then
        exec_cmd="$here/discviewer"                           # a PyInstaller bundle folder
    elif command -v discviewer >/dev/null 2>&1; then
        exec_cmd=$(command -v discviewer)
    else
        echo "install_desktop.sh: no 'discviewer' command on PATH; give --exec /path/to/discviewer" >&2
        exit 1
    fi
fi
case "$exec_cmd" in /*) ;; *) exec_cmd="$(cd "$(dirname "$exec_cmd")" && pwd)/$(basename "$exec_cmd")" ;; esac
[ -x "$exec_cmd" ] || { echo "install_desktop.sh: $exec_cmd is not an executable" >&2; exit 1; }
# Desktop Entry spec: an Exec program path with spaces or reserved characters goes in double quotes, with
# " ` $ \ escaped inside; then every backslash of the value is doubled (string escaping).
case "$exec_cmd" in
    *[[:space:]\'\"\`\$\\\>\<\~\|\&\;\*\?\#\(\)]*)
        exec_field="\"$(printf '%s' "$exec_cmd" | sed -e 's/[\\"`$]/\\&/g')\"" ;;
    *) exec_field=$exec_cmd ;;
esac
exec_field=${exec_field//\\/\\\\}
try_field=${exec_cmd//\\/\\\\}

mkdir -p "$data/applications" "$data/mime/packages" "$data/icons/hicolor/scalable/apps"
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        Exec=*) printf 'Exec=%s %%F\n' "$exec_field" ;;
        TryExec=*) printf 'TryExec=%s\n' "$try_field" ;;
        *) printf '%s\n' "$line" ;;
    esac
done < "$res/discviewer.desktop" > "$app_file.tmp"
mv "$app_file.tmp" "$app_file"
install -m 644 "$res/discviewer-mime.xml" "$mime_file"
install -m 644 "$res/discviewer.svg" "$data/icons/hicolor/scalable/apps/discviewer.svg"
for n in $SIZES; do
    if [ -f "$res/icons/discviewer-$n.png" ]; then
        mkdir -p "$data/icons/hicolor/${n}x${n}/apps"
        install -m 644 "$res/icons/discviewer-$n.png" "$data/icons/hicolor/${n}x${n}/apps/discviewer.png"
    fi
done
refresh
if command -v xdg-mime >/dev/null 2>&1; then
    xdg-mime default discviewer.desktop application/x-discviewer-project || true
fi
echo "discviewer desktop entry installed in $data (Exec: $exec_cmd); .dvw files open in discviewer"

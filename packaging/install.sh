#!/bin/sh
# Installs sealrun (and sealsdk, when it is there) on a system without
# dpkg: the binaries, the package type, the desktop entry and the icons.
#
#   install.sh [--prefix DIR] [--bin-dir DIR] [--uninstall]
#
# --prefix   where to install [default: /usr/local, or ~/.local when not root]
# --bin-dir  the built binaries [default: target/release next to this script's folder]
# --uninstall  remove what an install with the same --prefix put there
#
# The installed files are listed in PREFIX/share/sealrun/installed-files,
# which --uninstall reads. Exit codes: 0 done, 2 bad arguments, 3 a binary
# is missing, 4 a file could not be written or removed.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
bin_dir="$here/../target/release"
action=install
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$prefix" in
    /*) ;;
    *) echo "install.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;;
esac
list="$prefix/share/sealrun/installed-files"

refresh() {
    if command -v update-mime-database >/dev/null 2>&1 && [ -d "$prefix/share/mime/packages" ]; then
        update-mime-database "$prefix/share/mime" || true
    fi
    if command -v update-desktop-database >/dev/null 2>&1 && [ -d "$prefix/share/applications" ]; then
        update-desktop-database -q "$prefix/share/applications" || true
    fi
}

if [ "$action" = uninstall ]; then
    if [ ! -f "$list" ]; then
        echo "install.sh: nothing to uninstall: $list does not exist (was --prefix the same?)" >&2
        exit 4
    fi
    while IFS= read -r f; do
        rm -f "$prefix/$f" || exit 4
        # Folders this install made, once empty.
        d="$(dirname "$prefix/$f")"
        while [ "$d" != "$prefix" ] && rmdir "$d" 2>/dev/null; do d="$(dirname "$d")"; done
    done < "$list"
    rm -f "$list"
    rmdir "$prefix/share/sealrun" 2>/dev/null || true
    # The databases derive from the files: with no type left, they go too.
    if [ -d "$prefix/share/mime" ] && [ -z "$(ls -A "$prefix/share/mime/packages" 2>/dev/null)" ]; then
        rm -rf "$prefix/share/mime"
    fi
    refresh
    if [ -d "$prefix/share/applications" ] && [ -z "$(find "$prefix/share/applications" -name '*.desktop' | head -n 1)" ]; then
        rm -f "$prefix/share/applications/mimeinfo.cache"
        rmdir "$prefix/share/applications" 2>/dev/null || true
    fi
    for d in "$prefix/share" "$prefix/bin"; do rmdir "$d" 2>/dev/null || true; done
    echo "removed sealrun from $prefix"
    exit 0
fi

if [ ! -x "$bin_dir/sealrun" ]; then
    echo "install.sh: $bin_dir/sealrun is missing: build it (cargo build --release --locked) or pass --bin-dir" >&2
    exit 3
fi
mkdir -p "$prefix/share/sealrun" || exit 4
: > "$list.new"
# put SOURCE RELATIVE-DEST MODE
put() {
    mkdir -p "$(dirname "$prefix/$2")" && cp "$1" "$prefix/$2.new" && chmod "$3" "$prefix/$2.new" \
        && mv "$prefix/$2.new" "$prefix/$2" || exit 4
    echo "$2" >> "$list.new"
}
put "$bin_dir/sealrun" bin/sealrun 0755
if [ -x "$bin_dir/sealsdk" ]; then put "$bin_dir/sealsdk" bin/sealsdk 0755; fi
# The handler names the launcher by its full path: PREFIX/bin need not be on PATH.
sed "s|^Exec=sealrun |Exec=$prefix/bin/sealrun |" "$here/linux/sealrun.desktop" > "$prefix/share/sealrun/sealrun.desktop.tmp"
put "$prefix/share/sealrun/sealrun.desktop.tmp" share/applications/sealrun.desktop 0644
rm -f "$prefix/share/sealrun/sealrun.desktop.tmp"
put "$here/linux/sealrun.xml" share/mime/packages/sealrun.xml 0644
put "$here/icons/sealrun.svg" share/icons/hicolor/scalable/apps/sealrun.svg 0644
put "$here/icons/sealrun.svg" share/icons/hicolor/scalable/mimetypes/application-x-sealrun-package.svg 0644
for png in "$here"/icons/sealrun-*.png; do
    size="$(basename "$png" .png)"
    size="${size#sealrun-}"
    put "$png" "share/icons/hicolor/${size}x${size}/apps/sealrun.png" 0644
    put "$png" "share/icons/hicolor/${size}x${size}/mimetypes/application-x-sealrun-package.png" 0644
done
mv "$list.new" "$list"
refresh
echo "installed sealrun in $prefix"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: $prefix/bin is not on your PATH; add it to run sealrun by name" ;;
esac

#!/usr/bin/env bash
# tree-manifest.sh DIR: every entry below DIR as sorted lines
#   mode <st_mode in hex> <path>        (type and permissions, every entry)
#   sha256 <digest> <path>              (regular files)
#   link <path> -> <target>             (symlinks)
# with the commands GNU and busybox have in common: made on the host from an
# extracted tarball, compared in a busybox guest with a mount.
set -euo pipefail
cd "$1"
{
    find . -exec stat -c 'mode %f %n' {} +
    find . -type f -exec sha256sum {} + | sed -E 's/^([0-9a-f]+)  /sha256 \1 /'
    find . -type l | while IFS= read -r l; do echo "link $l -> $(readlink "$l")"; done
} | LC_ALL=C sort

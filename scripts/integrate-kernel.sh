#!/usr/bin/env bash
# Put kheaders_blk into a kernel source tree as a normal Kconfig option,
# CONFIG_KHEADERS_BLK (y: built into vmlinux, /dev/kheaders0 from boot;
# m: an in-tree module):
#
#   scripts/integrate-kernel.sh KERNEL_SOURCE_TREE
#
# Creates drivers/block/kheaders_blk/ with copies of kmod/ (Kconfig, Kbuild,
# the Rust and C sources, pack-image.sh: the driver has one source, kmod/;
# run this again after changing it), sources its Kconfig from
# drivers/block/Kconfig and adds it to drivers/block/Makefile. A second run
# changes nothing (no file is rewritten, so nothing rebuilds); a run after
# kmod/ changed updates the copies. Files are replaced (new file, rename),
# never edited in place, so a tree that shares inodes with another (cp -al)
# leaves the other untouched. Tested on Linux 6.12 and 7.3 (Debian's
# linux-source-6.12 and linux-source-7.3); kmod/Kbuild picks the driver's
# side of the Rust API changes by the tree's version.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# == 1 ]] || die "usage: scripts/integrate-kernel.sh KERNEL_SOURCE_TREE"
tree="${1%/}"
for f in Makefile Kbuild drivers/block/Kconfig drivers/block/Makefile; do
    [[ -f "$tree/$f" ]] || die "$tree is not a kernel source tree (no $f)"
done
version="$(make -s -C "$tree" kernelversion 2>/dev/null)" ||
    die "$tree: 'make kernelversion' failed"
[[ "$version" == 6.12.* || "$version" == 7.3.* ]] ||
    echo "warning: $tree is Linux $version; kheaders_blk is written for and tested on 6.12 and 7.3" >&2

dir="$tree/drivers/block/kheaders_blk"
changed=0

# install_file CONTENT_FILE DEST: DEST gets CONTENT_FILE's bytes through a
# new file and a rename, and only if they differ.
install_file() {
    if [[ -f "$2" && ! -L "$2" ]] && cmp -s "$1" "$2"; then
        return 0
    fi
    cp "$1" "$2.khb-tmp"
    chmod 644 "$2.khb-tmp"
    mv -f "$2.khb-tmp" "$2"
    echo "  wrote ${2#"$tree/"}"
    changed=1
}

# add_line FILE LINE [BEFORE]: FILE gets LINE (after a comment saying where
# it comes from), before the last line equal to BEFORE if there is one,
# else at the end. Nothing happens if FILE already has LINE.
add_line() {
    local file="$1" line="$2" before="${3:-}" tmp
    grep -qxF "$line" "$file" && return 0
    tmp="$(mktemp)"
    awk -v line="$line" -v before="$before" '
        { lines[NR] = $0 }
        before != "" && $0 == before { at = NR }
        END {
            for (i = 1; i <= NR; i++) {
                if (i == at) print "# kheaders-blk (scripts/integrate-kernel.sh)\n" line "\n"
                print lines[i]
            }
            if (!at) print "\n# kheaders-blk (scripts/integrate-kernel.sh)\n" line
        }' "$file" >"$tmp"
    install_file "$tmp" "$file"
    rm -f "$tmp"
}

mkdir -p "$dir"
declare -A wanted=()
while IFS= read -r f; do
    install_file "$f" "$dir/${f##*/}"
    wanted[${f##*/}]=1
done < <(kmod_sources)
# Sources that kmod/ no longer has (left from an older integration).
while IFS= read -r f; do
    [[ -z "${wanted[${f##*/}]:-}" ]] || continue
    rm -f "$f"
    echo "  removed ${f#"$tree/"}"
    changed=1
done < <(kmod_sources "$dir")

add_line "$tree/drivers/block/Kconfig" 'source "drivers/block/kheaders_blk/Kconfig"' 'endif # BLK_DEV'
add_line "$tree/drivers/block/Makefile" 'obj-$(CONFIG_KHEADERS_BLK)	+= kheaders_blk/'

if [[ $changed == 0 ]]; then
    say "kheaders_blk is already integrated in $tree (Linux $version); nothing changed"
else
    say "kheaders_blk integrated in $tree (Linux $version): set CONFIG_KHEADERS_BLK=y (or m) and build with kheaders-image on PATH or KHEADERS_TOOL=/path/to/kheaders-image"
fi

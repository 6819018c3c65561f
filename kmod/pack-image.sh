#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Pack the headers of the kernel being built into IMAGE, for Kbuild (out of
# tree and in a kernel tree alike).
#
#   pack-image.sh IMAGE TOOL ARCH OBJTREE [SRCTREE] -- [PACK FLAGS...]
#
# As upstream's kernel/gen_kheaders.sh does, nothing is packed when no
# header's name, type, size or time changed since the last pack (IMAGE.stamp
# holds a hash of that listing, of the tool and of these arguments, and one
# of the image, which another make run may have replaced). When
# something did, the image is packed again and replaced only if its bytes
# differ: the pack is reproducible, so a touched but unchanged header does
# not relink the kernel or module.
set -eu

out=$1 tool=$2 arch=$3 objtree=$4
shift 4
srctree=
if [ "${1:-}" != -- ]; then
	srctree=$1
	shift
fi
[ "${1:-}" = -- ] && shift

if [ "${1:-} ${2:-}" = "--format none" ]; then
	echo "$out: this kernel can mount neither a squashfs-xz image (CONFIG_SQUASHFS_XZ) nor an EROFS one (CONFIG_EROFS_FS_ZIP): enable one of them, or pass KHEADERS_FORMAT=squashfs|erofs to make to pack one anyway" >&2
	exit 1
fi

if ! bin=$(command -v "$tool"); then
	echo "$out: kheaders-image ($tool) not found: build it from kheaders-blk with 'cargo install --path host-tool' and put it on PATH, or pass KHEADERS_TOOL=/path/to/kheaders-image to make" >&2
	exit 1
fi

# The inputs of a pack: upstream's header set, as its md5 check lists it
# (utsversion.h is generated after the headers are packed and left out).
stamp=$(
	echo "args $arch $objtree $srctree $*"
	echo "env ${KBUILD_BUILD_TIMESTAMP-} ${SOURCE_DATE_EPOCH-}"
	ls -lL --time-style=+%s.%N "$bin" "$0"
	for tree in $srctree $objtree; do
		for d in "$tree/include" "$tree/arch/$arch/include"; do
			[ -d "$d" ] || continue
			find "$d" -name '*.h' ! -path '*/include/generated/utsversion.h' \
				-printf '%p %y %s %T@ %l\n' | LC_ALL=C sort
		done
	done | md5sum
)
if [ -f "$out" ] && [ -f "$out.stamp" ] &&
	[ "$(cat "$out.stamp")" = "$stamp $(md5sum <"$out")" ]; then
	exit 0
fi

echo "  GEN     $out"
tmp="$out.tmp"
trap 'rm -f "$tmp"' EXIT
"$bin" pack -q --arch "$arch" ${srctree:+--source "$srctree"} "$@" "$objtree" -o "$tmp"
if [ -f "$out" ] && cmp -s "$out" "$tmp"; then
	rm -f "$tmp"
else
	mv -f "$tmp" "$out"
fi
echo "$stamp $(md5sum <"$out")" >"$out.stamp"

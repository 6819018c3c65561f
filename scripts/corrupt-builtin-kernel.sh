#!/usr/bin/env bash
# A built-in kernel variant relinked around a corrupted headers image (one
# byte of the squashfs data flipped, so the CRC-32 no longer matches), for
# the test that such a kernel boots, logs one clear line and adds no
# /dev/kheaders0. An incremental build in an overlay over the cached build
# (scripts/kernel-overlay.sh): make KHEADERS_IMAGE=<corrupted> recompiles the
# driver and relinks vmlinux. Cached beside the variant's build.
#
#   scripts/corrupt-builtin-kernel.sh VARIANT      (prints the bzImage's path)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# == 1 ]] || die "usage: scripts/corrupt-builtin-kernel.sh VARIANT"
variant="$1"
build="$("$REPO_ROOT/scripts/build-kernel.sh" "$variant")"
grep -q '^CONFIG_KHEADERS_BLK=y' "$build/.config" || die "$variant does not have kheaders_blk built in"
recipe="$(cat "${BASH_SOURCE[0]}" "$REPO_ROOT/scripts/kernel-overlay.sh" | sha256sum | cut -c1-12)"
out="${build%/build}/corrupt-image-$recipe"
if [[ -f "$out/complete" ]]; then
    say "reusing the cached $variant kernel with a corrupted image"
    echo "$out/bzImage"
    exit 0
fi
rm -rf "${build%/build}"/corrupt-image-*
mkdir -p "$out"
corrupt_image "$build/drivers/block/kheaders_blk/kheaders.img" "$out/kheaders.img"
say "relinking $variant around a corrupted image"
start=$SECONDS
"$REPO_ROOT/scripts/kernel-overlay.sh" "$variant" "$out/overlay" -- \
    "kmake -j\"\$JOBS\" \"\${make_args[@]}\" KHEADERS_IMAGE='$out/kheaders.img' bzImage" >&2
cp "$out/overlay/upper/arch/x86/boot/bzImage" "$out/bzImage"
rm -rf "$out/overlay"
touch "$out/complete"
say "done in $((SECONDS - start)) s"
echo "$out/bzImage"

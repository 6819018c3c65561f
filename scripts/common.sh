# Shared settings for the scripts in this directory. Source it; do not run it.
# shellcheck shell=bash

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Everything generated (kernel builds, the virtme-ng venv, VM scratch) lives
# here, outside the repository, so a fresh clone reuses it.
KHB_CACHE="${KHB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kheaders-blk}"

# Versions we pin. Changing one changes the kernel cache key where relevant.
BINDGEN_VERSION=0.73.2
VIRTME_NG_VERSION=1.42
LINUX_SOURCE_PKG=linux-source-6.12
LINUX_SOURCE_TARBALL=/usr/src/linux-source-6.12.tar.xz

case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
esac
export PATH

JOBS="${JOBS:-$(nproc)}"

say()  { printf '==> %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# build_module_with_image KERNEL_TREE DIR IMAGE: kheaders_blk.ko built around
# IMAGE from a copy of the module sources in DIR (-> DIR/kmod/kheaders_blk.ko),
# leaving the repository's own kmod/ build alone.
build_module_with_image() {
    local ktree="$1" dir="$2" image="$3"
    mkdir -p "$dir/kmod"
    cp "$REPO_ROOT/Kbuild" "$dir/"
    cp "$REPO_ROOT/kmod/Kbuild" "$REPO_ROOT"/kmod/*.rs "$REPO_ROOT"/kmod/*.c "$dir/kmod/"
    make -C "$ktree" -s M="$dir" KHEADERS_IMAGE="$image" modules
}

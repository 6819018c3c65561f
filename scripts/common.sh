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
# Linux 7.3 (the 7.3 test kernels): Debian's linux-source-7.3 from
# trixie-backports, which this machine's suites do not have. setup.sh
# downloads it with a private sources list and unpacks it (dpkg-deb -x) into
# $LINUX73_ROOT, nothing installed; ./version holds the package's version.
LINUX73_PKG=linux-source-7.3
LINUX73_SUITE=trixie-backports
LINUX73_ROOT="$KHB_CACHE/debian/$LINUX73_PKG"
# 7.3 wants libclang >= 17 for bindgen (scripts/min-tool-version.sh llvm);
# bookworm's libclang-dev is 14. Bookworm's libclang 19, unpacked by setup.sh
# into $LIBCLANG19_ROOT (not installed: an installed one would be what
# bindgen picks for the 6.12 kernels too, the highest version it finds);
# $LIBCLANG19_ROOT/bin/bindgen runs bindgen with it.
LIBCLANG19_PACKAGES=(libclang1-19 libllvm19 libclang-common-19-dev)
LIBCLANG19_ROOT="$KHB_CACHE/debian/libclang-19"
# clang for the kernel variants that need it (Debian 12's, as libclang-dev).
LLVM_VERSION=14
# Static arm64 busybox and bash (Debian's), unpacked by setup.sh: the arm64
# test VM's userland.
ARM64_USERLAND="$KHB_CACHE/arm64-userland"

case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
esac
export PATH

JOBS="${JOBS:-$(nproc)}"

say()  { printf '==> %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

source "$REPO_ROOT/scripts/kernel-cpp-flags.sh"

# drop_caches: write back, then drop the page cache, dentries and inodes
# (benchmarks' cold runs).
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# bench_tree_and_tool [TREE]: for the benchmarks, KTREE, the kernel build
# tree whose headers they use (TREE, holding upstream's
# kernel/kheaders_data.tar.xz; default the x86 test kernel), and TOOL, the
# release build of kheaders-image.
bench_tree_and_tool() {
    if [[ -n "${1:-}" ]]; then
        [[ -f "$1/kernel/kheaders_data.tar.xz" ]] || die "--tree $1: no kernel/kheaders_data.tar.xz (build it with IKHEADERS)"
        KTREE="$1"
    else
        KTREE="$("$REPO_ROOT/scripts/build-kernel.sh")"
    fi
    cargo build --release --locked --quiet
    TOOL="$REPO_ROOT/target/release/kheaders-image"
}

# plot_python: the benchmarks' Python with matplotlib (for their plots),
# installed into the setup's venv once.
plot_python() {
    if ! "$KHB_CACHE/venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        say "pip: installing matplotlib into $KHB_CACHE/venv (for the plots)"
        "$KHB_CACHE/venv/bin/pip" install --quiet --disable-pip-version-check "matplotlib==3.9.2" >&2 ||
            die "pip could not install matplotlib"
    fi
    echo "$KHB_CACHE/venv/bin/python"
}

# kernel_source SERIES: for a variant's kernel series (scripts/build-kernel.sh),
# sets source_pkg, source_tarball, source_version (the package's version,
# as a path component) and source_path (a directory to put first on PATH
# for that kernel's build, or empty).
kernel_source() {
    source_path=""
    case "$1" in
        6.12)
            source_pkg="$LINUX_SOURCE_PKG" source_tarball="$LINUX_SOURCE_TARBALL"
            source_version="$(dpkg-query -W -f='${Version}' "$LINUX_SOURCE_PKG" 2>/dev/null ||
                              sha256sum "$LINUX_SOURCE_TARBALL" | cut -c1-16)" ;;
        7.3)
            source_pkg="$LINUX73_PKG" source_tarball="$LINUX73_ROOT/usr/src/$LINUX73_PKG.tar.xz"
            source_version="$(cat "$LINUX73_ROOT/version" 2>/dev/null)" || source_version=""
            source_path="$LIBCLANG19_ROOT/bin" ;;
        *) die "unknown kernel series $1" ;;
    esac
    [[ -r "$source_tarball" && -n "$source_version" ]] ||
        die "$source_tarball not found; run scripts/setup.sh first"
    [[ -z "$source_path" || -x "$source_path/bindgen" ]] ||
        die "$source_path/bindgen not found; run scripts/setup.sh first"
    source_version="${source_version//[^A-Za-z0-9.+-]/_}"
}

# arch_toolchain ARCH: for a variant's ARCH (scripts/build-kernel.sh), sets
# kernel_arch (make's ARCH), cross (CROSS_COMPILE) and image (the boot image
# in a build tree).
arch_toolchain() {
    case "$1" in
        x86_64) kernel_arch=x86_64 cross="" image=arch/x86/boot/bzImage ;;
        arm64) kernel_arch=arm64 cross=aarch64-linux-gnu- image=arch/arm64/boot/Image ;;
        *) die "no toolchain settings for arch $1" ;;
    esac
}

# tree_arch KERNEL_TREE: the ARCH of a configured kernel tree. A build tree
# does not remember the ARCH it was made with.
tree_arch() {
    if grep -q '^CONFIG_ARM64=y' "$1/.config"; then echo arm64
    elif grep -q '^CONFIG_X86_64=y' "$1/.config"; then echo x86_64
    else die "$1: not a configured x86_64 or arm64 kernel tree"; fi
}

# make_in_tree KERNEL_TREE ARGS...: make -C KERNEL_TREE with the ARCH, cross
# compiler and compiler (LLVM=-N for a clang build) it was built with (for
# M= modules).
make_in_tree() {
    local kernel_arch cross image llvm=()
    arch_toolchain "$(tree_arch "$1")"
    if grep -q '^CONFIG_CC_IS_CLANG=y' "$1/.config"; then
        llvm=(LLVM="-$(( $(sed -n 's/^CONFIG_CLANG_VERSION=//p' "$1/.config") / 10000 ))")
    fi
    make -C "$1" ARCH="$kernel_arch" ${cross:+CROSS_COMPILE=$cross} "${llvm[@]}" "${@:2}"
}

# kmod_sources [DIR]: the driver's source files in DIR (default kmod/), one
# per line: what build_module and scripts/integrate-kernel.sh copy, and what
# the built-in kernel's cache key covers.
kmod_sources() {
    find "${1:-$REPO_ROOT/kmod}" -maxdepth 1 -type f \( -name Kbuild -o -name Kconfig -o -name '*.rs' \
        -o -name '*.c' -o -name '*.h' -o -name '*.sh' \) ! -name '*.mod.c' | LC_ALL=C sort
}

# kbuild_ns KMAKE_FILE SCRATCH COMMANDS: COMMANDS (bash, in the build
# directory, with kmake, make_args and JOBS) in a private mount namespace
# where the cached kernel build that KMAKE_FILE describes (written by
# scripts/build-kernel.sh) sits at the paths its recorded commands name:
# its source at $src and its build at $build, bound there from where they
# are ($src_dir, $build_dir). With SCRATCH, the build is an overlay instead,
# and SCRATCH/upper receives every file written. Needs root.
kbuild_ns() {
    unshare --mount --propagation private bash -c '
        set -euo pipefail
        source "$1"
        src_dir="${src_dir:-$src}" build_dir="${build_dir:-$build}"   # older builds lack both
        [[ "$src_dir" == "$src" ]] || mount --bind "$src_dir" "$src"
        if [[ -n "$2" ]]; then
            mount -t overlay overlay -o "lowerdir=$build_dir,upperdir=$2/upper,workdir=$2/work" "$build"
        elif [[ "$build_dir" != "$build" ]]; then
            mount --bind "$build_dir" "$build"
        fi
        cd "$build"
        JOBS="$3"
        eval "$4"
    ' kbuild-ns "$1" "$2" "$JOBS" "$3"
}

# corrupt_image IMAGE OUT: IMAGE with the byte in its middle (squashfs data)
# inverted, so that its CRC-32 no longer matches.
corrupt_image() {
    local at b
    at=$(( $(stat -c %s "$1") / 2 ))
    b=$(od -An -tu1 -j "$at" -N1 "$1")
    cp "$1" "$2"
    printf "\\$(printf '%03o' $(( b ^ 255 )))" | dd of="$2" bs=1 seek="$at" conv=notrunc status=none
}

# build_module KERNEL_TREE DIR [IMAGE]: kheaders_blk.ko built from a copy of
# the module sources in DIR (-> DIR/kmod/kheaders_blk.ko and the image it
# embeds, DIR/kmod/kheaders.img), leaving the repository's own kmod/ build
# alone. Without IMAGE, kmod/Kbuild packs the headers of KERNEL_TREE.
build_module() {
    local ktree="$1" dir="$2" image="${3:-}"
    rm -rf "$dir/kmod" && mkdir -p "$dir/kmod"
    cp "$REPO_ROOT/Kbuild" "$dir/"
    kmod_sources | xargs -d '\n' cp -t "$dir/kmod/"
    make_in_tree "$ktree" -s M="$dir" KHEADERS_TOOL="$REPO_ROOT/target/release/kheaders-image" \
        ${image:+KHEADERS_IMAGE="$image"} modules
}

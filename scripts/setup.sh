#!/usr/bin/env bash
# Install what building and testing need; safe to run again (each step checks
# first and says what it does).
#
#   Debian packages   kernel source + build deps (gcc; clang for x86-debug),
#                     QEMU, squashfs-tools, udev,
#                     the real clients (bcc, bpftrace) and dmsetup for the VM tests,
#                     g++ (libFuzzer, built by the fuzz targets' libfuzzer-sys),
#                     the arm64 cross compiler and qemu-system-aarch64
#   Debian (arm64)    busybox-static and bash-static for the arm64 test VM's
#                     initramfs, downloaded and unpacked into $ARM64_USERLAND
#   rustup            the rust-src component (the kernel builds core/alloc)
#   cargo             bindgen-cli $BINDGEN_VERSION (Debian's 0.60 is too old)
#   PyPI              virtme-ng $VIRTME_NG_VERSION in $KHB_CACHE/venv
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APT_PACKAGES=(
    "$LINUX_SOURCE_PKG"
    gcc g++ make flex bison bc cpio perl kmod
    libelf-dev libssl-dev libclang-dev
    "clang-$LLVM_VERSION" "lld-$LLVM_VERSION" "llvm-$LLVM_VERSION"
    qemu-system-x86 udev python3 python3-venv util-linux
    gcc-aarch64-linux-gnu qemu-system-arm
    squashfs-tools xz-utils tar
    bpfcc-tools python3-bpfcc bpftrace dmsetup systemd
)

sudo_if_needed() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    say "apt: installing ${missing[*]}"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
else
    say "apt: all ${#APT_PACKAGES[@]} packages present"
fi

command -v rustup >/dev/null || die "rustup not found: this project builds with the machine's rustup toolchain"
if rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
    say "rustup: rust-src present for $(rustc --version)"
else
    say "rustup: adding rust-src for $(rustc --version)"
    rustup component add rust-src
fi

if [[ "$(bindgen --version 2>/dev/null)" == "bindgen $BINDGEN_VERSION" ]]; then
    say "cargo: bindgen-cli $BINDGEN_VERSION present"
else
    say "cargo: installing bindgen-cli $BINDGEN_VERSION (about a minute)"
    cargo install --quiet --locked bindgen-cli --version "$BINDGEN_VERSION"
fi

venv="$KHB_CACHE/venv"
if [[ "$("$venv/bin/vng" --version 2>/dev/null)" == "virtme-ng $VIRTME_NG_VERSION" ]]; then
    say "pip: virtme-ng $VIRTME_NG_VERSION present in $venv"
else
    say "pip: installing virtme-ng $VIRTME_NG_VERSION into $venv"
    mkdir -p "$KHB_CACHE"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION"
fi

# The arm64 guest's userland: static busybox (the commands) and bash (the
# test runner), arm64 builds from the Debian archive, unpacked, not installed.
if [[ -x "$ARM64_USERLAND/bin/busybox" && -x "$ARM64_USERLAND/bin/bash-static" ]]; then
    say "apt (arm64): $(cat "$ARM64_USERLAND/versions") present in $ARM64_USERLAND"
else
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        say "dpkg: adding the arm64 architecture (for apt-get download of arm64 packages)"
        sudo_if_needed dpkg --add-architecture arm64
        sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    fi
    say "apt (arm64): downloading busybox-static and bash-static into $ARM64_USERLAND"
    tmp="$(mktemp -d)"
    as_root=()   # as root, apt would drop to _apt, which cannot write to $tmp
    [[ $(id -u) == 0 ]] && as_root=(-o APT::Sandbox::User=root)
    download() {
        (cd "$tmp" && apt-get download -q "${as_root[@]}" busybox-static:arm64 bash-static:arm64 >/dev/null)
    }
    download || { sudo_if_needed apt-get update -q >/dev/null && download; } ||
        die "apt-get download of busybox-static:arm64 bash-static:arm64 failed"
    rm -rf "$ARM64_USERLAND" && mkdir -p "$ARM64_USERLAND"
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$ARM64_USERLAND"; done
    (cd "$tmp" && ls *.deb) >"$ARM64_USERLAND/versions"
    rm -rf "$tmp"
    [[ -x "$ARM64_USERLAND/bin/busybox" && -x "$ARM64_USERLAND/bin/bash-static" ]] ||
        die "the arm64 packages did not contain bin/busybox and bin/bash-static"
fi

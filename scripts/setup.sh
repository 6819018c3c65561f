#!/usr/bin/env bash
# Install what building and testing need; safe to run again (each step checks
# first and says what it does).
#
#   Debian packages   kernel source + build deps (gcc; clang for x86-debug),
#                     QEMU (from the suite of any QEMU package already
#                     installed: bookworm-backports on a new machine of
#                     this kind, whose qemu-utils 10 breaks bookworm's 7.2),
#                     squashfs-tools, erofs-utils (mkfs.erofs, a peer in
#                     bench/native.sh), udev,
#                     the real clients (bcc, bpftrace) and dmsetup for the VM tests,
#                     g++ (libFuzzer, built by the fuzz targets' libfuzzer-sys),
#                     the arm64 cross compiler and qemu-system-aarch64
#   Debian (arm64)    busybox-static and bash-static for the arm64 test VM's
#                     initramfs, downloaded and unpacked into $ARM64_USERLAND
#   Debian (7.3)      linux-source-7.3 from trixie-backports (a private
#                     sources list under $KHB_CACHE/debian, not the
#                     machine's) and bookworm's libclang 19, which 7.3's
#                     bindgen needs: downloaded and unpacked into
#                     $LINUX73_ROOT and $LIBCLANG19_ROOT, not installed
#   rustup            the rust-src component (the kernel builds core/alloc)
#   cargo             bindgen-cli $BINDGEN_VERSION (Debian's 0.60 is too old)
#   PyPI              virtme-ng $VIRTME_NG_VERSION in $KHB_CACHE/venv
#
#   scripts/setup.sh --dry-run [--admindir DIR]
#                     resolve the Debian packages only (apt-get -s), against
#                     the dpkg state in DIR (default /var/lib/dpkg); installs
#                     nothing
#   scripts/setup.sh --list-packages
#                     print the Debian packages it installs, one a line
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APT_PACKAGES=(
    "$LINUX_SOURCE_PKG"
    gcc g++ make flex bison bc cpio perl kmod
    libelf-dev libssl-dev libclang-dev
    "clang-$LLVM_VERSION" "lld-$LLVM_VERSION" "llvm-$LLVM_VERSION"
    udev python3 python3-venv util-linux
    gcc-aarch64-linux-gnu
    squashfs-tools xz-utils tar
    erofs-utils
    bpfcc-tools python3-bpfcc bpftrace dmsetup systemd
)
# Installed apart: they must match any QEMU package the machine already has.
QEMU_PACKAGES=(qemu-system-x86 qemu-system-arm)

dry_run="" admindir=/var/lib/dpkg
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) dry_run=1; shift ;;
        --admindir) admindir="$2"; shift 2 ;;
        --list-packages) printf '%s\n' "${APT_PACKAGES[@]}" "${QEMU_PACKAGES[@]}"; exit 0 ;;
        -h|--help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "setup.sh: unknown option $1 (usage: scripts/setup.sh [--dry-run [--admindir DIR]])" ;;
    esac
done
apt_state=(-o "Dir::State::status=$admindir/status")

sudo_if_needed() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}
apt_get() { sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -q "${apt_state[@]}" "$@"; }
installed_version() {   # PACKAGE: its installed version, or nothing
    dpkg-query --admindir="$admindir" -W -f='${Status} ${Version}' "$1" 2>/dev/null |
        sed -n 's/^install ok installed //p'
}

# apt_install ARGS...: apt-get install ARGS, resolved first as a dry run; if
# apt cannot resolve them, one line naming the conflicting packages. With
# --dry-run only the resolution.
apt_install() {
    local out problems
    if ! out="$(apt_get install -s -y "$@" 2>&1)"; then
        problems="$(sed -n '/unmet dependencies:/,/^E:/p' <<<"$out" | grep -v -e 'unmet dependencies:' -e '^E:' |
            sed -E 's/^ +/ /' | paste -sd ';' | sed -E 's/^ //; s/; +/; /g')"
        die "apt cannot install ${*}: ${problems:-$(grep '^E:' <<<"$out" | head -n1)}"
    fi
    [[ -n "$dry_run" ]] && return 0
    apt_get install -y "$@" >/dev/null
}

# A QEMU package already here (a new machine of this kind has qemu-utils 10
# from bookworm-backports) rules out another QEMU's qemu-system-*: they come
# from the suite that package comes from, at its exact version, pinned so that
# nothing else is taken from that suite.
BACKPORTS_SOURCE=/etc/apt/sources.list.d/kheaders-blk-backports.sources
BACKPORTS_PIN=/etc/apt/preferences.d/kheaders-blk-backports
qemu_version="" qemu_suite=""
for p in qemu-utils qemu-system-common qemu-system-x86 qemu-system-arm; do
    qemu_version="$(installed_version "$p")" && [[ -n "$qemu_version" ]] && break
done
if [[ "$qemu_version" == *~bpo* ]]; then
    qemu_suite="$(. /etc/os-release && echo "$VERSION_CODENAME")-backports"
fi

add_backports_source() {
    if [[ -f "$BACKPORTS_SOURCE" ]] && grep -q "^Suites: $qemu_suite\$" "$BACKPORTS_SOURCE"; then
        return 0
    fi
    [[ -n "$dry_run" ]] && die "--dry-run: $qemu_suite is needed for QEMU $qemu_version but not configured (run scripts/setup.sh once)"
    say "apt: adding $qemu_suite as a source ($BACKPORTS_SOURCE), pinned at priority 100 ($BACKPORTS_PIN): only QEMU is taken from it"
    sudo_if_needed tee "$BACKPORTS_SOURCE" >/dev/null <<SOURCE
# Added by kheaders-blk scripts/setup.sh: qemu-system-* to match the
# installed qemu-utils $qemu_version.
Types: deb
URIs: http://deb.debian.org/debian
Suites: $qemu_suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCE
    sudo_if_needed tee "$BACKPORTS_PIN" >/dev/null <<PIN
# Added by kheaders-blk scripts/setup.sh: nothing is installed or upgraded
# from $qemu_suite unless asked for by name (setup asks for QEMU only).
Package: *
Pin: release n=$qemu_suite
Pin-Priority: 100
PIN
    apt_get update >/dev/null
}

missing=() qemu_missing=()
for p in "${APT_PACKAGES[@]}"; do [[ -n "$(installed_version "$p")" ]] || missing+=("$p"); done
for p in "${QEMU_PACKAGES[@]}"; do [[ -n "$(installed_version "$p")" ]] || qemu_missing+=("$p"); done
if [[ ${#missing[@]} -gt 0 || ${#qemu_missing[@]} -gt 0 ]]; then
    [[ -n "$dry_run" ]] || { say "apt: updating the package lists"; apt_get update >/dev/null; }
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    say "apt: ${dry_run:+(dry run) }installing ${missing[*]}"
    apt_install "${missing[@]}"
else
    say "apt: all ${#APT_PACKAGES[@]} packages present"
fi
if [[ ${#qemu_missing[@]} -eq 0 ]]; then
    say "apt: ${QEMU_PACKAGES[*]} present ($(installed_version qemu-system-x86))"
elif [[ -n "$qemu_suite" ]]; then
    add_backports_source
    say "apt: ${dry_run:+(dry run) }installing ${qemu_missing[*]} $qemu_version from $qemu_suite (to match the installed QEMU packages)"
    apt_install --no-install-recommends -t "$qemu_suite" "${qemu_missing[@]/%/=$qemu_version}"
else
    say "apt: ${dry_run:+(dry run) }installing ${qemu_missing[*]}${qemu_version:+ (matching the installed QEMU $qemu_version)}"
    apt_install "${qemu_missing[@]/%/${qemu_version:+=$qemu_version}}"
fi
[[ -n "$dry_run" ]] && { say "dry run: the package lists resolve"; exit 0; }

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

# apt_download_unpack DEST PACKAGE... [-- APT-OPTION...]: the packages'
# .debs downloaded (apt-get download, with the APT-OPTIONs; the package lists
# updated once if that fails) and unpacked into a new DEST; DEST/versions
# names the .debs. Nothing is installed.
apt_download_unpack() {
    local dest="$1" pkgs=() opts=() tmp
    shift
    while [[ $# -gt 0 && "$1" != -- ]]; do pkgs+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift && opts=("$@")
    # As root, apt would drop to _apt, which cannot write to $tmp.
    [[ $(id -u) == 0 ]] && opts+=(-o APT::Sandbox::User=root)
    tmp="$(mktemp -d)"
    download() { (cd "$tmp" && apt-get download -q "${opts[@]}" "${pkgs[@]}" >/dev/null); }
    download || { sudo_if_needed apt-get update -q "${opts[@]}" >/dev/null && download; } ||
        die "apt-get download of ${pkgs[*]} failed"
    rm -rf "$dest" && mkdir -p "$dest"
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
    (cd "$tmp" && ls *.deb) >"$dest/versions"
    rm -rf "$tmp"
}

# The arm64 guest's userland: static busybox (the commands) and bash (the
# test runner), arm64 builds from the Debian archive, unpacked, not installed.
if [[ -x "$ARM64_USERLAND/bin/busybox" && -x "$ARM64_USERLAND/bin/bash-static" ]]; then
    say "apt (arm64): $(paste -sd" " "$ARM64_USERLAND/versions") present in $ARM64_USERLAND"
else
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        say "dpkg: adding the arm64 architecture (for apt-get download of arm64 packages)"
        sudo_if_needed dpkg --add-architecture arm64
        apt_get update >/dev/null
    fi
    say "apt (arm64): downloading busybox-static and bash-static into $ARM64_USERLAND"
    apt_download_unpack "$ARM64_USERLAND" busybox-static:arm64 bash-static:arm64
    [[ -x "$ARM64_USERLAND/bin/busybox" && -x "$ARM64_USERLAND/bin/bash-static" ]] ||
        die "the arm64 packages did not contain bin/busybox and bin/bash-static"
fi

# Linux 7.3's source, from a suite this machine does not use: apt reads a
# sources list and package lists of its own under $KHB_CACHE/debian, and the
# system's sources, lists and package cache stay as they are.
tarball="$LINUX73_ROOT/usr/src/$LINUX73_PKG.tar.xz"
if [[ -r "$tarball" && -s "$LINUX73_ROOT/version" ]]; then
    say "apt ($LINUX73_SUITE): $LINUX73_PKG $(cat "$LINUX73_ROOT/version") present in $LINUX73_ROOT"
else
    apt73="$KHB_CACHE/debian/apt-$LINUX73_SUITE"
    mkdir -p "$apt73/lists/partial" "$apt73/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $LINUX73_SUITE main" \
        >"$apt73/sources.list"
    apt73_opts=(-o "Dir::Etc::sourcelist=$apt73/sources.list" -o Dir::Etc::sourceparts=/dev/null
                -o "Dir::State::Lists=$apt73/lists" -o "Dir::Cache=$apt73/cache")
    say "apt ($LINUX73_SUITE): downloading $LINUX73_PKG (167 MB, a source tarball) into $LINUX73_ROOT, with the private sources list $apt73/sources.list"
    [[ $(id -u) == 0 ]] && apt73_opts+=(-o APT::Sandbox::User=root)
    apt-get update -q "${apt73_opts[@]}" >/dev/null || die "apt-get update of $LINUX73_SUITE failed"
    apt_download_unpack "$LINUX73_ROOT" "$LINUX73_PKG" -- "${apt73_opts[@]}"
    [[ -r "$tarball" ]] || die "$LINUX73_PKG did not contain usr/src/$LINUX73_PKG.tar.xz"
    sed -E 's/^[^_]*_([^_]*)_.*/\1/; s/%3a/:/g' "$LINUX73_ROOT/versions" >"$LINUX73_ROOT/version"
fi

# libclang 19 for 7.3's bindgen, unpacked, with a bindgen that uses it.
if [[ -x "$LIBCLANG19_ROOT/bin/bindgen" && -s "$LIBCLANG19_ROOT/versions" ]]; then
    say "apt: $(paste -sd" " "$LIBCLANG19_ROOT/versions") present in $LIBCLANG19_ROOT"
else
    say "apt: downloading ${LIBCLANG19_PACKAGES[*]} into $LIBCLANG19_ROOT (bindgen's libclang for Linux 7.3)"
    apt_download_unpack "$LIBCLANG19_ROOT" "${LIBCLANG19_PACKAGES[@]}"
    [[ -e "$LIBCLANG19_ROOT/usr/lib/llvm-19/lib/libclang-19.so.1" ]] ||
        die "${LIBCLANG19_PACKAGES[*]} did not contain usr/lib/llvm-19/lib/libclang-19.so.1"
    mkdir -p "$LIBCLANG19_ROOT/bin"
    cat >"$LIBCLANG19_ROOT/bin/bindgen" <<WRAPPER
#!/bin/sh
# Written by kheaders-blk scripts/setup.sh: bindgen with the libclang 19
# unpacked here (its libLLVM is not on the loader's path).
LIBCLANG_PATH='$LIBCLANG19_ROOT/usr/lib/llvm-19/lib' \\
LD_LIBRARY_PATH='$LIBCLANG19_ROOT/usr/lib/x86_64-linux-gnu'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} \\
    exec '$(command -v bindgen)' "\$@"
WRAPPER
    chmod +x "$LIBCLANG19_ROOT/bin/bindgen"
fi

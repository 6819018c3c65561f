#!/usr/bin/env bash
# Build (or reuse) the Rust-enabled 6.12 test kernel.
#
# Source: Debian's linux-source-6.12 tarball. Config: tinyconfig plus
# scripts/kernel.config, every option of which is verified afterwards.
# The build is cached under $KHB_CACHE/kernel/<key>, where the key covers the
# source package version, the fragment, this script and the toolchain
# (rustc, bindgen, gcc): out-of-tree Rust modules need the exact rustc that
# built the kernel, so a toolchain change must mean a new kernel build.
#
# Prints the kernel build directory on stdout; progress goes to stderr.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FRAGMENT="$REPO_ROOT/scripts/kernel.config"
[[ -r "$LINUX_SOURCE_TARBALL" ]] ||
    die "$LINUX_SOURCE_TARBALL not found; run scripts/setup.sh first"
command -v bindgen >/dev/null || die "bindgen not found; run scripts/setup.sh first"

src_version="$(dpkg-query -W -f='${Version}' "$LINUX_SOURCE_PKG" 2>/dev/null ||
               sha256sum "$LINUX_SOURCE_TARBALL" | cut -c1-16)"
key_input="$(
    echo "source $LINUX_SOURCE_PKG $src_version"
    cat "$FRAGMENT"
    sed -n '/^# KEY-BEGIN/,/^# KEY-END/p' "${BASH_SOURCE[0]}"
    rustc -vV
    bindgen --version
    gcc --version | head -n1
)"
key="${src_version//[^A-Za-z0-9.+-]/_}-$(printf '%s' "$key_input" | sha256sum | cut -c1-12)"
dir="$KHB_CACHE/kernel/$key"
tree="$dir/linux"

if [[ -f "$dir/complete" ]]; then
    say "reusing cached kernel build $dir"
    echo "$tree"
    exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/lock"
flock 9
if [[ -f "$dir/complete" ]]; then   # another run finished it while we waited
    echo "$tree"
    exit 0
fi

# KEY-BEGIN (this block is part of the cache key)
kmake() {
    make -C "$tree" -s RUSTC=rustc BINDGEN=bindgen HOSTCC=gcc CC=gcc "$@"
}

start=$SECONDS
if [[ ! -f "$tree/Makefile" ]]; then
    say "extracting $LINUX_SOURCE_TARBALL ($src_version)"
    rm -rf "$tree" && mkdir -p "$tree"
    tar -xf "$LINUX_SOURCE_TARBALL" -C "$tree" --strip-components=1
fi

say "configuring: tinyconfig + ${FRAGMENT#"$REPO_ROOT"/}"
kmake tinyconfig >/dev/null
"$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$FRAGMENT" >/dev/null
kmake olddefconfig >/dev/null
# KEY-END

# A dropped option is silent in Kconfig: check each one made it.
missing=0
while IFS= read -r line; do
    if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
        want="$line"
    elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
        opt="${BASH_REMATCH[1]}"
        if grep -q "^$opt=" "$tree/.config"; then
            echo "  $opt should be unset but is: $(grep "^$opt=" "$tree/.config")" >&2
            missing=1
        fi
        continue
    else
        continue
    fi
    grep -qxF "$want" "$tree/.config" || {
        echo "  wanted $want, got: $(grep "^${want%%=*}=" "$tree/.config" || echo 'not set')" >&2
        missing=1
    }
done <"$FRAGMENT"
if [[ $missing != 0 ]]; then
    [[ "$(kmake rustavailable 2>&1)" == *"Rust is available"* ]] ||
        echo "  (make rustavailable: $(kmake rustavailable 2>&1 | tail -n1))" >&2
    die "kernel config lost options from the fragment (see above)"
fi

say "building bzImage and modules with $(rustc --version), bindgen $(bindgen --version | cut -d' ' -f2), $JOBS jobs (first build: several minutes)"
kmake -j"$JOBS" all
[[ -f "$tree/arch/x86/boot/bzImage" && -f "$tree/kernel/kheaders.ko" ]] ||
    die "kernel build finished without bzImage or kernel/kheaders.ko"
touch "$dir/complete"
say "kernel built in $((SECONDS - start)) s: $tree"
echo "$tree"

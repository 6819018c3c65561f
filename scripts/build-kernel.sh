#!/usr/bin/env bash
# Build (or reuse) a Rust-enabled test kernel (6.12 or 7.3): one recipe,
# several variants.
#
#   scripts/build-kernel.sh [VARIANT]        (default: x86)
#   scripts/build-kernel.sh --list
#
# Source: Debian's linux-source-6.12 or linux-source-7.3 tarball (the
# variant's series), extracted once per source version and shared by every
# variant of it (each builds with O= into its own directory). Config: tinyconfig plus the variant's fragments from
# scripts/kernel/, every option of which is verified afterwards.
# Each build is cached under $KHB_CACHE/kernel/<variant>-<version>-<key>, where
# the key covers the source version, the fragments, this recipe and the
# toolchain (rustc, bindgen, gcc or the cross gcc): out-of-tree Rust modules
# need the exact rustc that built the kernel. Older builds of the same variant
# are removed once a new one is complete.
#
# Prints the kernel build directory on stdout; progress goes to stderr.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# variant: ARCH fragment... (scripts/kernel/<fragment>.config, in order)
declare -A VARIANTS=(
    [x86]="x86_64 base x86"
    [x86-builtin]="x86_64 base x86 builtin"
    [arm64]="arm64 base arm64"
    [arm64-gki]="arm64 base arm64 gki"
    [arm64-16k]="arm64 base arm64 arm64-16k"
    [x86-debug]="x86_64 base x86 debug"
    [7.3]="x86_64 base x86 7.3"
    [7.3-builtin]="x86_64 base x86 7.3 builtin"
)
# variant: kernel series (common.sh's kernel_source), where it is not 6.12.
declare -A SERIES=(
    [7.3]=7.3
    [7.3-builtin]=7.3
)
# variant: compiler, where it is not gcc. 6.12 allows RUST with KASAN only
# when CC_IS_CLANG; clang-$LLVM_VERSION is the libclang bindgen uses.
declare -A COMPILER=(
    [x86-debug]=clang
)
# Variants with kheaders_blk in the kernel tree: scripts/integrate-kernel.sh
# is applied to a private hard-link copy of the shared source, and the
# driver's sources and that script join the variant's key (only its key).
# The image is packed during the build by the repository's kheaders-image.
declare -A IN_TREE=(
    [x86-builtin]=1
    [7.3-builtin]=1
)
# variant: the variant it is built as a change to (the same series, compiler
# and fragments, plus more). The base's finished build is copied and make
# runs in a private mount namespace where the copy and this variant's source
# sit at the paths the base's commands name: every recorded command still
# matches, so make redoes only what the added options and the driver touch,
# not the whole kernel. Needs root (the namespace); otherwise a full build.
declare -A BASE=(
    [x86-builtin]=x86
    [7.3-builtin]=7.3
)

if [[ "${1:-}" == --list ]]; then
    for v in "${!VARIANTS[@]}"; do echo "$v: ${VARIANTS[$v]}"; done | sort
    exit 0
fi
variant="${1:-x86}"
[[ -n "${VARIANTS[$variant]:-}" ]] ||
    die "unknown kernel variant '$variant' (known: $(printf '%s ' "${!VARIANTS[@]}"))"
read -r arch fragments <<<"${VARIANTS[$variant]}"
base="${BASE[$variant]:-}"
if [[ -n "$base" ]]; then
    [[ "${VARIANTS[$variant]}" == "${VARIANTS[$base]} "* &&
       "${SERIES[$variant]:-6.12}" == "${SERIES[$base]:-6.12}" &&
       "${COMPILER[$variant]:-gcc}" == "${COMPILER[$base]:-gcc}" ]] ||
        die "recipe: $variant is not $base plus fragments (BASE in ${BASH_SOURCE[0]})"
    if [[ $EUID != 0 ]]; then
        say "not root: $variant is built in full, not as a change to the $base build (that needs a mount namespace)"
        base=""
    fi
fi

kernel_source "${SERIES[$variant]:-6.12}"
# The series' own bindgen (7.3: with libclang 19), for this build only.
[[ -z "$source_path" ]] || PATH="$source_path:$PATH"
command -v bindgen >/dev/null || die "bindgen not found; run scripts/setup.sh first"

arch_toolchain "$arch"
compiler="${COMPILER[$variant]:-gcc}"
case "$compiler" in
    gcc) cc_args=(HOSTCC=gcc CC="${cross}gcc") cc_tools=("${cross}gcc") ;;
    clang) cc_args=(LLVM="-$LLVM_VERSION") cc_tools=("clang-$LLVM_VERSION" "ld.lld-$LLVM_VERSION" "llvm-ar-$LLVM_VERSION") ;;
    *) die "unknown compiler $compiler for variant $variant" ;;
esac
for t in "${cc_tools[@]}"; do
    command -v "$t" >/dev/null || die "$t not found; run scripts/setup.sh first"
done

frag_files=()
for f in $fragments; do
    frag_files+=("$REPO_ROOT/scripts/kernel/$f.config")
    [[ -r "${frag_files[-1]}" ]] || die "missing fragment ${frag_files[-1]}"
done

src_version="$source_version"
key_input="$(
    echo "source $source_pkg $src_version arch $arch"
    for f in "${frag_files[@]}"; do echo "fragment ${f##*/}"; cat "$f"; done
    sed -n '/^# KEY-BEGIN/,/^# KEY-END/p' "${BASH_SOURCE[0]}"
    rustc -vV
    bindgen --version
    [[ -z "$source_path" ]] || cat "$source_path/../versions"   # its libclang
    for t in "${cc_tools[@]}"; do "$t" --version | head -n1; done
)"
if [[ -n "${IN_TREE[$variant]:-}" ]]; then
    key_input+="$(
        echo
        echo "in-tree kheaders_blk"
        cat "$REPO_ROOT/scripts/integrate-kernel.sh"
        while IFS= read -r f; do echo "kmod ${f##*/}"; cat "$f"; done < <(kmod_sources)
    )"
fi
if [[ -n "$base" ]]; then
    base_build="$("$REPO_ROOT/scripts/build-kernel.sh" "$base")" || die "the $base kernel build failed"
    # v2: v1 kept the base's kheaders_data.tar.xz (see below).
    key_input+=$'\n'"a change to ${base_build%/build}, v2"
fi
key="$(printf '%s' "$key_input" | sha256sum | cut -c1-12)"
dir="$KHB_CACHE/kernel/$variant-$src_version-$key"
build="$dir/build"

if [[ -f "$dir/complete" ]]; then
    say "reusing cached $variant kernel build $dir"
    echo "$build"
    exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/lock"
flock 9
if [[ -f "$dir/complete" ]]; then   # another run finished it while we waited
    echo "$build"
    exit 0
fi

# The pristine source, shared by all variants of this source version.
src="$KHB_CACHE/src/$src_version/linux"
shared_src="$src"
if [[ ! -f "$src/.khb-complete" ]]; then
    mkdir -p "${src%/linux}"
    exec 8>"${src%/linux}/lock"
    flock 8
    if [[ ! -f "$src/.khb-complete" ]]; then
        say "extracting $source_tarball ($src_version) to $src"
        rm -rf "$src" && mkdir -p "$src"
        tar -xf "$source_tarball" -C "$src" --strip-components=1
        touch "$src/.khb-complete"
    fi
    exec 8>&-
fi

start=$SECONDS
make_args=()
if [[ -n "${IN_TREE[$variant]:-}" ]]; then
    # Files are added or replaced, never edited in place: the shared source's
    # inodes stay untouched.
    say "integrating kheaders_blk into a private copy of the source"
    rm -rf "$dir/src" && cp -al "$src" "$dir/src"
    "$REPO_ROOT/scripts/integrate-kernel.sh" "$dir/src" >/dev/null
    src="$dir/src"
    (cd "$REPO_ROOT" && cargo build --release --locked --quiet -p kheaders-image) ||
        die "building kheaders-image failed"
    make_args+=(KHEADERS_TOOL="$REPO_ROOT/target/release/kheaders-image")
fi
# KEY-BEGIN (this block is part of the cache key)
kmake() {
    make -C "$src" O="$build" -s ARCH="$kernel_arch" ${cross:+CROSS_COMPILE=$cross} \
        RUSTC=rustc BINDGEN=bindgen "${cc_args[@]}" "$@"
}
say "configuring $variant ($arch): tinyconfig + ${fragments// /, }"
rm -rf "$build" && mkdir -p "$build"
kmake tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "${frag_files[@]}" >/dev/null
kmake olddefconfig >/dev/null
# KEY-END

# A dropped option is silent in Kconfig: check each one made it. Later
# fragments override earlier ones, as in merge_config.sh.
declare -A want=()
for f in "${frag_files[@]}"; do
    while IFS= read -r line; do
        if [[ "$line" =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            want[${BASH_REMATCH[1]}]="$line"
        elif [[ "$line" =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            want[${BASH_REMATCH[1]}]="unset"
        fi
    done <"$f"
done
missing=0
for opt in "${!want[@]}"; do
    got="$(grep "^$opt=" "$build/.config" || true)"
    if [[ "${want[$opt]}" == unset ]]; then
        [[ -z "$got" ]] && continue
        echo "  $opt should be unset but is: $got" >&2
    else
        [[ "$got" == "${want[$opt]}" ]] && continue
        echo "  wanted ${want[$opt]}, got: ${got:-not set}" >&2
    fi
    missing=1
done
if [[ $missing != 0 ]]; then
    [[ "$(kmake rustavailable 2>&1)" == *"Rust is available"* ]] ||
        echo "  (make rustavailable: $(kmake rustavailable 2>&1 | tail -n1))" >&2
    die "$variant kernel config lost options from its fragments (see above)"
fi

# The recipe's make command for this build, for scripts that run make in it
# later (scripts/kernel-overlay.sh): the same arguments rebuild nothing.
# src and build are the paths make sees; src_dir and build_dir, where they
# are (kbuild_ns in common.sh mounts the one over the other).
src_dir="$src" build_dir="$build"
if [[ -n "$base" ]]; then
    # The configuration above, with the base's outputs under it. The .config
    # ends up newer than the copied auto.conf: syncconfig applies the change.
    cp "$build/.config" "$dir/config"
    cp -a --reflink=auto "$base_build/." "$build/"
    mv "$dir/config" "$build/.config"
    # Upstream's tarball does not depend on autoconf.h (kernel/gen_kheaders.sh
    # leaves it out of the dependencies), so the base's, with the base's
    # configuration in it, would be kept: made again here.
    rm -f "$build/kernel/kheaders_data.tar.xz" "$build/kernel/.kheaders_data.tar.xz.cmd"
    src="$shared_src" build="$base_build"
fi
{ declare -p src build src_dir build_dir kernel_arch cross cc_args make_args PATH; declare -f kmake; } >"$dir/kmake.sh"
how=" (first build: several minutes)"
[[ -z "$base" ]] || how=", as a change to the $base build"
say "building $variant kernel and modules with $(rustc --version), bindgen $(bindgen --version | cut -d' ' -f2), ${cc_tools[0]}, $JOBS jobs$how"
if [[ -n "$base" ]]; then
    kbuild_ns "$dir/kmake.sh" "" 'kmake -j"$JOBS" "${make_args[@]}" all'
else
    kmake -j"$JOBS" "${make_args[@]}" all
fi
src="$src_dir" build="$build_dir"
[[ -f "$build/$image" ]] || die "$variant kernel build finished without $image"
grep -q '^CONFIG_KHEADERS_BLK=y' "$build/.config" && ! grep -q ' __kheaders_blk_init$' "$build/System.map" &&
    die "$variant kernel build finished without kheaders_blk in vmlinux"
grep -q '^CONFIG_IKHEADERS=m' "$build/.config" && [[ ! -f "$build/kernel/kheaders.ko" ]] &&
    die "$variant kernel build finished without kernel/kheaders.ko"
echo "$variant" >"$dir/variant"
touch "$dir/complete"
say "$variant kernel built in $((SECONDS - start)) s: $build"
for old in "$KHB_CACHE/kernel/"*/; do
    old="${old%/}"
    [[ "$old" != "$dir" && "$(cat "$old/variant" 2>/dev/null)" == "$variant" ]] || continue
    say "removing superseded $variant build $old"
    rm -rf "$old"
done
echo "$build"

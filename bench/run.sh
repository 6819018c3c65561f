#!/usr/bin/env bash
# VM-tier benchmarks: the module path, which only the test kernel can show
# (module load, mount, kernel memory), against upstream's tarball
# (kheaders.ko) on the same headers of the same build. The VM runs under
# QEMU TCG, so its times show where time goes, not hardware ratios: those
# come from bench/native.sh (see docs/benchmarks.md).
#
#   bench/run.sh [--reps N] [--variants "includes-128K directory-128K"] [--update-docs]
#
# A variant is LAYOUT-BLOCKSIZE (kheaders-image pack --layout, -b).
# Host: image and .ko sizes, pack time (ours vs mksquashfs vs upstream's
# gen_kheaders.sh). VM (one boot of the test kernel): first header, a compile
# set, every file, each split into module load, mount/extract and read; and
# memory. Prints tables; writes results.json and benchmarks.png under
# $KHB_CACHE/bench/ (and, with --update-docs, into docs/).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$REPO_ROOT"

reps=5 variants="includes-128K directory-128K" update_docs=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --variants) variants="$2"; shift 2 ;;
        --update-docs) update_docs=1; shift ;;
        -h|--help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "bench/run.sh: unknown option $1 (see --help)" ;;
    esac
done

out="$KHB_CACHE/bench/vm-tier"
rm -rf "$out" && mkdir -p "$out/host" "$out/vm" "$out/modules"

say "setup, kernel, tool"
scripts/setup.sh
KTREE="$(scripts/build-kernel.sh)"
cargo build --release --locked --quiet
TOOL="$REPO_ROOT/target/release/kheaders-image"
UPSTREAM_TAR="$KTREE/kernel/kheaders_data.tar.xz"
PYTHON="$(plot_python)"

# Seconds of wall time for "$@", to stdout (stdout of "$@" discarded).
seconds() {
    local s=$EPOCHREALTIME
    "$@" >/dev/null
    local e=$EPOCHREALTIME
    echo "$(( ${e/./} - ${s/./} ))" | awk '{printf "%.3f", $1 / 1e6}'
}
record() { echo "$*" >>"$out/host/results.tsv"; }   # metric variant rep value

say "host: pack times ($reps runs each, $(nproc) CPUs)"
stripped="$out/host/stripped"
mkdir -p "$stripped" && tar -xJf "$UPSTREAM_TAR" -C "$stripped"
for v in $variants; do
    layout="${v%-*}" bs="${v##*-}"
    for r in $(seq 1 "$reps"); do
        record pack_ours "$v" "$r" "$(seconds "$TOOL" pack -q --layout "$layout" -b "$bs" "$KTREE" -o "$out/host/$v.img")"
        rm -f "$out/host/mksquashfs-$bs.img"
        record pack_mksquashfs "$v" "$r" "$(seconds mksquashfs "$stripped" "$out/host/mksquashfs-$bs.img" \
            -comp xz -b "$bs" -noappend -all-root -quiet -no-progress)"
    done
    record size_image "$v" 1 "$(stat -c %s "$out/host/$v.img")"
    record size_mksquashfs "$v" 1 "$(stat -c %s "$out/host/mksquashfs-$bs.img")"
done
# Upstream's own script, as Kbuild runs it for an O= build, in a scratch copy
# of the build tree's headers (it writes kernel/kheaders* where it runs).
src="$(readlink -f "$KTREE/source")"
for r in $(seq 1 "$(( reps < 3 ? reps : 3 ))"); do
    gk="$out/host/gen_kheaders" && rm -rf "$gk" && mkdir -p "$gk/kernel"
    (cd "$KTREE" && find include arch/x86/include -name '*.h' | cpio --quiet -pd "$gk")
    record pack_gen_kheaders tar.xz "$r" "$(cd "$gk" && seconds env srctree="$src" \
        building_out_of_srctree=1 SRCARCH=x86 XZ=xz sh "$src/kernel/gen_kheaders.sh" kernel/kheaders_data.tar.xz)"
done
record size_tarball tar.xz 1 "$(stat -c %s "$UPSTREAM_TAR")"
record size_ko_upstream tar.xz 1 "$(stat -c %s "$KTREE/kernel/kheaders.ko")"
record uncompressed_bytes all 1 "$(find "$stripped" -type f -printf '%s\n' | paste -sd+ | bc)"
record file_count all 1 "$(find "$stripped" -type f | wc -l)"

say "host: the compile set (gcc -M of bench/programs/trace.c)"
compile_set "$stripped" x86 bench/programs/trace.c >"$out/vm/compile-set.txt"
record compile_set_files all 1 "$(wc -l <"$out/vm/compile-set.txt")"

say "modules: kheaders_blk around each image"
mods=()
for v in $variants; do
    d="$out/modules/$v"
    build_module "$KTREE" "$d" "$out/host/$v.img"
    record size_ko "$v" 1 "$(stat -c %s "$d/kmod/kheaders_blk.ko")"
    mods+=("$v=$d/kmod/kheaders_blk.ko")
done

say "VM: one boot, $reps runs of each workload (TCG: several minutes)"
scripts/vm-run.sh --timeout 5400 --rwdir "$out/vm" -- \
    "export KHB_REPO='$REPO_ROOT' KHB_KERNEL_TREE='$KTREE' KHB_BCC_MODULE='${mods[0]#*=}'; \
     '$REPO_ROOT/bench/guest.sh' '$out/vm' '$KTREE/kernel/kheaders.ko' $reps ${mods[*]}"
cat "$out/vm/results.tsv" >>"$out/host/results.tsv"

say "report"
args=("$out/host/results.tsv" --json "$out/results.json" --plot "$out/benchmarks.png")
[[ -n "$update_docs" ]] && args+=(--update-docs "$REPO_ROOT/docs")
"$PYTHON" "$REPO_ROOT/bench/report.py" "${args[@]}"

#!/usr/bin/env bash
# Benchmarks: the mounted device (kheaders_blk) against upstream's tarball
# (kheaders.ko), on the same headers of the same kernel build.
#
#   bench/run.sh [--reps N] [--block-sizes "64K 128K 256K 1M"] [--update-docs]
#
# Host: image and .ko sizes, pack time (ours vs mksquashfs vs upstream's
# gen_kheaders.sh). VM (one boot of the test kernel): time to first header,
# a compile-like read set, a full read, memory. Prints a table; writes
# results.json and benchmarks.png under $KHB_CACHE/bench/ (and, with
# --update-docs, the table and plot into docs/).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$REPO_ROOT"

reps=5 block_sizes="64K 128K 256K 1M" update_docs=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --block-sizes) block_sizes="$2"; shift 2 ;;
        --update-docs) update_docs=1; shift ;;
        *) die "bench/run.sh: unknown option $1" ;;
    esac
done

out="$KHB_CACHE/bench"
rm -rf "$out" && mkdir -p "$out/host" "$out/vm" "$out/modules"

say "setup, kernel, tool"
scripts/setup.sh
KTREE="$(scripts/build-kernel.sh)"
cargo build --release --locked --quiet
TOOL="$REPO_ROOT/target/release/kheaders-image"
UPSTREAM_TAR="$KTREE/kernel/kheaders_data.tar.xz"
if ! "$KHB_CACHE/venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    say "pip: installing matplotlib into $KHB_CACHE/venv (for the plot)"
    "$KHB_CACHE/venv/bin/pip" install --quiet --disable-pip-version-check "matplotlib==3.9.2"
fi

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
for bs in $block_sizes; do
    for r in $(seq 1 "$reps"); do
        record pack_ours "$bs" "$r" "$(seconds "$TOOL" pack -q "$KTREE" -b "$bs" -o "$out/host/ours-$bs.img")"
        rm -f "$out/host/mksquashfs-$bs.img"
        record pack_mksquashfs "$bs" "$r" "$(seconds mksquashfs "$stripped" "$out/host/mksquashfs-$bs.img" \
            -comp xz -b "$bs" -noappend -all-root -quiet -no-progress)"
    done
    record size_image "$bs" 1 "$(stat -c %s "$out/host/ours-$bs.img")"
    record size_mksquashfs "$bs" 1 "$(stat -c %s "$out/host/mksquashfs-$bs.img")"
done
# Upstream's own script, as Kbuild runs it for an O= build into a scratch dir.
for r in $(seq 1 "$(( reps < 3 ? reps : 3 ))"); do
    gk="$out/host/gen_kheaders" && rm -rf "$gk" && mkdir -p "$gk/kernel"
    record pack_gen_kheaders tar.xz "$r" "$(cd "$gk" && seconds env srctree="$KTREE" building_out_of_srctree=1 \
        SRCARCH=x86 XZ=xz sh "$KTREE/kernel/gen_kheaders.sh" kernel/kheaders_data.tar.xz 2>/dev/null)"
done
record size_tarball tar.xz 1 "$(stat -c %s "$UPSTREAM_TAR")"
record size_ko_upstream tar.xz 1 "$(stat -c %s "$KTREE/kernel/kheaders.ko")"
record uncompressed_bytes all 1 "$(find "$stripped" -type f -printf '%s\n' | paste -sd+ | bc)"
record file_count all 1 "$(find "$stripped" -type f | wc -l)"

say "host: the compile-like read set (gcc -M of a tracing-style program)"
prog="$out/host/prog.c"
printf '#include <linux/sched.h>\n#include <linux/blkdev.h>\n#include <linux/skbuff.h>\n' >"$prog"
H="$stripped"
gcc -M -nostdinc -D__KERNEL__ -include "$H/include/linux/kconfig.h" \
    -I"$H/arch/x86/include" -I"$H/arch/x86/include/generated" -I"$H/include" \
    -I"$H/arch/x86/include/uapi" -I"$H/arch/x86/include/generated/uapi" \
    -I"$H/include/uapi" -I"$H/include/generated/uapi" "$prog" |
    tr ' \\' '\n\n' | grep "^$H/" | sed "s|^$H/||" | sort -u >"$out/vm/compile-set.txt"
record compile_set_files all 1 "$(wc -l <"$out/vm/compile-set.txt")"
say "  $(wc -l <"$out/vm/compile-set.txt") headers"

say "modules: kheaders_blk at each block size"
variants=()
for bs in $block_sizes; do
    d="$out/modules/$bs"
    build_module "$KTREE" "$d" "$out/host/ours-$bs.img"
    record size_ko "$bs" 1 "$(stat -c %s "$d/kmod/kheaders_blk.ko")"
    variants+=("$bs=$d/kmod/kheaders_blk.ko")
done

say "VM: one boot, $reps runs of each workload (TCG: expect several minutes)"
scripts/vm-run.sh --timeout 3000 --rwdir "$out/vm" -- \
    "'$REPO_ROOT/bench/guest.sh' '$out/vm' '$KTREE/kernel/kheaders.ko' $reps ${variants[*]}"
cat "$out/vm/results.tsv" >>"$out/host/results.tsv"

say "report"
args=("$out/host/results.tsv" --json "$out/results.json" --plot "$out/benchmarks.png")
[[ -n "$update_docs" ]] && args+=(--update-docs "$REPO_ROOT/docs")
"$KHB_CACHE/venv/bin/python" "$REPO_ROOT/bench/report.py" "${args[@]}"

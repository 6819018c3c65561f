#!/usr/bin/env bash
# VM-tier benchmark of the built-in driver (CONFIG_KHEADERS_BLK=y) against its
# peer, upstream's IKHEADERS=y, both in the x86-builtin test kernel, under
# QEMU TCG (times show where time goes, not hardware ratios):
#
#   bench/builtin.sh [--reps N] [--update-docs]
#
# - Size: vmlinux, its .rodata and bzImage with both built in (the test
#   kernel), only ours, only IKHEADERS, and neither (both =m, which also
#   builds kheaders_blk as an in-tree module). Incremental builds with the
#   options switched, in an overlay over the cached build
#   (scripts/kernel-overlay.sh; ~15 minutes on 2 cores, once per build:
#   cached beside it).
# - The image step of the kernel build on the host: a pack (headers changed)
#   and the check alone (nothing changed), N runs each.
# - Boot to the first header: N boots; in each, the time from the kernel's
#   start to the first command (virtme-ng's init done), then until
#   include/linux/sched.h is read: mount /dev/kheaders0, or extract
#   /sys/kernel/kheaders.tar.xz to tmpfs (order alternating, caches dropped).
# - The two initcalls' own time (initcall_debug), in one more boot.
#
# Writes $KHB_CACHE/bench/builtin/results.tsv and prints the table; with
# --update-docs, into docs/benchmarks.md.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$REPO_ROOT"

reps=5 update_docs=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --update-docs) update_docs=1; shift ;;
        -h|--help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "bench/builtin.sh: unknown option $1 (see --help)" ;;
    esac
done

variant=x86-builtin
out="$KHB_CACHE/bench/builtin"
rm -rf "$out" && mkdir -p "$out"
results="$out/results.tsv"
record() { echo "$*" >>"$results"; }   # metric variant rep value

scripts/setup.sh
KTREE="$(scripts/build-kernel.sh "$variant")"
cargo build --release --locked --quiet
TOOL="$REPO_ROOT/target/release/kheaders-image"

say "sizes: both, ours only, IKHEADERS only, neither"
sizes="${KTREE%/build}/bench-sizes.tsv"
if [[ ! -f "$sizes" ]]; then
    scripts/kernel-overlay.sh "$variant" "$out/overlay" -- '
        measure() {
            echo "size_vmlinux $1 1 $(stat -c %s vmlinux)"
            echo "size_rodata $1 1 $(size -A vmlinux | awk "\$1 == \".rodata\" {print \$2}")"
            echo "size_bzimage $1 1 $(stat -c %s arch/x86/boot/bzImage)"
        }
        # switch OPTION=VALUE...: rebuild with these options (checked).
        switch() {
            local o
            for o in "$@"; do
                case "${o#*=}" in
                    y) source/scripts/config --file .config --enable "${o%=*}" ;;
                    m) source/scripts/config --file .config --module "${o%=*}" ;;
                    n) source/scripts/config --file .config --disable "${o%=*}" ;;
                esac
            done
            kmake olddefconfig >&2
            for o in "$@"; do
                if [[ ${o#*=} == n ]]; then
                    ! grep -q "^CONFIG_${o%=*}=" .config
                else
                    grep -qx "CONFIG_$o" .config
                fi || { echo "CONFIG_$o did not stick" >&2; exit 1; }
            done
            echo "==> building with $*" >&2
            kmake -j"$JOBS" "${make_args[@]}" all >&2
        }
        measure both
        switch IKHEADERS=n
        measure kheaders_blk
        switch IKHEADERS=y KHEADERS_BLK=n
        measure ikheaders
        switch IKHEADERS=m KHEADERS_BLK=m
        measure neither
        [[ -f drivers/block/kheaders_blk/kheaders_blk.ko ]] || { echo "no in-tree kheaders_blk.ko" >&2; exit 1; }
        echo "size_ko kheaders_blk 1 $(stat -c %s drivers/block/kheaders_blk/kheaders_blk.ko)"
    ' >"$sizes.tmp"
    mv "$sizes.tmp" "$sizes"
    rm -rf "$out/overlay"
fi
cat "$sizes" >>"$results"

say "the image step on the host ($reps runs each)"
src="$(readlink -f "$KTREE/source")"
seconds() { /usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -n1; }
for r in $(seq 1 "$reps"); do
    rm -f "$out/step.img" "$out/step.img.stamp"
    read -r wall user sys <<<"$(seconds sh kmod/pack-image.sh "$out/step.img" "$TOOL" x86 "$KTREE" "$src" --)"
    record step_pack wall "$r" "$wall"
    record step_pack cpu "$r" "$(echo "$user + $sys" | bc)"
    read -r wall _ <<<"$(seconds sh kmod/pack-image.sh "$out/step.img" "$TOOL" x86 "$KTREE" "$src" --)"
    record step_check wall "$r" "$wall"
done
cmp -s "$out/step.img" "$KTREE/drivers/block/kheaders_blk/kheaders.img" ||
    die "the image packed here differs from the one the kernel build packed"

say "boot to the first header: $reps boots of the $variant kernel (TCG)"
guest='
    t0=$(cut -d" " -f1 /proc/uptime)
    echo "boot_to_command builtin $REP $t0"
    us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
    device() {
        mkdir -p /tmp/b-dev && mount -t squashfs -o ro /dev/kheaders0 /tmp/b-dev
        cat /tmp/b-dev/include/linux/sched.h >/dev/null
    }
    tarball() {
        mkdir -p /tmp/b-tar && mount -t tmpfs -o size=1G tmpfs /tmp/b-tar
        tar -xJf /sys/kernel/kheaders.tar.xz -C /tmp/b-tar
        cat /tmp/b-tar/include/linux/sched.h >/dev/null
    }
    order="device tarball"
    (( REP % 2 )) || order="tarball device"
    for how in $order; do
        sync; echo 3 >/proc/sys/vm/drop_caches
        s=$(us); $how; e=$(us)
        echo "first_header $how $REP $(( e - s ))e-6"
    done
'
for r in $(seq 1 "$reps"); do
    scripts/vm-run.sh --kernel "$KTREE/arch/x86/boot/bzImage" --timeout 300 --log "$out/boot-$r.log" -- \
        "REP=$r; $guest" | grep -E '^(boot_to_command|first_header) ' | awk '{printf "%s %s %s %.6f\n", $1, $2, $3, $4}' >>"$results"
done

say "the initcalls' time at boot (initcall_debug)"
scripts/vm-run.sh --kernel "$KTREE/arch/x86/boot/bzImage" --timeout 300 --log "$out/initcalls.log" \
    --append initcall_debug -- "dmesg | grep -E 'initcall (__kheaders_blk_init|ikheaders_init)\\+.* returned 0 after'" |
    sed -nE 's/.*initcall (__kheaders_blk_init|ikheaders_init)\+.* after ([0-9]+) usecs.*/initcall_us \1 1 \2/p' >>"$results"
[[ $(grep -c '^initcall_us ' "$results") == 2 ]] || die "initcall times not found (log: $out/initcalls.log)"

say "report"
args=("$results" --builtin --json "$out/results.json")
[[ -n "$update_docs" ]] && args+=(--update-docs "$REPO_ROOT/docs")
python3 bench/report.py "${args[@]}"

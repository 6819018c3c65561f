#!/usr/bin/env bash
# What the queue settings of /dev/kheaders0 are worth (issue 9): in one boot
# of the test VM, for the module as built (kmod/, 128 KiB squashfs blocks) and
# for a copy around a 1 MiB-block image, times three workloads under
#   - max_sectors_kb as set (1 MiB + a page) vs 124 (what the block layer's
#     defaults for zeroed queue_limits gave before).
# (Issue 9 also compared schedulers, none vs mq-deadline; since issue 22 the
# disk is bio-based and has no scheduler, and max_sectors_kb no longer
# splits its I/O: it only sizes readahead.)
# median of 5 runs each, with the read requests the device completed.
# Workloads: cat of every file of a fresh mount, and four dd passes over the
# whole device with O_DIRECT at 4 KiB and at 1 MiB. Runs are interleaved
# across the configurations.
#
#   scripts/measure-queue.sh [RUNS]       (needs the module built: make ... M=$PWD)
#
# Figures come from QEMU without KVM (TCG) on this project's machines:
# compare them with each other, not with hardware.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# In the VM: guest RUNS MODULE...
guest() {
    local runs="$1"; shift
    local q=/sys/block/kheaders0/queue mnt=/tmp/khb-measure
    stat_field() { awk -v f="$1" '{print $f}' /sys/block/kheaders0/stat; }
    run() {   # WORKLOAD: prints "seconds requests KiB"
        local ios0 sec0 t0 t1 i
        # Cold squashfs without dropping every cache (the tools themselves
        # come over 9p): a fresh mount has no cached pages, its own
        # compressed-page cache included.
        [[ $1 == cat ]] && { umount "$mnt"; blockdev --flushbufs /dev/kheaders0; mount -t squashfs -o ro /dev/kheaders0 "$mnt"; }
        ios0=$(stat_field 1) sec0=$(stat_field 3) t0=$(date +%s.%N)
        case "$1" in
            cat) find "$mnt" -type f -print0 | xargs -0 cat >/dev/null ;;
            # O_DIRECT bypasses the page cache; four passes for a longer run.
            dd4k) for i in 1 2 3 4; do dd if=/dev/kheaders0 of=/dev/null bs=4k iflag=direct status=none; done ;;
            dd1m) for i in 1 2 3 4; do dd if=/dev/kheaders0 of=/dev/null bs=1M iflag=direct status=none; done ;;
        esac
        t1=$(date +%s.%N)
        echo "$(echo "$t1 - $t0" | bc) $(( $(stat_field 1) - ios0 )) $(( ($(stat_field 3) - sec0) / 2 ))"
    }
    mkdir -p "$mnt"
    local mod cfg sched kb w i max_kb
    for mod in "$@"; do
        insmod "$mod"
        udevadm settle 2>/dev/null || true
        mount -t squashfs -o ro /dev/kheaders0 "$mnt"
        echo "== $mod: $(dmesg | grep -o 'squashfs-xz [0-9]* KiB ([0-9]* KiB blocks)' | tail -n1)"
        echo "   defaults: max_hw_sectors_kb $(cat $q/max_hw_sectors_kb), max_sectors_kb $(cat $q/max_sectors_kb), logical_block_size $(cat $q/logical_block_size)"
        max_kb=$(cat $q/max_sectors_kb)
        local cfgs=("none $max_kb" "none 124")
        declare -A res=()
        run cat >/dev/null; run dd4k >/dev/null   # warm up the tools
        # Interleaved: run i of every configuration before run i + 1, so that
        # drifting load on the host spreads over all of them.
        for i in $(seq 1 "$runs"); do
            for cfg in "${cfgs[@]}"; do
                read -r sched kb <<<"$cfg"
                echo "$kb" >$q/max_sectors_kb
                for w in cat dd4k dd1m; do
                    res["$cfg $w"]+="$(run "$w");"
                done
            done
        done
        for w in cat dd4k dd1m; do
            for cfg in "${cfgs[@]}"; do
                read -r sched kb <<<"$cfg"
                local rows
                rows="$(tr ';' '\n' <<<"${res["$cfg $w"]}" | sed '/^$/d')"
                printf '   %-5s %-12s max_sectors_kb %-5s median %6.3f s  (runs: %s)  requests %s  KiB read %s\n' \
                    "$w" "$sched" "$kb" "$(cut -d' ' -f1 <<<"$rows" | median)" \
                    "$(cut -d' ' -f1 <<<"$rows" | xargs printf '%.2f ')" \
                    "$(cut -d' ' -f2 <<<"$rows" | median)" "$(cut -d' ' -f3 <<<"$rows" | median)"
            done
        done
        unset res
        umount "$mnt"
        rmmod kheaders_blk
    done
}

if [[ "${1:-}" == --guest ]]; then
    shift
    guest "$@"
    exit
fi

runs="${1:-5}"
cd "$REPO_ROOT"
KTREE="$("$REPO_ROOT/scripts/build-kernel.sh")"
[[ -f kmod/kheaders_blk.ko ]] || die "build the module first: make -C $KTREE M=$REPO_ROOT modules"
work="$KHB_CACHE/measure-queue"
mkdir -p "$work"
target/release/kheaders-image pack -q -b 1M "$KTREE" -o "$work/b1m.img"
build_module_with_image "$KTREE" "$work/b1m" "$work/b1m.img"
"$REPO_ROOT/scripts/vm-run.sh" --timeout 3000 -- \
    "bash '$REPO_ROOT/scripts/measure-queue.sh' --guest $runs '$REPO_ROOT/kmod/kheaders_blk.ko' '$work/b1m/kmod/kheaders_blk.ko'"

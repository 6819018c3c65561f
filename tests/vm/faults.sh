# Fault injection at load (issue 12), on kernels with FAILSLAB and
# FAIL_PAGE_ALLOC (the x86-debug variant). One failure point at a time:
# tests/vm/fail-nth.c arms /proc/thread-self/fail-nth with N and makes one
# system call, in which the N-th slab or page allocation that passes the
# filters below fails; N grows (by a stride: under KASAN and TCG one point
# costs seconds) until the call gets through all of them. Every failed call
# must end cleanly and leave the next normal one working.

FAIL_NTH=/tmp/khb-fail-nth
FI=/sys/kernel/debug

# fault_setup START END: failslab and fail_page_alloc count only allocations
# with a return address in [START, END) on the stack (32 frames), for every
# gfp mask and order, and fail only through fail-nth (probability 0). Each
# injected failure logs one "FAULT_INJECTION: forcing a failure" line naming
# its kind, without a stack dump.
fault_setup() {
    debugfs
    [[ -x $FAIL_NTH ]] || gcc -O2 -Wall -Werror -o "$FAIL_NTH" "$KHB_REPO/tests/vm/fail-nth.c"
    local a
    for a in failslab fail_page_alloc; do
        echo 0 >"$FI/$a/probability"
        echo N >"$FI/$a/ignore-gfp-wait"
        echo 1 >"$FI/$a/verbose"
        echo 1000000 >"$FI/$a/verbose_ratelimit_burst"
        echo 32 >"$FI/$a/stacktrace-depth"
        echo "$1" >"$FI/$a/require-start"
        echo "$2" >"$FI/$a/require-end"
    done
    echo N >"$FI/fail_page_alloc/ignore-gfp-highmem"
    echo 0 >"$FI/fail_page_alloc/min-order"
}

fault_reset() {
    local a
    for a in failslab fail_page_alloc; do
        echo 0 >"$FI/$a/require-start"
        echo 18446744073709551615 >"$FI/$a/require-end"
        echo Y >"$FI/$a/ignore-gfp-wait"
    done
    echo Y >"$FI/fail_page_alloc/ignore-gfp-highmem"
    echo 1 >"$FI/fail_page_alloc/min-order"
}

# Module code: everything above the kernel image (on x86_64 the module
# area lies above it). While finit_module runs, the only module code on the
# stack is the module's init, so only its allocations (and those of the
# kernel functions it calls) count; the loader's own do not.
module_text_start() { awk '$3 == "_end" { print "0x" $1 }' /proc/kallsyms; }

# The device works: its first and last bytes are the image's.
device_works() {
    [[ -b /dev/kheaders0 ]] || fail "$1: /dev/kheaders0 missing"
    cmp -n 65536 /dev/kheaders0 "$KHB_IMAGE" || fail "$1: device differs from the image"
}

# Nothing of kheaders_blk is left.
nothing_left() {
    ! module_loaded kheaders_blk || fail "$1: module still loaded"
    [[ ! -e /dev/kheaders0 ]] || fail "$1: /dev/kheaders0 left behind"
    [[ ! -e /sys/block/kheaders0 ]] || fail "$1: /sys/block/kheaders0 left behind"
    ! grep -qw kheaders0 /proc/partitions || fail "$1: kheaders0 still in /proc/partitions"
}

# fail_nth N ARGS...: tests/vm/fail-nth.c between expected-report markers,
# since an injected allocation failure may make the allocator print its own
# warning with a stack dump (warn_alloc: "vmalloc error: ...", "page
# allocation failure: ..."). Those, and only those, are allowed: any other
# report in between fails the test. Prints fail-nth's "ret errno injected".
fail_nth() {
    local m out log reports warns traces
    m="$(kmark "fail-nth $*")"
    echo "$EXPECTED_REPORTS_BEGIN" >/dev/kmsg
    out="$("$FAIL_NTH" "$@")"
    echo "$EXPECTED_REPORTS_END" >/dev/kmsg
    log="$(log_since "$m")"
    reports="$(kernel_reports --all <<<"$log")"
    if [[ -n "$reports" ]]; then
        warns=$(grep -cE 'vmalloc error: |page allocation failure: ' <<<"$log" || true)
        traces=$(grep -c 'Call Trace:' <<<"$reports" || true)
        [[ $warns -ge 1 && $traces -le $warns && $(wc -l <<<"$reports") == "$traces" ]] ||
            fail "fail-nth $*: kernel reports besides allocation-failure warnings: $reports"
    fi
    echo "$out"
}

# Count the injected failures by kind in a log.
count_kinds() {
    awk '/name failslab,/ { s++ } /name fail_page_alloc,/ { p++ } END { printf "%d %d\n", s, p }'
}

# The points tried: every STRIDE-th, from 1 + (OFFSET mod STRIDE). The
# offset is the day number unless KHB_FAULT_OFFSET sets it, so that daily
# runs go through every point within STRIDE days, and a failure names the
# offset that reproduces it. Every point, in one run:
#   KHB_LOAD_FAULT_STRIDE=1 KHB_MOUNT_FAULT_STRIDE=1 scripts/test.sh --kernels x86-debug -k faults
FAULT_OFFSET="${KHB_FAULT_OFFSET:-$(( $(date +%s) / 86400 ))}"
first_point() { echo $((1 + FAULT_OFFSET % $1)); }   # STRIDE

# The module's init makes about 260 allocations (block core, sysfs, ...;
# about 430 with the blk-mq tag set before issue 22): every
# KHB_LOAD_FAULT_STRIDE-th (default 16, about 16 points in the test
# command's budget) is tried, and at least 240/stride must be.
LOAD_FAULT_STRIDE="${KHB_LOAD_FAULT_STRIDE:-16}"

test_failed_loads_end_cleanly() {
    leave_clean
    nothing_left "before"
    fault_setup "$(module_text_start)" 18446744073709551615
    local n first ret err inj m out lines points=0 absorbed=0 errnos="" slab=0 page=0 s p
    first="$(first_point "$LOAD_FAULT_STRIDE")" n=$first
    while :; do
        m="$(kmark "insmod n=$n")"
        out="$(fail_nth "$n" insmod "$KHB_MODULE")"
        read -r ret err inj <<<"$out"
        if [[ $inj == 0 ]]; then
            # The load passed all the points there are: it must have worked.
            [[ $ret == 0 ]] || fail "load with no failure injected (n=$n) failed: errno $err"
            device_works "load after the last point"
            unload_kheaders_blk
            break
        fi
        points=$((points + 1))
        out="$(log_since "$m")"
        read -r s p < <(count_kinds <<<"$out")
        slab=$((slab + s)) page=$((page + p))
        # An allocation made with __GFP_NOWARN fails without a log line.
        [[ $((s + p)) -le 1 ]] || fail "n=$n: $((s + p)) failures logged, expected at most 1: $out"
        if [[ $ret == 0 ]]; then
            # The kernel absorbed the failure (a fallback, or a step whose
            # failure it ignores): the device must work as usual.
            absorbed=$((absorbed + 1))
            device_works "n=$n (failure absorbed)"
            unload_kheaders_blk
        else
            [[ " $errnos " == *" $err "* ]] || errnos="$errnos $err"
            nothing_left "n=$n (errno $err)"
            lines="$(grep -c 'kheaders_blk: ' <<<"$out" || true)"
            [[ $lines == 1 ]] ||
                fail "n=$n (errno $err): $lines log lines from kheaders_blk, expected 1: $(grep 'kheaders_blk: ' <<<"$out")"
            # The next normal load works.
            load_kheaders_blk
            device_works "normal load after n=$n"
            unload_kheaders_blk
        fi
        n=$((n + LOAD_FAULT_STRIDE))
        [[ $n -lt 5000 ]] || fail "more than 5000 failure points?"
    done
    fault_reset
    echo "  init: tried $points of its $((n - LOAD_FAULT_STRIDE))-$((n - 1)) failure points (every ${LOAD_FAULT_STRIDE}th from $first, KHB_FAULT_OFFSET=$FAULT_OFFSET; $slab failslab, $page fail_page_alloc logged): $((points - absorbed)) failed the load (errno:$errnos), $absorbed absorbed by the kernel"
    [[ $points -ge $((240 / LOAD_FAULT_STRIDE)) ]] || fail "only $points failure points reached (stride $LOAD_FAULT_STRIDE)"
    kmemleak_check
    load_kheaders_blk
    device_works "final load"
    unload_kheaders_blk
}

# Every allocation of the mounting task counts, squashfs' cache pages too:
# about 570 points. Every KHB_MOUNT_FAULT_STRIDE-th (default 40, about 14
# points) is tried, and at least 500/stride must be.
MOUNT_FAULT_STRIDE="${KHB_MOUNT_FAULT_STRIDE:-40}"

test_failed_first_mounts_end_cleanly() {
    leave_clean
    upstream_reference
    local files=(include/linux/kconfig.h include/linux/sched.h arch/x86/include/asm/ptrace.h)
    local want
    want="$(cd "$REF" && sha256sum "${files[@]}")"
    load_kheaders_blk
    mkdir -p "$MNT"
    # Every allocation of the mounting task counts.
    fault_setup 0 18446744073709551615
    local n first ret err inj m out points=0 absorbed=0 errnos="" slab=0 page=0 s p
    first="$(first_point "$MOUNT_FAULT_STRIDE")" n=$first
    while :; do
        m="$(kmark "mount n=$n")"
        out="$(fail_nth "$n" mount /dev/kheaders0 "$MNT" squashfs)"
        read -r ret err inj <<<"$out"
        if [[ $inj != 0 ]]; then
            points=$((points + 1))
            read -r s p < <(log_since "$m" | count_kinds)
            slab=$((slab + s)) page=$((page + p))
        fi
        if [[ $ret == 0 ]]; then
            [[ $inj == 1 ]] && absorbed=$((absorbed + 1))
            [[ $inj == 0 && $points -lt $((500 / MOUNT_FAULT_STRIDE)) ]] && fail "only $points failure points reached (stride $MOUNT_FAULT_STRIDE)"
            expect_eq "$(cd "$MNT" && sha256sum "${files[@]}")" "$want" "files after mount n=$n"
            umount "$MNT"
            [[ $inj == 0 ]] && break
        else
            [[ $inj == 1 ]] || fail "mount with no failure injected (n=$n) failed: errno $err"
            [[ " $errnos " == *" $err "* ]] || errnos="$errnos $err"
            ! mountpoint -q "$MNT" || fail "n=$n: mounted although mount failed"
            # No reference left on the module or the device.
            expect_eq "$(cat /sys/module/kheaders_blk/refcnt)" 0 "module references after failed mount n=$n"
            mount_kheaders
            expect_eq "$(cd "$MNT" && sha256sum "${files[@]}")" "$want" "files after a failed mount (n=$n)"
            umount "$MNT"
        fi
        n=$((n + MOUNT_FAULT_STRIDE))
        [[ $n -lt 5000 ]] || fail "more than 5000 failure points?"
    done
    fault_reset
    echo "  first mount: tried $points of its $((n - MOUNT_FAULT_STRIDE))-$((n - 1)) failure points (every ${MOUNT_FAULT_STRIDE}th from $first, KHB_FAULT_OFFSET=$FAULT_OFFSET; $slab failslab, $page fail_page_alloc logged): $((points - absorbed)) failed it (errno:$errnos), $absorbed absorbed"
    mount_kheaders
    diff -r --no-dereference "$REF" "$MNT" >/tmp/khb-faults.diff || fail "tree differs after the mount faults: $(head /tmp/khb-faults.diff)"
    umount "$MNT"
    unload_kheaders_blk
    kmemleak_check
}

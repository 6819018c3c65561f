# The kernel's checkers (issue 12), on the x86-debug variant: they are on,
# stay on through the other suites (lockdep switches itself off after its
# first report), and kmemleak finds nothing of ours after load/unload cycles.
# Listed after the other suites of that kernel, before canary.sh.

test_checkers_are_on() {
    debugfs
    # Not `dmesg | grep -q`: grep's early exit fails the pipe (pipefail).
    grep -q 'KernelAddressSanitizer initialized' <<<"$(dmesg)" || fail "KASAN is not on"
    grep -q '^CONFIG_KASAN_GENERIC=y' "$KHB_KERNEL_TREE/.config" || fail "not generic KASAN"
    grep -Eq '^ *debug_locks: +1$' /proc/lockdep_stats || fail "lockdep is off: $(grep debug_locks /proc/lockdep_stats)"
    [[ -w /sys/kernel/debug/kmemleak ]] || fail "no kmemleak"
    [[ -d /sys/kernel/debug/failslab && -d /sys/kernel/debug/fail_page_alloc ]] || fail "no failslab/fail_page_alloc"
    [[ -w /proc/self/fail-nth ]] || fail "no fail-nth"
    local o
    for o in PROVE_LOCKING DEBUG_ATOMIC_SLEEP DEBUG_OBJECTS_TIMERS DEBUG_LIST; do
        grep -q "^CONFIG_$o=y" "$KHB_KERNEL_TREE/.config" || fail "CONFIG_$o is off"
    done
}

test_no_leaks_after_load_unload_cycles() {
    leave_clean
    upstream_reference
    local _
    for _ in 1 2 3; do
        load_kheaders_blk
        mount_kheaders
        cmp "$MNT/include/linux/sched.h" "$REF/include/linux/sched.h"
        umount "$MNT"
        unload_kheaders_blk
        # A load that fails (corrupted image) must leak nothing either.
        ! insmod "$KHB_ARTIFACTS/corrupt-data/kmod/kheaders_blk.ko" 2>/dev/null || fail "corrupted module loaded"
    done
    # Everything the suites before this one loaded and unloaded is covered too:
    # no scan ran since they did.
    kmemleak_check
}

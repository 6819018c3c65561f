# The checkers' self-test (issue 12): each kind of report the kernel makes
# is caught by tests/vm/kernel-reports.sh, the list both scripts/vm-run.sh
# and tests/vm/run-suite.sh use. tests/checker-canary commits one bug per
# load. Its reports are marked as expected, so that they do not fail the run.
# Must be the last suite of its kernel: KASAN reports only its first bug, and
# lockdep switches itself off after its first report or any KASAN report.

# expect_report KIND PATTERN: load the canary with bug=KIND; the kernel must
# report it, kernel_reports must catch a line matching PATTERN, and the
# markers must keep it out of the run's result.
expect_report() {
    local kind="$1" want="$2" m log caught
    m="$(kmark "canary $kind")"
    echo "$EXPECTED_REPORTS_BEGIN" >/dev/kmsg
    if insmod "$KHB_ARTIFACTS/khb_canary.ko" bug="$kind" 2>/dev/null; then
        echo "$EXPECTED_REPORTS_END" >/dev/kmsg
        fail "$kind: the canary loaded"
    fi
    if [[ $kind == leak ]]; then
        # A stale copy of the pointer (a reused stack) hides the leak from a
        # scan now and then: scan again, up to 5 times.
        local _
        for _ in 1 2 3 4 5; do
            sleep 6
            echo scan >/sys/kernel/debug/kmemleak
            grep -qE "$want" <<<"$(log_since "$m")" && break
        done
    fi
    echo "$EXPECTED_REPORTS_END" >/dev/kmsg
    log="$(log_since "$m")"
    caught="$(kernel_reports --all <<<"$log")"
    grep -qE "$want" <<<"$caught" ||
        fail "$kind: no report matching '$want' caught; kernel log: $(tail -n 30 <<<"$log")"
    [[ -z "$(kernel_reports <<<"$log")" ]] || fail "$kind: the markers did not keep the expected report out"
    echo "  $kind: caught \"$(grep -E -m1 "$want" <<<"$caught" | sed 's/^\[ *[0-9.]*\] //')\""
}

test_every_kind_of_report_is_caught() {
    debugfs
    # lockdep first: a KASAN report taints the kernel, which turns lockdep off.
    expect_report lockdep 'WARNING: possible circular locking dependency detected'
    expect_report kasan 'BUG: KASAN: slab-use-after-free in khb_canary_use_after_free'
    expect_report atomic-sleep 'BUG: sleeping function called from invalid context'
    # clang names the init function after its module_init alias.
    expect_report warn 'WARNING: CPU: .* (canary_init|init_module)\+'
    expect_report list 'list_del corruption'
    expect_report leak 'kmemleak: [0-9]+ new suspected memory leak'
    grep -q 'comm "insmod"' /sys/kernel/debug/kmemleak || fail "kmemleak does not list the canary's leak"
    echo clear >/sys/kernel/debug/kmemleak
}

# What a kernel log line looks like when the kernel found a bug: the one
# list, used on the whole console log by scripts/vm-run.sh (host) and on each
# test's part of dmesg by tests/vm/run-suite.sh (guest, busybox too). Source it.
# shellcheck shell=bash

# Extended regular expressions, one per kind of report.
KERNEL_REPORT_PATTERNS=(
    'Kernel panic'
    'BUG: '                 # BUG(), KASAN ("BUG: KASAN: ..."), sleeping in atomic context, bad page state
    'kernel BUG at'
    'Oops'
    'general protection'    # fault, or the KASAN-shadow variant
    'WARNING: '             # WARN(), lockdep ("WARNING: possible circular locking ..."), debugobjects
    'INFO: '                # lockdep's other reports ("INFO: trying to register non-static key"), RCU stalls, hung tasks
    'Call [Tt]race'         # any other stack dump (arm64 prints "Call trace:")
    'kmemleak: [0-9]+ new suspected memory leak'
    'kmemleak: Kernel memory leak detector disabled'
    'list_(add|del) corruption'
    'UBSAN: '
)
KERNEL_REPORT_RE="$(IFS='|'; echo "${KERNEL_REPORT_PATTERNS[*]}")"

# Lines between these two markers hold reports a test provoked on purpose (the
# checkers' self-test in tests/vm/canary.sh) and are not counted. A begin
# without an end hides nothing.
EXPECTED_REPORTS_BEGIN='khb-expected-reports: begin'
EXPECTED_REPORTS_END='khb-expected-reports: end'

# kernel_reports [--all] <LOG: print the lines of LOG that report a bug;
# with --all, also those between the markers (to look at expected reports).
kernel_reports() {
    awk -v re="$KERNEL_REPORT_RE" -v b="$EXPECTED_REPORTS_BEGIN" -v e="$EXPECTED_REPORTS_END" \
        -v all="$([[ ${1:-} == --all ]] && echo 1)" '
        index($0, b) { if (inside) flush(); inside = !all; n = 0; next }
        index($0, e) { inside = 0; n = 0; next }
        inside { held[++n] = $0; next }
        $0 ~ re { print }
        function flush(  i) { for (i = 1; i <= n; i++) if (held[i] ~ re) print held[i] }
        END { if (inside) flush() }'
}

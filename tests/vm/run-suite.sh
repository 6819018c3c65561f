#!/usr/bin/env bash
# Runs inside the test VM: every `test_*` function of the given suite files,
# each in its own subshell with errexit, and prints one line per test and a
# final "vm tests: N passed, M failed". A test also fails if the kernel
# reported a bug while it ran (oops, BUG, WARNING, KASAN, lockdep, kmemleak:
# tests/vm/kernel-reports.sh).
#
#   tests/vm/run-suite.sh [-k REGEX] [-x REGEX] tests/vm/harness.sh tests/vm/module.sh
#
# -k: only tests whose "suite/test" name matches; -x: not those that match
# (scripts/test.sh's LEAVE_OUT), each named in a "left out" line.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"
source "$HERE/kernel-reports.sh"

filter="" leave_out=""
suites=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -k) filter="$2"; shift 2 ;;
        -x) leave_out="$2"; shift 2 ;;
        *) suites+=("$1"); shift ;;
    esac
done

# The boot's kernel log, before any test adds to it (boot_log_has).
export KHB_BOOT_LOG=/run/khb-boot.log
mkdir -p /run && dmesg >"$KHB_BOOT_LOG"

passed=0 failed=0
failures=()
for suite in "${suites[@]}"; do
    name="$(basename "$suite" .sh)"
    # shellcheck disable=SC1090
    source "$suite"
    for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
        [[ -n "$filter" && ! "$name/$t" =~ $filter ]] && { unset -f "$t"; continue; }
        if [[ -n "$leave_out" && "$name/$t" =~ $leave_out ]]; then
            echo "left out on this kernel: $name/$t"
            unset -f "$t"
            continue
        fi
        # Where this test's kernel messages start; a count of lines would go
        # wrong once the ring buffer wraps.
        mark="$(kmark "start $name/$t")"
        start=$EPOCHREALTIME   # (busybox date has no %N)
        out="$( (set -eE -o pipefail; trap 'echo "  at line $LINENO: $BASH_COMMAND" >&2' ERR; cd /; "$t") 2>&1)"
        rc=$?
        secs=$(printf '%.1f' "$(echo "$EPOCHREALTIME - $start" | bc)")
        klog="$(dmesg)"
        if grep -qF "$mark" <<<"$klog"; then
            oops="$(lines_after "$mark" <<<"$klog" | kernel_reports)"
        else
            oops="(the kernel log ring buffer wrapped during the test: its messages cannot be checked)"
        fi
        if [[ $rc == 0 && -z "$oops" ]]; then
            passed=$((passed + 1))
            echo "ok   $name/$t (${secs}s)"
            [[ -n "${KHB_VERBOSE:-}" && -n "$out" ]] && sed 's/^/     /' <<<"$out"
        else
            failed=$((failed + 1))
            failures+=("$name/$t")
            echo "FAIL $name/$t (${secs}s, exit $rc)"
            sed 's/^/     /' <<<"$out" | tail -n 30
            [[ -n "$oops" ]] && { echo "     kernel log:"; sed 's/^/     /' <<<"$oops"; }
        fi
        unset -f "$t"
    done
done
[[ ${#failures[@]} -gt 0 ]] && echo "failed: ${failures[*]}"
echo "vm tests: $passed passed, $failed failed"
[[ $failed == 0 && $passed -gt 0 ]]

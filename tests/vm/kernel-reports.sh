# What a kernel log line looks like when the kernel found a bug: the one
# list, used on the whole console log by scripts/vm-run.sh (host) and on each
# test's part of dmesg by tests/vm/run-suite.sh (guest, busybox too). Source it.
# shellcheck shell=bash

# Extended regular expression; arm64 prints "Call trace:", x86 "Call Trace:".
KERNEL_REPORT_RE='Kernel panic|BUG: |Oops|WARNING: |general protection|Call [Tt]race'

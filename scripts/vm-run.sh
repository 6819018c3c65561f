#!/usr/bin/env bash
# Boot the test kernel in QEMU (through virtme-ng) and run one shell command
# inside it, as root, with the host's root filesystem visible read-only (the
# guest's writes go to a throw-away overlay; --rwdir DIR shares DIR writable).
#
#   scripts/vm-run.sh [--timeout SECONDS] [--cpus N] [--memory SIZE]
#                     [--rwdir DIR] [--kernel BZIMAGE] [--log FILE]
#                     [--append KERNEL_ARGS] -- COMMAND
#
# The command's stdout and stderr come out on stdout. The kernel console goes
# to the log file (default: $KHB_CACHE/vm-logs/last.log). Exit status: the
# command's; 124 if the VM did not finish in time; 125 if the kernel
# panicked, oopsed or warned (the log tail is printed either way).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

timeout_s=600 cpus=2 memory=2G kernel="" log="" rwdirs=() append=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --timeout) timeout_s="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --memory) memory="$2"; shift 2 ;;
        --kernel) kernel="$2"; shift 2 ;;
        --log) log="$2"; shift 2 ;;
        --rwdir) rwdirs+=(--rwdir "$2"); shift 2 ;;
        --append) append+=(--append "$2"); shift 2 ;;
        --) shift; break ;;
        *) die "vm-run.sh: unknown option $1 (the command goes after --)" ;;
    esac
done
[[ $# -gt 0 ]] || die "vm-run.sh: no command given (usage: vm-run.sh [options] -- COMMAND)"
command="$*"

VNG="$KHB_CACHE/venv/bin/vng"
PATH="$KHB_CACHE/venv/bin:$PATH"  # vng runs its sibling virtme-run
[[ -x "$VNG" ]] || die "virtme-ng not installed at $VNG; run scripts/setup.sh"
if [[ -z "$kernel" ]]; then
    kernel="$("$REPO_ROOT/scripts/build-kernel.sh")/arch/x86/boot/bzImage"
fi
[[ -f "$kernel" ]] || die "no kernel image at $kernel"
mkdir -p "$KHB_CACHE/vm-logs"
log="${log:-$KHB_CACHE/vm-logs/last.log}"

# KVM: use it only if it demonstrably boots this kernel. Probed once per host
# boot; on the machines we know, /dev/kvm exists but KVM fails (nested PVM).
kvm_works() {
    [[ "${KHB_ACCEL:-}" == tcg ]] && return 1
    [[ "${KHB_ACCEL:-}" == kvm ]] && return 0
    [[ -r /dev/kvm && -w /dev/kvm ]] || return 1
    local stamp="$KHB_CACHE/kvm-probe.$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
    if [[ ! -f "$stamp" ]]; then
        # The kernel finds no root and panics; panic=-1 + -no-reboot makes
        # QEMU exit. Under working KVM that takes about a second.
        if timeout 10 qemu-system-x86_64 -accel kvm -cpu host -m 256 -display none \
                -nodefaults -no-reboot -serial stdio -kernel "$kernel" \
                -append "console=ttyS0 panic=-1" 2>&1 </dev/null | grep -q "Kernel panic"; then
            echo yes >"$stamp"
        else
            echo no >"$stamp"
        fi
    fi
    [[ "$(cat "$stamp")" == yes ]]
}
accel=(--disable-kvm)
kvm_works && accel=()

# The command goes through a script file: virtme-ng passes --exec on the
# kernel command line, which is cut at 2048 bytes. The guest sees the host's
# files, so a file under the cache is visible to it.
script="$(mktemp -p "$KHB_CACHE/vm-logs" cmd.XXXXXX.sh)"
trap 'rm -f "$script"' EXIT
printf '%s\n' "exec 2>&1" "$command" >"$script"

start=$SECONDS
set +e
# The command's stderr joins its stdout; vng's own stderr (with --verbose:
# the kernel console) goes to the log.
timeout -k 10 "$timeout_s" "$VNG" --run "$kernel" "${accel[@]}" --cpus "$cpus" \
    --memory "$memory" --verbose "${rwdirs[@]}" "${append[@]}" --exec "bash $script" \
    </dev/null 2>"$log"
rc=$?
set -e

show_log_tail() { echo "--- last kernel console lines ($log) ---" >&2; tail -n 40 "$log" >&2; }
if [[ $rc == 124 || $rc == 137 ]]; then
    show_log_tail
    echo "vm-run: the VM did not finish within ${timeout_s}s (hang?)" >&2
    exit 124
fi
if grep -qE 'Kernel panic|BUG: |Oops|WARNING: |general protection fault|Call Trace:' "$log"; then
    show_log_tail
    echo "vm-run: the kernel panicked, oopsed or warned (full console log: $log)" >&2
    exit 125
fi
if ! grep -q 'virtme-ng-init: starting script' "$log"; then
    show_log_tail
    echo "vm-run: the VM did not boot to the command (exit $rc)" >&2
    exit $(( rc == 0 ? 1 : rc ))
fi
say "VM run took $((SECONDS - start)) s (${accel[*]:-kvm}), exit $rc"
exit "$rc"

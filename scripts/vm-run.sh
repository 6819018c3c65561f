#!/usr/bin/env bash
# Boot the test kernel in QEMU and run one shell command inside it, as root.
#
#   scripts/vm-run.sh [--arch x86_64|arm64] [--timeout SECONDS] [--cpus N]
#                     [--memory SIZE] [--rwdir DIR] [--kernel IMAGE]
#                     [--log FILE] [--append KERNEL_ARGS] -- COMMAND
#
# x86_64 (default): through virtme-ng, with the host's root filesystem visible
# read-only (the guest's writes go to a throw-away overlay).
# arm64: qemu-system-aarch64 -M virt (TCG) with a busybox + bash initramfs;
# the guest sees $REPO_ROOT and $KHB_CACHE read-only over 9p, at the same
# paths, and can run only what is built for arm64 or is a script.
# Either way --rwdir DIR shares DIR writable.
#
# The command's stdout and stderr come out on stdout. The kernel console goes
# to the log file (default: $KHB_CACHE/vm-logs/last.log). Exit status: the
# command's; 124 if the VM did not finish in time; 125 if the kernel reported
# a bug (tests/vm/kernel-reports.sh; the log tail is printed either way).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$REPO_ROOT/tests/vm/kernel-reports.sh"

arch=x86_64 timeout_s=600 cpus=2 memory=2G kernel="" log="" rwdirs=() append=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --arch) arch="$2"; shift 2 ;;
        --timeout) timeout_s="$2"; shift 2 ;;
        --cpus) cpus="$2"; shift 2 ;;
        --memory) memory="$2"; shift 2 ;;
        --kernel) kernel="$2"; shift 2 ;;
        --log) log="$2"; shift 2 ;;
        --rwdir) rwdirs+=("$2"); shift 2 ;;
        --append) append+="${append:+ }$2"; shift 2 ;;
        --) shift; break ;;
        *) die "vm-run.sh: unknown option $1 (the command goes after --)" ;;
    esac
done
[[ $# -gt 0 ]] || die "vm-run.sh: no command given (usage: vm-run.sh [options] -- COMMAND)"
command="$*"

case "$arch" in
    x86_64)
        VNG="$KHB_CACHE/venv/bin/vng"
        PATH="$KHB_CACHE/venv/bin:$PATH"  # vng runs its sibling virtme-run
        [[ -x "$VNG" ]] || die "virtme-ng not installed at $VNG; run scripts/setup.sh"
        ;;
    arm64)
        command -v qemu-system-aarch64 >/dev/null || die "qemu-system-aarch64 not found; run scripts/setup.sh"
        [[ -x "$ARM64_USERLAND/bin/busybox" ]] || die "no arm64 busybox in $ARM64_USERLAND; run scripts/setup.sh"
        ;;
    *) die "vm-run.sh: unknown --arch $arch (x86_64 or arm64)" ;;
esac
if [[ -z "$kernel" ]]; then
    arch_toolchain "$arch"
    kernel="$("$REPO_ROOT/scripts/build-kernel.sh" "${arch/x86_64/x86}")/$image"
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
# The command goes through a script file: virtme-ng passes --exec on the
# kernel command line, which is cut at 2048 bytes. The guest sees the host's
# files (arm64: the shared directories), so a file under the cache is
# visible to it.
script="$(mktemp -p "$KHB_CACHE/vm-logs" cmd.XXXXXX.sh)"
work="$(mktemp -d -p "$KHB_CACHE/vm-logs" run.XXXXXX)"
# The VM runs under timeout(1) in the background as $vm: timeout puts itself
# in a process group of its own, which a signal to ours does not reach, so
# the exit trap passes it on (timeout sends it to the VM). Otherwise a run
# that is stopped leaves its guest running, and the guest takes the CPU.
vm=""
trap 'rm -rf "$script" "$work"; [[ -z "$vm" ]] || kill "$vm" 2>/dev/null || true' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
printf '%s\n' "exec 2>&1" "$command" >"$script"

# arm64: the guest sees these at the same paths, over 9p; the first two
# read-only.
shared_dirs=("$REPO_ROOT" "$KHB_CACHE" "${rwdirs[@]}")

# arm64_initramfs: $work/initramfs.cpio, busybox and bash and an /init that
# mounts the shares, runs the script with its output on the virtio port
# khb.out, logs its exit status and powers off.
arm64_initramfs() {
    local root="$work/root" i mounts=""
    mkdir -p "$root/bin"
    cp "$ARM64_USERLAND/bin/busybox" "$root/bin/busybox"
    cp "$ARM64_USERLAND/bin/bash-static" "$root/bin/bash"
    for i in "${!shared_dirs[@]}"; do
        mounts+="mkdir -p '${shared_dirs[$i]}' && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 khb$i '${shared_dirs[$i]}'"$'\n'
    done
    cat >"$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /root
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs dev /dev
$mounts
out=/dev/console
for p in /sys/class/virtio-ports/*; do
    [ "\$(cat "\$p/name")" = khb.out ] && out="/dev/\${p##*/}"
done
echo "khb-init: starting script"
cd / && bash '$script' >"\$out" 2>&1 </dev/null
echo "khb-init: exit status \$?"
sync
poweroff -f
INIT
    chmod +x "$root/init"
    (cd "$root" && find . | cpio --quiet -o -H newc) >"$work/initramfs.cpio"
}

start=$SECONDS
set +e
case "$arch" in
    x86_64)
        accel=(--disable-kvm)
        kvm_works && accel=()
        rw=()
        for dir in "${rwdirs[@]}"; do rw+=(--rwdir "$dir"); done
        # The command's stderr joins its stdout; vng's own stderr (with
        # --verbose: the kernel console) goes to the log.
        timeout -k 10 "$timeout_s" "$VNG" --run "$kernel" "${accel[@]}" --cpus "$cpus" \
            --memory "$memory" --verbose "${rw[@]}" ${append:+--append "$append"} --exec "bash $script" \
            </dev/null 2>"$log" &
        vm=$!
        wait "$vm"
        rc=$? vm=""
        boot_marker='virtme-ng-init: starting script'
        ;;
    arm64)
        accel=(tcg)
        arm64_initramfs
        shares=()
        for i in "${!shared_dirs[@]}"; do
            ro=",readonly=on"
            [[ $i -ge 2 ]] && ro=""
            shares+=(-fsdev "local,id=fs$i,path=${shared_dirs[$i]},security_model=none$ro"
                     -device "virtio-9p-device,fsdev=fs$i,mount_tag=khb$i")
        done
        # -cpu max: a CPU with 16 KiB (and 64 KiB) page granules. The kernel
        # console (PL011) goes to the log. The command's output goes to a
        # file that tail streams to stdout (a stdio chardev closes at stdin's
        # EOF, and the guest's writes to the port then block).
        : >"$work/out"
        timeout -k 10 "$timeout_s" qemu-system-aarch64 -M virt -cpu max -accel tcg \
            -smp "$cpus" -m "$memory" -nodefaults -no-reboot -display none \
            -kernel "$kernel" -initrd "$work/initramfs.cpio" \
            -append "console=ttyAMA0 panic=-1 rdinit=/init${append:+ $append}" -serial "file:$log" \
            -device virtio-serial-device -chardev "file,id=out,path=$work/out" \
            -device virtserialport,chardev=out,name=khb.out "${shares[@]}" </dev/null &
        vm=$!
        tail -n +1 -s 0.5 -f --pid="$vm" "$work/out"
        wait "$vm"
        rc=$? vm=""
        boot_marker='khb-init: starting script'
        # QEMU exits 0 when the guest powers off: the command's status is in the log.
        if [[ $rc == 0 ]]; then
            rc="$(sed -n 's/^khb-init: exit status \([0-9]*\).*/\1/p' "$log" | tail -n1)"
            rc="${rc:-1}"
        fi
        ;;
esac
set -e

show_log_tail() { echo "--- last kernel console lines ($log) ---" >&2; tail -n 40 "$log" >&2; }
if [[ $rc == 124 || $rc == 137 ]]; then
    show_log_tail
    echo "vm-run: the VM did not finish within ${timeout_s}s (hang?)" >&2
    exit 124
fi
reports="$(kernel_reports <"$log")"
if [[ -n "$reports" ]]; then
    show_log_tail
    echo "--- kernel reports ---" >&2
    head -n 20 <<<"$reports" >&2
    echo "vm-run: the kernel reported a bug (panic, oops, KASAN, lockdep, kmemleak, warning; full console log: $log)" >&2
    exit 125
fi
if ! grep -q "$boot_marker" "$log"; then
    show_log_tail
    echo "vm-run: the VM did not boot to the command (exit $rc)" >&2
    exit $(( rc == 0 ? 1 : rc ))
fi
say "VM run took $((SECONDS - start)) s (${accel[*]:-kvm}), exit $rc"
exit "$rc"

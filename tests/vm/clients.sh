# The real clients (issue 9): bcc and bpftrace, as Debian ships them, find
# and use the headers of /dev/kheaders0 with no configuration, and the
# zero-configuration command and boot unit behave.
#
# In every client test the headers come only from the device: an empty tmpfs
# over /lib/modules (holding just the installed module, as `make
# modules_install` leaves it), no kheaders.ko, no headers environment
# variables, nothing under /tmp/kheaders-*.

KM="$KHB_REPO/userspace/kheaders-mount"
REL="$(uname -r)"

bcc_count_reads() { "$KHB_REPO/tests/vm/bcc-count-reads.py"; }

events_at_least() {   # N OUTPUT
    local n
    n=$(sed -n 's/^events \([0-9]*\)$/\1/p' <<<"$2")
    [[ -n "$n" && $n -ge $1 ]] || fail "expected at least $1 events: $2"
    echo "  $n events"
}

test_zero_config_mounts_where_tools_look_and_undoes() {
    no_headers_installed
    "$KM"
    module_loaded kheaders_blk || built_in KHEADERS_BLK || fail "kheaders-mount did not load the module"
    findmnt -no OPTIONS "/run/kheaders/$REL" | grep -qw ro || fail "not mounted read-only"
    expect_eq "$(readlink "/lib/modules/$REL/build")" "/run/kheaders/$REL" "build link"
    [[ -f "/lib/modules/$REL/build/include/linux/kconfig.h" ]] || fail "no kconfig.h through the link"
    "$KM" | grep -q "already leads" || fail "second run did not notice it is set up"
    [[ $(grep -c " /run/kheaders/$REL " /proc/self/mountinfo) == 1 ]] || fail "mounted twice"
    "$KM" --status
    "$KM" --undo
    [[ ! -e "/lib/modules/$REL/build" && ! -L "/lib/modules/$REL/build" ]] || fail "build link left behind"
    ! mountpoint -q "/run/kheaders/$REL" 2>/dev/null || fail "still mounted"
    ! module_loaded kheaders_blk || fail "module it loaded is still loaded"
    "$KM" --undo | grep -q "nothing to undo" || fail "second undo did something"
    expect_fails "status when not set up" "$KM" --status
}

test_zero_config_never_touches_installed_headers() {
    no_headers_installed
    # A headers package: a real build directory.
    mkdir -p "/lib/modules/$REL/build/include/linux"
    echo '/* package */' >"/lib/modules/$REL/build/include/linux/kconfig.h"
    "$KM"
    expect_eq "$(cat "/lib/modules/$REL/build/include/linux/kconfig.h")" '/* package */' "the package's file"
    mountpoint -q "/tmp/kheaders-$REL" || fail "not bound at bcc's kheaders path"
    findmnt -no OPTIONS "/tmp/kheaders-$REL" | grep -qw ro || fail "kheaders path not read-only"
    [[ -f "/tmp/kheaders-$REL/include/generated/utsrelease.h" ]] || fail "no headers at /tmp/kheaders-$REL"
    "$KM" --undo
    [[ ! -e "/tmp/kheaders-$REL" ]] || fail "/tmp/kheaders-$REL left behind"
    [[ -f "/lib/modules/$REL/build/include/linux/kconfig.h" ]] || fail "undo removed the package's headers"
    # A dangling link (package removed) is replaced, and put back by --undo.
    rm -rf "/lib/modules/$REL/build"
    ln -s /usr/src/linux-headers-gone "/lib/modules/$REL/build"
    "$KM"
    expect_eq "$(readlink "/lib/modules/$REL/build")" "/run/kheaders/$REL" "build link over the dangling one"
    "$KM" --undo
    expect_eq "$(readlink "/lib/modules/$REL/build")" /usr/src/linux-headers-gone "dangling link restored"
}

test_zero_config_says_what_is_wrong() {
    no_headers_installed
    local out
    out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$(readable_copy "$KM")" 2>&1) &&
        fail "ran as nobody: $out"
    grep -q "must be run as root" <<<"$out" || fail "not-root message: $out"
    rm "/lib/modules/$REL/extra/kheaders_blk.ko" && depmod -a "$REL"
    out=$("$KM" 2>&1) && fail "ran without the module: $out"
    grep -q "cannot load kheaders_blk for kernel $REL" <<<"$out" || fail "no-module message: $out"
    # The module of another release: loads (with a warning), but kheaders-mount refuses.
    cp "$KHB_ARTIFACTS/other-release/kmod/kheaders_blk.ko" "/lib/modules/$REL/extra/" && depmod -a "$REL"
    out=$("$KM" 2>&1) && fail "mounted the headers of another release: $out"
    grep -q "holds the headers of kernel 9.9.9-other, the running kernel is $REL" <<<"$out" || fail "mismatch message: $out"
    ! mountpoint -q "/run/kheaders/$REL" 2>/dev/null || fail "left mounted after the mismatch"
    "$KM" --undo >/dev/null
    # A kernel whose squashfs lacks the image's compressor: an image whose
    # compression this kernel was built without (lz4).
    cp "$KHB_ARTIFACTS/lz4-image/kmod/kheaders_blk.ko" "/lib/modules/$REL/extra/" && depmod -a "$REL"
    out=$("$KM" 2>&1) && fail "mounted an lz4 image: $out"
    grep -q "squashfs refused /dev/kheaders0" <<<"$out" || fail "compressor message: $out"
    "$KM" --undo >/dev/null
    [[ -z "$(ls /run/kheaders 2>/dev/null | grep -v '^\.')" ]] || fail "left something in /run/kheaders: $(ls -a /run/kheaders)"
}

test_boot_unit_and_udev_rule() {
    no_headers_installed
    # The rule asks systemd for the unit when the device appears.
    "$KM" >/dev/null
    local props
    props=$(udevadm test --action=add /sys/block/kheaders0 2>/dev/null)
    grep -q '^SYSTEMD_WANTS=.*kheaders.service' <<<"$props" || {
        cp "$KHB_REPO/userspace/60-kheaders.rules" /etc/udev/rules.d/ 2>/dev/null ||
            { mkdir -p /run/udev/rules.d && cp "$KHB_REPO/userspace/60-kheaders.rules" /run/udev/rules.d/; }
        props=$(udevadm test --action=add /sys/block/kheaders0 2>/dev/null)
    }
    grep -q '^SYSTEMD_WANTS=.*kheaders.service' <<<"$props" || fail "the udev rule does not want the unit: $props"
    grep -q '^TAGS=.*:systemd:' <<<"$props" || fail "the udev rule does not tag the device for systemd"
    "$KM" --undo >/dev/null
    # The unit as installed: the command at the path it names, valid to systemd.
    local root=/tmp/khb-install
    rm -rf "$root" && mkdir -p "$root"
    sed "s|@SBINDIR@|$root/sbin|g" "$KHB_REPO/userspace/kheaders.service" >"$root/kheaders.service"
    mkdir -p "$root/sbin" && cp "$KM" "$root/sbin/"
    systemd-analyze verify "$root/kheaders.service" 2>&1 | tee /tmp/khb-verify
    ! grep -qi "error\|failed\|not found\|invalid" /tmp/khb-verify || fail "systemd-analyze verify: $(cat /tmp/khb-verify)"
    # What ExecStart and ExecStop run does the job.
    local start stop
    start=$(sed -n 's/^ExecStart=//p' "$root/kheaders.service")
    stop=$(sed -n 's/^ExecStop=//p' "$root/kheaders.service")
    $start >/dev/null && [[ -f "/lib/modules/$REL/build/include/linux/kconfig.h" ]] || fail "ExecStart did not set up"
    $stop >/dev/null && [[ ! -e "/lib/modules/$REL/build" ]] || fail "ExecStop did not undo"
}

test_bcc_kprobe_program_sees_events() {
    no_headers_installed
    "$KM" >/dev/null
    local out
    out=$(bcc_count_reads 2>&1) || fail "bcc: $out"
    events_at_least 50 "$out"
    # It used the mount: nothing was extracted.
    [[ -z "$(ls -d /tmp/kheaders-* 2>/dev/null)" ]] || fail "bcc extracted headers: $(ls -d /tmp/kheaders-*)"
    ! module_loaded kheaders || fail "bcc loaded kheaders.ko"
    "$KM" --undo >/dev/null
}

test_stock_bcc_tool_reports() {
    no_headers_installed
    "$KM" >/dev/null
    local log=/tmp/khb-opensnoop
    # Unbuffered: its header line shows once it is tracing.
    PYTHONUNBUFFERED=1 opensnoop-bpfcc -T -n cat >"$log" 2>&1 &
    local pid=$! i
    for i in $(seq 1 900); do
        grep -q 'PATH' "$log" && break
        kill -0 "$pid" 2>/dev/null || fail "opensnoop exited: $(cat "$log")"
        sleep 1
    done
    grep -q 'PATH' "$log" || fail "opensnoop did not start: $(cat "$log")"
    for i in 1 2 3; do cat /etc/hostname >/dev/null; sleep 0.5; done
    sleep 2
    kill -0 "$pid" 2>/dev/null || fail "opensnoop exited early: $(cat "$log")"
    # SIGTERM: a background job of a script starts with SIGINT ignored, and
    # Python then never raises KeyboardInterrupt.
    kill -TERM "$pid"
    wait "$pid" || true
    grep -q 'cat .*/etc/hostname' "$log" || fail "opensnoop did not report the opens: $(cat "$log")"
    echo "  $(grep -c /etc/hostname "$log") opens of /etc/hostname reported"
    "$KM" --undo >/dev/null
}

test_bpftrace_program_uses_a_struct_from_the_headers() {
    no_headers_installed
    "$KM" >/dev/null
    # A reader whose comm the program looks for (comm is the executable's name).
    ln -sf "$(command -v cat)" /tmp/khb-reader
    local log=/tmp/khb-bpftrace i
    timeout 900 bpftrace -e '#include <linux/sched.h>
kprobe:vfs_read /comm == "khb-reader"/ {
    $t = (struct task_struct *)curtask;
    printf("reader %s pid %d\n", $t->comm, $t->pid);
    exit();
}' >"$log" 2>&1 &
    local pid=$!
    for i in $(seq 1 900); do
        kill -0 "$pid" 2>/dev/null || break
        /tmp/khb-reader /proc/self/stat >/dev/null
        sleep 1
    done
    wait "$pid" || fail "bpftrace failed: $(cat "$log")"
    grep -q '^reader khb-reader pid [0-9]' "$log" || fail "bpftrace did not print the struct's fields: $(cat "$log")"
    echo "  $(grep '^reader' "$log")"
    "$KM" --undo >/dev/null
}

test_bcc_with_the_upstream_tarball_peer() {
    no_headers_installed
    # The peer: kheaders.ko and bcc's own extraction (it modprobes kheaders).
    local out
    out=$(bcc_count_reads 2>&1) || fail "bcc with the tarball: $out"
    events_at_least 50 "$out"
    [[ -d "/tmp/kheaders-$REL/include/linux" ]] || fail "bcc did not extract the tarball"
    echo "  bcc left /tmp/kheaders-$REL behind: $(du -sk "/tmp/kheaders-$REL" | cut -f1) KiB"
    rm -rf "/tmp/kheaders-$REL"
}

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


test_zero_config_mounts_where_tools_look_and_undoes() {
    no_headers_installed
    "$KM"
    module_loaded kheaders_blk || built_in KHEADERS_BLK || fail "kheaders-mount did not load the module"
    # The options as the kernel reports them (mountinfo's per-mount field).
    local opts
    opts=$(awk -v d="/run/kheaders/$REL" '$5 == d { print $6 }' /proc/self/mountinfo)
    for o in ro nosuid nodev noexec; do
        [[ ",$opts," == *",$o,"* ]] || fail "mounted without $o: $opts"
    done
    echo "  mount options: $opts"
    # The fingerprint: the device's bytes are the image, zero-padded to a page.
    local size=$(stat -c %s "$KHB_IMAGE") dev_size=$(blockdev --getsize64 /dev/kheaders0)
    expect_eq "$(cat "/run/kheaders/$REL.fingerprint")" "release=$REL
source=kheaders_blk
image_sha256=$({ cat "$KHB_IMAGE"; head -c $((dev_size - size)) /dev/zero; } | sha256sum | cut -c1-64)" "fingerprint"
    expect_eq "$(readlink "/lib/modules/$REL/build")" "/run/kheaders/$REL" "build link"
    [[ -f "/lib/modules/$REL/build/include/linux/kconfig.h" ]] || fail "no kconfig.h through the link"
    local again
    again=$("$KM")
    grep -q "already leads" <<<"$again" || fail "second run did not notice it is set up: $again"
    expect_eq "$(mounts_at "/run/kheaders/$REL")" 1 "mounts at /run/kheaders/$REL"
    "$KM" --status
    "$KM" --undo
    [[ ! -e "/lib/modules/$REL/build" && ! -L "/lib/modules/$REL/build" ]] || fail "build link left behind"
    ! mountpoint -q "/run/kheaders/$REL" 2>/dev/null || fail "still mounted"
    ! module_loaded kheaders_blk || fail "module it loaded is still loaded"
    "$KM" --undo | grep -q "nothing to undo" || fail "second undo did something"
    expect_fails "status when not set up" "$KM" --status
}


# left_nothing: no mount, no build link to it, no module, nothing in
# /run/kheaders but the lock file.
left_nothing() {
    [[ $(mounts_at "/run/kheaders/$REL") == 0 ]] || fail "still mounted at /run/kheaders/$REL"
    [[ "$(readlink "/lib/modules/$REL/build")" != "/run/kheaders/$REL" ]] || fail "build link left behind"
    ! module_loaded kheaders_blk || built_in KHEADERS_BLK || fail "kheaders_blk left loaded"
    [[ -z "$(ls -A /run/kheaders 2>/dev/null | grep -vx .lock)" ]] || fail "left in /run/kheaders: $(ls -A /run/kheaders)"
}


# plant DIR: as an unprivileged user, headers at DIR that fail any compile.
plant() {
    as_nobody sh -c 'mkdir -p "$1/include/linux" "$1/include/generated" &&
        echo "#error planted by another user" >"$1/include/linux/kconfig.h" &&
        echo "#define UTS_RELEASE \"$2\"" >"$1/include/generated/utsrelease.h"' sh "$1" "$REL"
}

# planted_listing: what an attacker left in /tmp (links not followed), to
# check nothing touched it.
planted_listing() { find /tmp/kheaders-* -maxdepth 3 -printf '%p %y %u %l\n' 2>/dev/null | LC_ALL=C sort; }

test_zero_config_never_touches_installed_headers() {
    no_headers_installed
    local out b="/lib/modules/$REL/build"
    # A headers package: a real build directory. Refused, nothing left.
    mkdir -p "$b/include/linux"
    echo '/* package */' >"$b/include/linux/kconfig.h"
    # A record of a dangling link that is long gone must not survive this.
    mkdir -p /var/lib/kheaders-blk && echo /usr/src/months-old >"/var/lib/kheaders-blk/$REL.build-was"
    local rc=0
    out=$("$KM" 2>&1) || rc=$?
    expect_eq "$rc" 4 "exit status over a package's build directory ($out)"
    grep -q "^kheaders-mount: error: $b is a directory (a headers package?), not ours: bcc and bpftrace read it" <<<"$out" ||
        fail "package message: $out"
    echo "  refused: $out"
    expect_eq "$(cat "$b/include/linux/kconfig.h")" '/* package */' "the package's file"
    [[ ! -e "/var/lib/kheaders-blk/$REL.build-was" ]] || fail "stale record of an old link kept"
    left_nothing
    # A package's link (to a directory that is there): the same.
    mv "$b" "/usr/src/khb-pkg-$REL" && ln -s "/usr/src/khb-pkg-$REL" "$b"
    out=$("$KM" 2>&1) && fail "succeeded over a package's link: $out"
    grep -q "$b is a link to /usr/src/khb-pkg-$REL, not ours" <<<"$out" || fail "package link message: $out"
    expect_eq "$(readlink "$b")" "/usr/src/khb-pkg-$REL" "the package's link"
    left_nothing
    rm -rf "/usr/src/khb-pkg-$REL"
    # A dangling link (package removed) is replaced, and put back by --undo.
    ln -sfn /usr/src/linux-headers-gone "$b"
    "$KM"
    expect_eq "$(readlink "$b")" "/run/kheaders/$REL" "build link over the dangling one"
    "$KM" --undo
    expect_eq "$(readlink "$b")" /usr/src/linux-headers-gone "dangling link restored"
    # A link that cannot be followed is not dangling: a loop.
    ln -sfn "$b" "$b"
    out=$("$KM" 2>&1) && fail "replaced a link loop: $out"
    expect_eq "$(readlink "$b")" "$b" "the looping link"
    rm "$b"
}

test_zero_config_never_uses_a_mount_it_did_not_make() {
    no_headers_installed
    # Another filesystem at our mount point, with plausible headers.
    mkdir -p "/run/kheaders/$REL"
    mount -t tmpfs -o mode=0755 tmpfs "/run/kheaders/$REL"
    mkdir -p "/run/kheaders/$REL/include/generated" "/run/kheaders/$REL/include/linux"
    echo "#define UTS_RELEASE \"$REL\"" >"/run/kheaders/$REL/include/generated/utsrelease.h"
    local out
    out=$("$KM" 2>&1) && fail "used a tmpfs at its mount point: $out"
    grep -q "something other than /dev/kheaders0 is mounted at /run/kheaders/$REL" <<<"$out" || fail "message: $out"
    echo "  refused: $out"
    [[ ! -L "/lib/modules/$REL/build" ]] || fail "linked build to a mount that is not ours"
    out=$("$KM" --undo)
    grep -q "left /run/kheaders/$REL alone" <<<"$out" || fail "undo did not say it left the tmpfs: $out"
    expect_eq "$(mounts_at "/run/kheaders/$REL")" 1 "the tmpfs (undo must not unmount it)"
    umount "/run/kheaders/$REL"
    # A run dir that another user can write to.
    rm -rf /run/kheaders && mkdir -m 0777 /run/kheaders
    out=$("$KM" 2>&1) && fail "used a world-writable /run/kheaders: $out"
    grep -q "refusing /run/kheaders: mode 777" <<<"$out" || fail "message: $out"
    echo "  refused: $out"
    rm -rf /run/kheaders
    left_nothing
}

test_zero_config_ignores_what_others_plant_in_tmp() {
    no_headers_installed
    local before
    # /tmp/kheaders-<rel> as another user's directory, then as their link to
    # /etc: the helper succeeds through build, and touches neither.
    plant "/tmp/kheaders-$REL"
    before=$(planted_listing)
    "$KM" >/dev/null
    expect_eq "$(readlink "/lib/modules/$REL/build")" "/run/kheaders/$REL" "build link"
    "$KM" --undo >/dev/null
    expect_eq "$(planted_listing)" "$before" "the planted directory"
    rm -rf "/tmp/kheaders-$REL"
    as_nobody ln -s /etc "/tmp/kheaders-$REL"
    before="$(stat -c '%u %a %Y' /etc) $(mounts_at /etc)"
    "$KM" >/dev/null
    expect_eq "$(stat -c '%u %a %Y' /etc) $(mounts_at /etc)" "$before" "/etc and the mounts on it"
    "$KM" --undo >/dev/null
    expect_eq "$(readlink "/tmp/kheaders-$REL")" /etc "the planted link"
    rm "/tmp/kheaders-$REL"
    left_nothing
}

test_zero_config_concurrent_runs_give_one_mount() {
    no_headers_installed
    local a=/tmp/khb-run-a b=/tmp/khb-run-b pa pb
    "$KM" >"$a" 2>&1 & pa=$!
    "$KM" >"$b" 2>&1 & pb=$!
    wait "$pa" || fail "first run: $(cat "$a")"
    wait "$pb" || fail "second run: $(cat "$b")"
    expect_eq "$(mounts_at "/run/kheaders/$REL")" 1 "mounts after two concurrent runs"
    grep -q "already leads" "$a" "$b" || fail "neither run saw the other's work: $(cat "$a" "$b")"
    # A run waits for the lock's holder (here a stand-in), then does its work.
    flock "/run/kheaders/.lock" sleep 3 & pa=$!
    sleep 1
    local t0=$EPOCHREALTIME waited
    "$KM" --undo >/dev/null
    waited=$(echo "$EPOCHREALTIME - $t0" | bc)
    (( $(echo "$waited >= 1.5" | bc) )) || fail "--undo did not wait for the lock (${waited} s)"
    echo "  --undo waited ${waited} s for the lock's holder"
    wait "$pa"
    left_nothing
}

# The helper's own directories must be root's alone: a sticky one (as /tmp)
# still lets another user create the entry we are about to make.
test_zero_config_refuses_directories_others_can_write() {
    no_headers_installed
    local d=/tmp/khb-sticky out
    rm -rf "$d" && mkdir -m 1777 "$d"
    out=$(KHEADERS_RUNDIR="$d" "$KM" 2>&1) && fail "used a sticky run directory: $out"
    grep -q "refusing $d: mode 1777 lets other users create or replace entries in it" <<<"$out" ||
        fail "sticky run directory: $out"
    expect_eq "$(mounts_at "$d/$REL")" 0 "mounts in the sticky directory"
    ! module_loaded kheaders_blk || fail "kheaders_blk loaded after the refusal"
    # Below a sticky directory, in a root-only one, it works.
    mkdir -m 0755 "$d/run"
    out=$(KHEADERS_RUNDIR="$d/run" "$KM" 2>&1) || fail "a root-only directory under a sticky one: $out"
    KHEADERS_RUNDIR="$d/run" "$KM" --undo >/dev/null
    rm -rf "$d"
    left_nothing
}

# A run directory reached through a link (as /var/run): the mount is known by
# its resolved path, as mountinfo names it.
test_zero_config_run_directory_through_a_link() {
    no_headers_installed
    local out
    rm -rf /tmp/khb-var && mkdir -m 0755 /tmp/khb-var /tmp/khb-var/real && ln -s real /tmp/khb-var/run
    out=$(KHEADERS_RUNDIR=/tmp/khb-var/run/kh "$KM" 2>&1) || fail "through a link: $out"
    expect_eq "$(readlink "/lib/modules/$REL/build")" "/tmp/khb-var/real/kh/$REL" "build link"
    KHEADERS_RUNDIR=/tmp/khb-var/run/kh "$KM" --status >/dev/null || fail "--status through the link"
    out=$(KHEADERS_RUNDIR=/tmp/khb-var/run/kh "$KM" --undo 2>&1) || fail "--undo through the link: $out"
    expect_eq "$(mounts_at "/tmp/khb-var/real/kh/$REL")" 0 "mounts after --undo"
    rm -rf /tmp/khb-var
    left_nothing
}

# A module it loaded that cannot go yet (the disk is open) is remembered: the
# next --undo unloads it.
test_zero_config_undo_remembers_a_module_in_use() {
    no_headers_installed
    "$KM" >/dev/null
    exec 8</dev/kheaders0
    local out
    out=$("$KM" --undo 2>&1)
    exec 8<&-
    grep -q "kheaders_blk stays loaded (in use)" <<<"$out" || fail "first --undo: $out"
    module_loaded kheaders_blk || fail "unloaded while open"
    out=$("$KM" --undo 2>&1)
    grep -q "unloaded kheaders_blk" <<<"$out" || fail "second --undo: $out"
    left_nothing
}

test_zero_config_undo_after_a_crash() {
    no_headers_installed
    local b="/lib/modules/$REL/build"
    # A reboot after a crash: /run is empty, build still leads to our mount
    # point, the dangling link it replaced is recorded on disk.
    ln -s /usr/src/linux-headers-gone "$b"
    "$KM" >/dev/null
    umount "/run/kheaders/$REL" && rmmod kheaders_blk && rm -rf /run/kheaders
    "$KM" --undo
    expect_eq "$(readlink "$b")" /usr/src/linux-headers-gone "link restored after the crash"
    [[ ! -e "/var/lib/kheaders-blk/$REL.build-was" ]] || fail "used record kept"
    rm "$b"
    # A stale state file (its run crashed; a package came since): --undo
    # removes only what is ours.
    "$KM" >/dev/null
    umount "/run/kheaders/$REL"
    rm "$b" && mkdir -p "$b/include/linux" && echo '/* package */' >"$b/include/linux/kconfig.h"
    "$KM" --undo
    expect_eq "$(cat "$b/include/linux/kconfig.h")" '/* package */' "the package's file"
    rm -rf "$b"
    left_nothing
}

test_zero_config_says_what_is_wrong() {
    no_headers_installed
    local out
    out=$(as_nobody "$(readable_copy "$KM")" 2>&1) &&
        fail "ran as nobody: $out"
    grep -q "must be run as root" <<<"$out" || fail "not-root message: $out"
    rm "/lib/modules/$REL/extra/kheaders_blk.ko" && depmod -a "$REL"
    out=$("$KM" 2>&1) && fail "ran without the module: $out"
    grep -q "cannot load kheaders_blk for kernel $REL" <<<"$out" || fail "no-module message: $out"
    # The unit's condition: a boot without the module skips the unit.
    out=$("$KM" --available 2>&1) && fail "--available without the module: $out"
    grep -q "no kheaders_blk for kernel $REL (not loaded, not built in, not installed)" <<<"$out" || fail "--available: $out"
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
    grep -q "this kernel's squashfs has no lz4 support (CONFIG_SQUASHFS_LZ4)" <<<"$out" || fail "compressor message: $out"
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
    local cond start stop
    cond=$(sed -n 's/^ExecCondition=//p' "$root/kheaders.service")
    $cond || fail "ExecCondition says no with the module installed"
    start=$(sed -n 's/^ExecStart=//p' "$root/kheaders.service")
    stop=$(sed -n 's/^ExecStop=//p' "$root/kheaders.service")
    $start >/dev/null && [[ -f "/lib/modules/$REL/build/include/linux/kconfig.h" ]] || fail "ExecStart did not set up"
    $stop >/dev/null && [[ ! -e "/lib/modules/$REL/build" ]] || fail "ExecStop did not undo"
}

# bcc through the link kheaders-mount creates, with another user's headers
# at bcc's own kheaders path (a link to their directory): had bcc read them,
# the compile would fail on their #error.
test_bcc_kprobe_program_sees_events() {
    no_headers_installed
    plant /tmp/khb-evil
    as_nobody ln -s /tmp/khb-evil "/tmp/kheaders-$REL"
    local before out
    before=$(planted_listing)
    "$KM" >/dev/null
    out=$(bcc_count_reads 2>&1) || fail "bcc: $out"
    events_at_least 50 "$out"
    # It used the mount: it neither removed the planted path nor extracted.
    expect_eq "$(planted_listing)" "$before" "the planted link"
    ! module_loaded kheaders || fail "bcc loaded kheaders.ko"
    "$KM" --undo >/dev/null
    rm -rf /tmp/khb-evil "/tmp/kheaders-$REL"
}

# bcc through a dangling build link kheaders-mount replaced, run with a
# non-sticky TMPDIR (as Android's /data/local/tmp) where another user made
# kheaders-<rel> their own directory of headers.
test_bcc_through_a_replaced_dangling_link_with_an_open_tmpdir() {
    no_headers_installed
    local open=/tmp/khb-open before out
    mkdir -m 0777 "$open"
    plant "$open/kheaders-$REL"
    before=$(find "$open" -printf '%p %y %u %l\n' | LC_ALL=C sort)
    ln -s /usr/src/linux-headers-gone "/lib/modules/$REL/build"
    TMPDIR=$open "$KM" >/dev/null
    expect_eq "$(readlink "/lib/modules/$REL/build")" "/run/kheaders/$REL" "build link"
    out=$(TMPDIR=$open bcc_count_reads 2>&1) || fail "bcc: $out"
    events_at_least 50 "$out"
    expect_eq "$(find "$open" -printf '%p %y %u %l\n' | LC_ALL=C sort)" "$before" "the open TMPDIR"
    ! module_loaded kheaders || fail "bcc loaded kheaders.ko"
    "$KM" --undo >/dev/null
    expect_eq "$(readlink "/lib/modules/$REL/build")" /usr/src/linux-headers-gone "dangling link restored"
    rm -rf "$open" "/lib/modules/$REL/build"
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

# Through a dangling build link kheaders-mount replaced.
test_bpftrace_program_uses_a_struct_from_the_headers() {
    no_headers_installed
    ln -s /usr/src/linux-headers-gone "/lib/modules/$REL/build"
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
    # From the device, not from an extraction of its own.
    ! module_loaded kheaders || fail "bpftrace loaded kheaders.ko"
    [[ ! -e "/tmp/kheaders-$REL" ]] || fail "bpftrace extracted headers to /tmp/kheaders-$REL"
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

# Helpers for the VM test suites (sourced by run-suite.sh, inside the VM).
# The suites get their inputs from the host through these variables:
#   KHB_REPO          the repository (read-only in the VM)
#   KHB_KERNEL_TREE   the kernel build tree the VM runs
#   KHB_MODULE        kheaders_blk.ko to test (none if the kernel has it built in)
#   KHB_IMAGE         the image embedded in it (or in the kernel)
#   KHB_ARTIFACTS     other host-built inputs (sample module, bad modules)

# shellcheck source=../../scripts/kernel-cpp-flags.sh
source "$KHB_REPO/scripts/kernel-cpp-flags.sh"

fail() { echo "FAILED: $*" >&2; exit 1; }

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    [[ "$1" == "$2" ]] || fail "$3: got '$1', expected '$2'"
}

# expect_fails WHAT CMD...: CMD must exit non-zero; its message is shown.
expect_fails() {
    local what="$1"; shift
    local out
    if out="$("$@" 2>&1)"; then
        fail "$what: succeeded but must fail: $* -> $out"
    fi
    echo "  refused as expected: $what: $(tail -n1 <<<"$out")"
}

# A fresh tmpfs at $1 (unmounted by the caller or at the end of the VM run).
scratch_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o size=1G tmpfs "$1"
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# Fields of /sys/block/DISK/stat: read I/Os (1), sectors read (3), write
# I/Os (5).
reads_done() { awk '{print $1}' "/sys/block/$1/stat"; }
sectors_read() { awk '{print $3}' "/sys/block/$1/stat"; }
writes_done() { awk '{print $5}' "/sys/block/$1/stat"; }

module_loaded() { grep -q "^$1 " /proc/modules; }

# built_in OPTION: the running kernel has CONFIG_OPTION=y.
built_in() { grep -qx "CONFIG_$1=y" "$KHB_KERNEL_TREE/.config"; }

# Built in (CONFIG_KHEADERS_BLK=y), /dev/kheaders0 is there from boot and
# never goes away: loading checks it is there, unloading that it stayed.
load_kheaders_blk() {
    if built_in KHEADERS_BLK; then
        [[ -z "${1:-}" ]] || fail "kheaders_blk is built into this kernel: cannot load $1"
        [[ -b /dev/kheaders0 ]] || fail "/dev/kheaders0 missing (kheaders_blk is built in)"
        return 0
    fi
    insmod "${1:-$KHB_MODULE}"
    # devtmpfs creates the node as the disk is added; wait for udev anyway.
    udevadm settle 2>/dev/null || true
    [[ -b /dev/kheaders0 ]] || fail "/dev/kheaders0 missing after insmod"
}

unload_kheaders_blk() {
    if built_in KHEADERS_BLK; then
        [[ -b /dev/kheaders0 ]] || fail "built-in /dev/kheaders0 went away"
        return 0
    fi
    rmmod kheaders_blk
    [[ ! -e /dev/kheaders0 ]] || fail "/dev/kheaders0 still there after rmmod"
}

# Upstream's /sys/kernel/kheaders.tar.xz, the peer: kheaders.ko of the same
# build, or nothing to load with IKHEADERS=y.
load_upstream_kheaders() {
    built_in IKHEADERS || insmod "$KHB_KERNEL_TREE/kernel/kheaders.ko"
    [[ -s /sys/kernel/kheaders.tar.xz ]] || fail "/sys/kernel/kheaders.tar.xz missing or empty"
}
unload_upstream_kheaders() {
    built_in IKHEADERS || rmmod kheaders
}

MNT=/tmp/khb-mnt
REF=/tmp/khb-ref

# The oracle: upstream's tarball (kheaders.ko of the same build) extracted
# to $REF, once per VM run (tests share the VM).
upstream_reference() {
    mountpoint -q "$REF" && return 0
    scratch_tmpfs "$REF"
    load_upstream_kheaders
    tar -xJf /sys/kernel/kheaders.tar.xz -C "$REF"
    unload_upstream_kheaders
}

mount_kheaders() {
    mkdir -p "$MNT"
    mount -t squashfs -o ro /dev/kheaders0 "$MNT"
}

# leave_clean [MOUNTPOINT...]: for a test (it runs in a subshell), leave no
# mount or module behind for the next one, even when failing.
leave_clean() {
    local m q=""
    for m in "$MNT" "$@"; do q+=" $(printf '%q' "$m")"; done
    # Every command may fail (errexit is on in tests): each ends in || true.
    trap "for m in$q; do umount \"\$m\" 2>/dev/null || true; done; built_in KHEADERS_BLK || rmmod kheaders_blk 2>/dev/null || true" EXIT
}

# kmark WHAT: write a unique line to the kernel log and print it, to find
# what the kernel logged after it (lines_after, log_since).
kmark() {
    local m="khb-mark: $1 $$-$RANDOM$RANDOM"
    echo "$m" >/dev/kmsg
    echo "$m"
}

# lines_after MARK <LOG: the lines of LOG after the line holding MARK.
lines_after() { awk -v m="$1" 'seen; index($0, m) { seen = 1 }'; }

# log_since MARK: the kernel log after MARK.
log_since() { dmesg | lines_after "$1"; }

# klog_has PATTERN: a line of the kernel log matches PATTERN (grep's basic
# regex). Not `dmesg | grep -q`: grep's early exit kills dmesg with SIGPIPE
# once the log outgrows a pipe's buffer, and the test fails under pipefail.
klog_has() { grep -q -- "$1" <<<"$(dmesg)"; }

# boot_log_has PATTERN: the same in the kernel log as it was before the first
# test (saved by run-suite.sh): a boot line there cannot have scrolled away.
boot_log_has() { grep -q -- "$1" "$KHB_BOOT_LOG"; }

# readable_copy FILE: a copy of FILE that every user can read and run, for
# running it as another user: the checkout may sit in a directory only root
# can enter (a clone under /root or in a mktemp -d).
readable_copy() {
    local d
    d="$(mktemp -d /run/khb-copy.XXXXXX)"
    chmod 755 "$d"
    install -m 755 "$1" "$d/"
    echo "$d/${1##*/}"
}

debugfs() {
    mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
}

# kmemleak_check: scan for leaks (kmemleak reports objects older than 5 s,
# so wait first), print what it found, and fail if any of it is ours: a
# backtrace through kheaders_blk, through a module no longer loaded (a bare
# address), through the block layer or squashfs, or allocated by the tools
# the tests run. Reported leaks are cleared, so that each check sees only
# new ones. Only on kernels with kmemleak (the x86-debug variant).
kmemleak_check() {
    debugfs
    local k=/sys/kernel/debug/kmemleak report ours
    [[ -w $k ]] || fail "no kmemleak in this kernel"
    sleep 6
    echo scan >"$k" || fail "kmemleak scan refused (kmemleak disabled?)"
    report="$(cat "$k")"
    echo clear >"$k"
    [[ -z "$report" ]] && return 0
    ours="$(awk -v RS='unreferenced object' 'NR > 1 &&
        /kheaders_blk|\] 0x[0-9a-f]+\n|blk_|disk|squashfs|bdev|comm "(insmod|rmmod|modprobe|mount|umount|fail-nth|python3)"/ {
            printf "unreferenced object%s", $0 }' <<<"$report"$'\n')"
    echo "  kmemleak: $(grep -c '^unreferenced object' <<<"$report") suspected leaks, $(grep -c '^unreferenced object' <<<"$ours") attributable to the module"
    [[ -z "$ours" ]] || fail "kmemleak: leaks attributable to kheaders_blk:"$'\n'"$ours"
    sed 's/^/    (not ours) /' <<<"$report" | head -n 40
}

# Every entry below $1 as "path type mode symlink-target", sorted; the root is ".".
tree_listing() {
    (cd "$1" && find . -printf '%p %y %m %l\n' | LC_ALL=C sort)
}

# sha256 of every regular file below $1, sorted by path.
tree_checksums() {
    (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# /tmp as on a real machine: on the guest's overlay root, bcc's rename of
# its extraction directory into place fails (EXDEV). Mounted once. Inputs
# from the host that live in /tmp (a clone of the repository there, as in
# CI) are bound back in; the rest of the old /tmp is hidden.
tmp_on_tmpfs() {
    [[ "$(stat -f -c %T /tmp)" == tmpfs ]] && return 0
    local old=/run/khb-host-tmp v p top
    mkdir -p "$old" && mount --bind /tmp "$old"
    mount -t tmpfs -o mode=1777,size=512M tmpfs /tmp
    for v in KHB_REPO KHB_KERNEL_TREE KHB_MODULE KHB_IMAGE KHB_ARTIFACTS KHB_EDGE KHB_TOOL; do
        p="${!v:-}"
        [[ "$p" == /tmp/?* ]] || continue
        top="${p#/tmp/}" && top="${top%%/*}"
        mountpoint -q "/tmp/$top" && continue
        if [[ -d "$old/$top" ]]; then mkdir -p "/tmp/$top"; else touch "/tmp/$top"; fi
        mount --bind "$old/$top" "/tmp/$top"
    done
}

# A system where the module is installed but no headers are: /lib/modules
# replaced by a tmpfs holding only kheaders_blk.ko (and kheaders.ko, the
# peer), as `make modules_install` and depmod leave them.
no_headers_installed() {
    local REL
    REL="$(uname -r)"
    unset BCC_KERNEL_SOURCE BPFTRACE_KERNEL_SOURCE BPFTRACE_KERNEL_BUILD TMPDIR
    # What a test that failed before its undo left mounted: the disk's
    # mounts (they pin the module, failing every later test at the rmmod
    # below) and anything at the helper's mount point (a planted tmpfs).
    awk '$1 == "/dev/kheaders0" { print $2 }' /proc/mounts | tac | xargs -r -n1 umount
    while mountpoint -q "/run/kheaders/$REL" 2>/dev/null; do umount "/run/kheaders/$REL"; done
    module_loaded kheaders && rmmod kheaders
    module_loaded kheaders_blk && rmmod kheaders_blk
    mountpoint -q /lib/modules || mount -t tmpfs -o size=64M tmpfs /lib/modules
    tmp_on_tmpfs
    rm -rf "/lib/modules/$REL" /tmp/kheaders-* /run/kheaders /var/lib/kheaders-blk
    mkdir -p "/lib/modules/$REL/extra" "/lib/modules/$REL/kernel"
    # What modules_install leaves: the modules, and which are built in.
    [[ -z "$KHB_MODULE" ]] || cp "$KHB_MODULE" "/lib/modules/$REL/extra/"
    [[ ! -f "$KHB_KERNEL_TREE/kernel/kheaders.ko" ]] || cp "$KHB_KERNEL_TREE/kernel/kheaders.ko" "/lib/modules/$REL/kernel/"
    cp "$KHB_KERNEL_TREE/modules.builtin" "$KHB_KERNEL_TREE/modules.builtin.modinfo" "/lib/modules/$REL/"
    touch "/lib/modules/$REL/modules.order"
    depmod -a "$REL"
    mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
    mountpoint -q /sys/kernel/tracing || mount -t tracefs none /sys/kernel/tracing
}

# The clients' helpers (clients.sh, fallback.sh).
bcc_count_reads() { "$KHB_REPO/tests/vm/bcc-count-reads.py"; }

events_at_least() {   # N OUTPUT
    local n
    n=$(sed -n 's/^events \([0-9]*\)$/\1/p' <<<"$2")
    [[ -n "$n" && $n -ge $1 ]] || fail "expected at least $1 events: $2"
    echo "  $n events"
}

# mounts_at DIR: how many mounts are stacked at DIR.
mounts_at() { awk -v d="$1" '$5 == d { n++ } END { print n + 0 }' /proc/self/mountinfo; }

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

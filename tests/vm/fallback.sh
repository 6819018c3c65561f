# The fallback for kernels without kheaders_blk (issue 23): kheaders-mount
# turns the kernel's own kheaders tarball into an image once, keeps it in a
# root-only cache, and mounts it through a loop device; bcc and bpftrace
# use it with no configuration.
#
# Every test starts from a kernel with kheaders.ko installed (IKHEADERS=m)
# and no kheaders_blk: not loaded, not installed.

KM="$KHB_REPO/userspace/kheaders-mount"
REL="$(uname -r)"
CACHE=/var/cache/kheaders-blk
TARBALL="$KHB_KERNEL_TREE/kernel/kheaders_data.tar.xz"   # what the kernel serves

# without_kheaders_blk: no_headers_installed, minus our module; kheaders-image
# on root's PATH (installed beside kheaders-mount, as docs/usage.md says).
# The cache stays from test to test (a conversion costs minutes under TCG):
# the first test, by name, starts it empty.
without_kheaders_blk() {
    no_headers_installed
    rm -f "/lib/modules/$REL/extra/kheaders_blk.ko" && depmod -a "$REL"
    mkdir -p /tmp/khb-sbin && ln -sfn "$KHB_TOOL" /tmp/khb-sbin/kheaders-image
    PATH="/tmp/khb-sbin:$PATH"
    while mountpoint -q "$CACHE" 2>/dev/null; do umount "$CACHE"; done
}

cached_image() { ls "$CACHE"/"$REL"-*.img 2>/dev/null; }

# loops_over_cache: loop devices whose backing file is in the cache.
loops_over_cache() { losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v c="$CACHE/" 'index($2, c) == 1 { print $1 }'; }

# fallback_left_nothing: no mount, loop device, build link, kheaders.ko or
# fingerprint; the cache keeps its image.
fallback_left_nothing() {
    expect_eq "$(mounts_at "/run/kheaders/$REL")" 0 "mounts at /run/kheaders/$REL"
    expect_eq "$(loops_over_cache)" "" "loop devices over the cache"
    [[ ! -e "/lib/modules/$REL/build" && ! -L "/lib/modules/$REL/build" ]] || fail "build link left behind"
    ! module_loaded kheaders || fail "kheaders.ko left loaded"
    [[ -z "$(ls -A /run/kheaders 2>/dev/null | grep -vx .lock)" ]] || fail "left in /run/kheaders: $(ls -A /run/kheaders)"
}

test_fallback_at_first_use_converts_once_mounts_the_tarballs_headers_and_undoes() {
    without_kheaders_blk
    rm -rf "$CACHE"
    "$KM" --available || fail "--available says no, with kheaders.ko and kheaders-image there"
    local out img
    out=$("$KM" 2>&1) || fail "kheaders-mount: $out"
    echo "$out" | sed 's/^/  /'
    grep -q "converting /sys/kernel/kheaders.tar.xz into $CACHE/$REL-" <<<"$out" || fail "did not say it converts: $out"
    img=$(cached_image)
    [[ -f "$img" ]] || fail "no image in $CACHE: $(ls -la "$CACHE")"
    # Its name: the release and the SHA-256 of what the kernel served, which
    # is its build's kheaders_data.tar.xz.
    expect_eq "$img" "$CACHE/$REL-$(sha256sum <"$TARBALL" | cut -c1-64).squashfs.img" "cached image's name"
    expect_eq "$(stat -c '%u %a' "$CACHE")" "0 700" "cache directory owner and mode"
    ! module_loaded kheaders || fail "kheaders.ko still loaded after the conversion"
    # The mount: the tarball's entries, as the running kernel returns them.
    local opts t=/tmp/khb-tarball
    opts=$(awk -v d="/run/kheaders/$REL" '$5 == d { print $6 }' /proc/self/mountinfo)
    for o in ro nosuid nodev noexec; do
        [[ ",$opts," == *",$o,"* ]] || fail "mounted without $o: $opts"
    done
    expect_eq "$(readlink "/lib/modules/$REL/build")" "/run/kheaders/$REL" "build link"
    rm -rf "$t" && mkdir -p "$t" && tar -xJf "$TARBALL" -C "$t"
    diff -r --no-dereference "$t" "/run/kheaders/$REL" || fail "the mount differs from the kernel's tarball"
    expect_eq "$(tree_listing "/run/kheaders/$REL")" "$(tree_listing "$t")" "paths, types and modes"
    rm -rf "$t"
    # The fingerprint, and --status.
    local fp="/run/kheaders/$REL.fingerprint"
    expect_eq "$(cat "$fp")" "release=$REL
source=kheaders.tar.xz
image_sha256=$(sha256sum <"$img" | cut -c1-64)
tarball_sha256=$(sha256sum <"$TARBALL" | cut -c1-64)" "fingerprint"
    "$KM" --status | grep -qx "kheaders-mount: tarball_sha256=$(sha256sum <"$TARBALL" | cut -c1-64)" ||
        fail "--status lacks the tarball's hash: $("$KM" --status)"
    # A second run sees the mount; --undo takes back all but the cache.
    "$KM" | grep -q "already leads" || fail "second run did not see the mount"
    expect_eq "$(mounts_at "/run/kheaders/$REL")" 1 "mounts after a second run"
    "$KM" --undo
    fallback_left_nothing
    [[ -f "$img" ]] || fail "--undo removed the cached image"
    # A later run (a later boot) uses the image, with no conversion.
    local before
    before=$(stat -c '%i %Y' "$img")
    out=$("$KM" 2>&1) || fail "third run: $out"
    grep -q "using the image of /sys/kernel/kheaders.tar.xz made before: $img" <<<"$out" || fail "did not reuse: $out"
    ! grep -q converting <<<"$out" || fail "converted again: $out"
    expect_eq "$(stat -c '%i %Y' "$img")" "$before" "the cached image (inode, mtime)"
    [[ -f "/lib/modules/$REL/build/include/linux/kconfig.h" ]] || fail "no kconfig.h through the link"
    "$KM" --undo >/dev/null
    fallback_left_nothing
}

test_fallback_remakes_a_tampered_image_and_prunes_old_kernels() {
    without_kheaders_blk
    "$KM" >/dev/null
    "$KM" --undo >/dev/null
    local img out
    img=$(cached_image)
    # One byte changed inside the squashfs data.
    local byte
    byte=$(dd if="$img" bs=1 skip=4096 count=1 status=none | od -An -tu1)
    printf "\\$(printf %o $(( (byte + 1) % 256 )))" | dd of="$img" bs=1 seek=4096 conv=notrunc status=none
    # Images of a kernel that is gone, and an older one of this release.
    local gone="$CACHE/9.9.9-gone-$(printf '%064d' 0).img" old="$CACHE/$REL-$(printf '%064d' 1).img"
    cp "$img" "$gone" && cp "$img" "$old"
    out=$("$KM" 2>&1) || fail "kheaders-mount over a tampered image: $out"
    grep -q "$img does not match its recorded SHA-256" <<<"$out" || fail "did not notice the change: $out"
    grep -q "converting" <<<"$out" || fail "did not convert again: $out"
    expect_eq "$(sha256sum <"$img" | cut -c1-64)" "$(cat "$img.sha256")" "the new image's checksum"
    "$KHB_TOOL" verify "$img" "$TARBALL" >/dev/null || fail "the remade image differs from the tarball"
    [[ ! -e "$gone" && ! -e "$old" ]] || fail "not pruned: $(ls "$CACHE")"
    expect_eq "$(ls -A "$CACHE" | sort | tr '\n' ' ')" "${img##*/} ${img##*/}.sha256 " "cache contents"
    "$KM" --undo >/dev/null
    fallback_left_nothing
}

# A full cache, then a read-only one: one clear line, nothing half-written,
# nothing left mounted or loaded.
test_fallback_full_or_read_only_cache_says_so_and_leaves_nothing() {
    without_kheaders_blk
    mkdir -p "$CACHE"
    mount -t tmpfs -o size=64k,mode=0700 tmpfs "$CACHE"
    local out rc=0
    out=$("$KM" 2>&1 >/dev/null) || rc=$?
    expect_eq "$rc" 1 "exit status with a full cache ($out)"
    expect_eq "$(wc -l <<<"$out")" 1 "lines on stderr ($out)"
    grep -q "^kheaders-mount: error: converting /sys/kernel/kheaders.tar.xz failed: .*No space left on device" <<<"$out" ||
        fail "full-cache message: $out"
    echo "  full: $out"
    expect_eq "$(ls -A "$CACHE")" "" "what the full cache holds"
    fallback_left_nothing
    mount -o remount,ro "$CACHE"
    rc=0
    out=$("$KM" 2>&1 >/dev/null) || rc=$?
    expect_eq "$rc" 1 "exit status with a read-only cache ($out)"
    expect_eq "$(wc -l <<<"$out")" 1 "lines on stderr ($out)"
    grep -q "read-only" <<<"$out" || fail "read-only message: $out"
    echo "  read-only: $out"
    fallback_left_nothing
    umount "$CACHE"
    # The cache as another user's directory: refused, not used.
    mkdir -p "$CACHE" && chown nobody "$CACHE"
    out=$("$KM" 2>&1) && fail "used a cache owned by nobody: $out"
    grep -q "refusing $CACHE: owned by uid" <<<"$out" || fail "message: $out"
    chown root "$CACHE"
    fallback_left_nothing
}

test_fallback_bcc_and_bpftrace_with_no_configuration() {
    without_kheaders_blk
    "$KM" >/dev/null
    local out
    out=$(bcc_count_reads 2>&1) || fail "bcc: $out"
    events_at_least 50 "$out"
    [[ ! -e "/tmp/kheaders-$REL" ]] || fail "bcc extracted the tarball instead"
    ! module_loaded kheaders || fail "bcc loaded kheaders.ko"
    out=$(timeout 900 bpftrace -e '#include <linux/sched.h>
BEGIN { $t = (struct task_struct *)curtask; printf("pid %d\n", $t->pid); exit(); }' 2>&1) ||
        fail "bpftrace: $out"
    grep -q '^pid [0-9]' <<<"$out" || fail "bpftrace did not print the struct's field: $out"
    echo "  bpftrace: $(grep '^pid' <<<"$out")"
    "$KM" --undo >/dev/null
    fallback_left_nothing
}

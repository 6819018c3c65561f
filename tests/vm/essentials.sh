# What must hold for kheaders_blk on any architecture and page size, checked
# with nothing but busybox and bash in the guest (the arm64 VMs). The oracle
# for the mount is $KHB_MANIFEST: tests/vm/tree-manifest.sh of upstream's
# kheaders_data.tar.xz of the same build, extracted on the host. A clean
# kernel log is checked by run-suite.sh (each test) and vm-run.sh (the boot).
# The image is squashfs-xz, or EROFS (LZ4) on a kernel without squashfs
# (arm64-gki): kmod/Kbuild picks it from the kernel's config.

ESS_MNT=/tmp/khb-essentials

# The filesystem and block compression kmod/Kbuild should have chosen for
# this kernel, from its config (not from the image: that is under test).
ess_fs() { grep -q '^CONFIG_SQUASHFS_XZ=y' "$KHB_KERNEL_TREE/.config" && echo squashfs || echo erofs; }
ess_comp() { [[ $(ess_fs) == squashfs ]] && echo xz || echo lz4; }
ess_mount() {   # OPTIONS: mount our disk at $ESS_MNT
    mkdir -p "$ESS_MNT"
    mount -t "$(ess_fs)" -o "$1" /dev/kheaders0 "$ESS_MNT"
}

# PAGE_SIZE of the running kernel, from the auxiliary vector (AT_PAGESZ = 6):
# busybox has no getconf.
kernel_page_size() {
    od -An -v -tu8 /proc/self/auxv |
        awk '{ for (i = 1; i <= NF; i++) v[n++] = $i }
             END { for (i = 0; i < n; i += 2) if (v[i] == 6) print v[i + 1] }'
}

# The page size the kernel was configured with.
configured_page_size() {
    local c="$KHB_KERNEL_TREE/.config"
    if grep -q '^CONFIG_ARM64_16K_PAGES=y' "$c"; then echo 16384
    elif grep -q '^CONFIG_ARM64_64K_PAGES=y' "$c"; then echo 65536
    else echo 4096; fi
}

test_kernel_runs_with_its_configured_page_size() {
    expect_eq "$(kernel_page_size)" "$(configured_page_size)" "AT_PAGESZ"
}

test_module_loads() {
    leave_clean "$ESS_MNT"
    load_kheaders_blk
    module_loaded kheaders_blk || fail "kheaders_blk not in /proc/modules"
    klog_has "kheaders_blk: /dev/kheaders0: headers of $(uname -r), $(ess_fs)-$(ess_comp) " ||
        fail "no load line naming the device and kernel: $(dmesg | grep kheaders_blk | tail -n2)"
    expect_eq "$(cat /sys/block/kheaders0/ro)" 1 "/sys/block/kheaders0/ro"
    unload_kheaders_blk
}

test_device_size_and_block_size_follow_the_page_size() {
    leave_clean "$ESS_MNT"
    load_kheaders_blk
    local page size q=/sys/block/kheaders0/queue
    page=$(kernel_page_size)
    size=$(stat -c %s "$KHB_IMAGE")
    expect_eq "$(( size % page ))" 0 "image size modulo the page size (the host tool pads to 64 KiB)"
    expect_eq "$(blockdev --getsize64 /dev/kheaders0)" "$size" "device size"
    expect_eq "$(cat "$q/logical_block_size")" "$page" "logical_block_size"
    expect_eq "$(cat "$q/physical_block_size")" "$page" "physical_block_size"
    expect_eq "$(blockdev --getss /dev/kheaders0)" "$page" "BLKSSZGET"
    cmp /dev/kheaders0 "$KHB_IMAGE" || fail "device bytes differ from the image"
    unload_kheaders_blk
}

test_mount_matches_upstream_manifest() {
    leave_clean "$ESS_MNT"
    load_kheaders_blk
    ess_mount ro
    grep -q "^/dev/kheaders0 $ESS_MNT $(ess_fs) ro[ ,]" /proc/mounts ||
        fail "not a read-only $(ess_fs) mount: $(grep kheaders0 /proc/mounts)"
    "$KHB_REPO/tests/vm/tree-manifest.sh" "$ESS_MNT" >/tmp/khb-mount.manifest
    diff "$KHB_MANIFEST" /tmp/khb-mount.manifest >/tmp/khb-manifest.diff ||
        fail "the mount differs from upstream's tarball: $(head -n 20 /tmp/khb-manifest.diff)"
    local files
    files=$(grep -c '^sha256 ' "$KHB_MANIFEST")
    [[ $files -gt 5000 ]] || fail "only $files files in the manifest"
    grep -q " ./arch/arm64/include/asm/page.h\$" "$KHB_MANIFEST" || fail "no arm64 headers in the manifest"
    echo "  identical: $files files, $(grep -c '^mode 4' "$KHB_MANIFEST") directories, $(grep -c '^link ' "$KHB_MANIFEST") symlinks"
    umount "$ESS_MNT"
    unload_kheaders_blk
}

test_writes_fail() {
    leave_clean "$ESS_MNT"
    load_kheaders_blk
    local before page
    page=$(kernel_page_size)
    before=$(sha256sum </dev/kheaders0)
    expect_fails "buffered write" dd if=/dev/zero of=/dev/kheaders0 bs="$page" count=1 conv=notrunc status=none
    expect_fails "O_DIRECT write" dd if=/dev/zero of=/dev/kheaders0 bs="$page" count=1 oflag=direct conv=notrunc status=none
    expect_fails "BLKROSET to read-write" blockdev --setrw /dev/kheaders0
    expect_eq "$(blockdev --getro /dev/kheaders0)" 1 "BLKROGET after --setrw"
    # Asked for read-write, busybox mount falls back to read-only.
    ess_mount rw
    grep -q "^/dev/kheaders0 $ESS_MNT $(ess_fs) ro[ ,]" /proc/mounts ||
        fail "not mounted read-only: $(grep kheaders0 /proc/mounts)"
    expect_fails "create a file in the mount" touch "$ESS_MNT/new-file"
    expect_fails "append to a file in the mount" sh -c "echo x >>'$ESS_MNT/include/linux/kconfig.h'"
    umount "$ESS_MNT"
    drop_caches
    expect_eq "$(sha256sum </dev/kheaders0)" "$before" "device bytes after the write attempts"
    unload_kheaders_blk
}

test_rmmod_refused_while_mounted() {
    leave_clean "$ESS_MNT"
    load_kheaders_blk
    ess_mount ro
    expect_fails "rmmod while mounted" rmmod kheaders_blk
    module_loaded kheaders_blk || fail "module gone although rmmod failed"
    cat "$ESS_MNT/include/linux/kconfig.h" >/dev/null || fail "mount broken after the refused rmmod"
    umount "$ESS_MNT"
    unload_kheaders_blk
    [[ ! -d /sys/block/kheaders0 ]] || fail "/sys/block/kheaders0 still there"
}

# The helper under busybox: it reads the disk's format from its superblock
# (EROFS on arm64-gki), mounts it, links build to it, and --undo takes it all
# back.
test_kheaders_mount_finds_the_format_and_undoes() {
    leave_clean "$ESS_MNT" "/run/kheaders/$(uname -r)"
    load_kheaders_blk
    local rel out km="$KHB_REPO/userspace/kheaders-mount"
    rel=$(uname -r)
    command -v flock >/dev/null || PATH="$KHB_ARTIFACTS/bin:$PATH"   # scripts/test.sh
    out=$("$km" 2>&1) || fail "kheaders-mount: $out"
    grep -q "^/dev/kheaders0 /run/kheaders/$rel $(ess_fs) ro,nosuid,nodev,noexec[ ,]" /proc/mounts ||
        fail "not mounted as $(ess_fs) ro,nosuid,nodev,noexec: $(grep kheaders0 /proc/mounts)"
    expect_eq "$(readlink "/lib/modules/$rel/build")" "/run/kheaders/$rel" "build link"
    grep -q "UTS_RELEASE \"$rel\"" "/lib/modules/$rel/build/include/generated/utsrelease.h" ||
        fail "utsrelease.h through the build link does not name $rel"
    out=$("$km" --undo 2>&1) || fail "kheaders-mount --undo: $out"
    ! grep -q kheaders0 /proc/mounts || fail "still mounted after --undo: $(grep kheaders0 /proc/mounts)"
    [[ ! -L "/lib/modules/$rel/build" ]] || fail "build link left after --undo"
    unload_kheaders_blk
}

# A kernel with kheaders_blk built in around a corrupted image
# (scripts/corrupt-builtin-kernel.sh): it boots, says why in one line, and
# has no /dev/kheaders0.

test_corrupted_builtin_image_gives_one_line_and_no_device() {
    built_in KHEADERS_BLK || fail "this kernel does not have CONFIG_KHEADERS_BLK=y"
    local lines
    lines="$(dmesg | grep 'kheaders_blk' || true)"
    echo "  $lines"
    grep -q 'kheaders_blk: embedded image is corrupted (crc32 [0-9a-f]*, recorded [0-9a-f]*)' <<<"$lines" ||
        fail "no clear boot line: $lines"
    expect_eq "$(wc -l <<<"$lines")" 1 "kheaders_blk lines in the boot log"
    [[ ! -e /dev/kheaders0 && ! -e /sys/block/kheaders0 ]] || fail "/dev/kheaders0 exists"
    ! grep -qw kheaders0 /proc/partitions || fail "kheaders0 in /proc/partitions"
    # The rest of the kernel is fine: its peer serves the headers.
    [[ -s /sys/kernel/kheaders.tar.xz ]] || fail "/sys/kernel/kheaders.tar.xz missing"
}

test_kheaders_mount_says_why_there_is_no_device() {
    no_headers_installed
    local out
    out=$("$KHB_REPO/userspace/kheaders-mount" 2>&1) && fail "kheaders-mount succeeded: $out"
    echo "  $out"
    grep -q "kheaders_blk is built into this kernel but /sys/block/kheaders0/dev is missing: its boot log line says why" <<<"$out" ||
        fail "unclear message: $out"
}

# kheaders_blk in the running kernel (issue 4). The oracle is upstream's own
# /sys/kernel/kheaders.tar.xz from kheaders.ko of the same build, extracted in
# this VM (upstream_reference in lib.sh); the mount is read through the
# kernel's squashfs.

image_bytes() { stat -c %s "$KHB_IMAGE"; }
# The device's logical block size is the page size.
page_bytes() { getconf PAGESIZE; }

test_modinfo_and_load_message() {
    local info
    info="$(modinfo "$KHB_MODULE")"
    grep -q '^name: *kheaders_blk$' <<<"$info" || fail "modinfo name: $info"
    grep -q '^license: *GPL$' <<<"$info" || fail "modinfo license"
    grep -q '^author: *.' <<<"$info" || fail "modinfo author"
    grep -q '^description: *.*/dev/kheaders0' <<<"$info" || fail "modinfo description"
    load_kheaders_blk
    klog_has "kheaders_blk: /dev/kheaders0: headers of $(uname -r), squashfs-xz" ||
        fail "no load line naming the device and kernel: $(dmesg | grep kheaders_blk | tail -n2)"
    expect_eq "$(cat /sys/block/kheaders0/ro)" 1 "/sys/block/kheaders0/ro"
    unload_kheaders_blk
}

test_mount_matches_upstream_tarball() {
    upstream_reference
    load_kheaders_blk
    mount_kheaders
    diff <(tree_listing "$REF") <(tree_listing "$MNT") >/tmp/listing.diff ||
        fail "paths/types/modes/targets differ: $(head -n 20 /tmp/listing.diff)"
    diff -r --no-dereference "$REF" "$MNT" >/tmp/content.diff ||
        fail "contents differ: $(head -n 20 /tmp/content.diff)"
    echo "  identical: $(find "$MNT" -type f | wc -l) files, $(find "$MNT" -type d | wc -l) directories, $(find "$MNT" -type l | wc -l) symlinks"
    # The host tool's own comparison agrees (image file vs the same extraction).
    "$KHB_TOOL" verify "$KHB_IMAGE" "$REF" >/dev/null
    umount "$MNT"
    unload_kheaders_blk
}

test_device_bytes_equal_image_file() {
    load_kheaders_blk
    local size dev_size
    size=$(image_bytes)
    dev_size=$(blockdev --getsize64 /dev/kheaders0)
    local bs
    bs=$(page_bytes)
    expect_eq "$dev_size" "$(( (size + bs - 1) / bs * bs ))" "device size (image rounded up to a page, $bs bytes)"
    cmp -n "$size" /dev/kheaders0 "$KHB_IMAGE" || fail "buffered read differs from the image"
    dd if=/dev/kheaders0 bs=1M iflag=direct status=none | head -c "$size" | cmp - "$KHB_IMAGE" ||
        fail "O_DIRECT read differs from the image"
    [[ -z "$(tail -c +"$((size + 1))" /dev/kheaders0 | tr -d '\0')" ]] || fail "padding is not zeros"
    unload_kheaders_blk
}

# Queue settings (issue 9, issue 22): a bio-based disk (no I/O scheduler to
# choose), page-sized blocks, limits that take the largest squashfs block
# (1 MiB) at any alignment in one I/O, statistics and RWF_NOWAIT as blk-mq
# disks have them.
test_queue_settings() {
    load_kheaders_blk
    local q=/sys/block/kheaders0/queue bs
    bs=$(page_bytes)
    # blk-mq disks have mq/ (hardware queues) and a scheduler attribute.
    [[ ! -e /sys/block/kheaders0/mq ]] || fail "/sys/block/kheaders0/mq exists: the disk is blk-mq, not bio-based"
    [[ ! -e "$q/scheduler" ]] || fail "a scheduler attribute on a bio-based queue: $(cat "$q/scheduler")"
    expect_eq "$(cat "$q/logical_block_size")" "$bs" "logical_block_size (getconf PAGESIZE)"
    expect_eq "$(cat "$q/physical_block_size")" "$bs" "physical_block_size"
    expect_eq "$(blockdev --getss /dev/kheaders0)" "$bs" "BLKSSZGET"
    expect_eq "$(cat "$q/max_hw_sectors_kb")" "$(( (1048576 + bs) / 1024 ))" "max_hw_sectors_kb (1 MiB + one page)"
    expect_eq "$(cat "$q/max_sectors_kb")" "$(( (1048576 + bs) / 1024 ))" "max_sectors_kb"
    expect_eq "$(cat "$q/max_segments")" 65535 "max_segments"
    expect_eq "$(cat "$q/max_segment_size")" 4294967295 "max_segment_size"
    expect_eq "$(cat "$q/rotational")" 0 "rotational"
    expect_eq "$(cat "$q/iostats")" 1 "iostats"
    # BLK_FEAT_NOWAIT: without it an RWF_NOWAIT read fails with EOPNOTSUPP.
    python3 -c '
import mmap, os, sys
bs = int(sys.argv[1])
fd = os.open("/dev/kheaders0", os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 16 * bs)
assert os.preadv(fd, [buf], 0, os.RWF_NOWAIT) == 16 * bs
with open(sys.argv[2], "rb") as f:
    assert buf[:] == f.read(16 * bs)
' "$bs" "$KHB_IMAGE" || fail "O_DIRECT read with RWF_NOWAIT"
    # With iostats off, reads are not counted; on again, they are.
    local ios
    echo 0 >"$q/iostats"
    ios=$(reads_done kheaders0)
    dd if=/dev/kheaders0 of=/dev/null bs="$bs" count=4 iflag=direct status=none
    expect_eq "$(reads_done kheaders0)" "$ios" "reads counted with iostats 0"
    echo 1 >"$q/iostats"
    dd if=/dev/kheaders0 of=/dev/null bs="$bs" count=4 iflag=direct status=none
    expect_eq "$(reads_done kheaders0)" "$((ios + 4))" "reads counted with iostats 1 (4 O_DIRECT reads)"
    unload_kheaders_blk
}


# squashfs_bio_read() reads a block with one bio of every page it touches:
# for a 1 MiB block, up to 1 MiB + one page. The big-block module's image
# (scripts/test.sh) has 1 MiB blocks and a 1 MiB file of nearly random
# bytes: one block of about 1 MiB, stored or barely compressed.
test_largest_squashfs_read_is_one_request() {
    local ios sectors
    if built_in KHEADERS_BLK; then
        echo "  built in: no module with 1 MiB blocks to load; O_DIRECT only"
    else
        load_kheaders_blk "$KHB_ARTIFACTS/big-block/kmod/kheaders_blk.ko"
        mount_kheaders
        local f="$MNT/include/random-1M.h"
        stat "$f" >/dev/null   # the metadata, read before counting
        ios=$(reads_done kheaders0) sectors=$(sectors_read kheaders0)
        cat "$f" >/dev/null
        ios=$(( $(reads_done kheaders0) - ios )) sectors=$(( $(sectors_read kheaders0) - sectors ))
        echo "  a 1 MiB file in one 1 MiB block: $ios read I/O, $((sectors / 2)) KiB"
        expect_eq "$ios" 1 "read I/Os for the file's one block"
        [[ $((sectors * 512)) -ge $((1000 * 1024)) ]] || fail "the block's I/O carried only $((sectors / 2)) KiB"
        umount "$MNT"
        unload_kheaders_blk
    fi
    # O_DIRECT: one bio of 256 pages (BIO_MAX_VECS), one I/O.
    load_kheaders_blk
    ios=$(reads_done kheaders0)
    dd if=/dev/kheaders0 of=/dev/null bs=1M count=1 iflag=direct status=none
    expect_eq "$(( $(reads_done kheaders0) - ios ))" 1 "read I/Os for one O_DIRECT read of 1 MiB"
    unload_kheaders_blk
}

test_writes_fail_and_change_nothing() {
    load_kheaders_blk
    local before
    before=$(dd if=/dev/kheaders0 bs=1M iflag=direct status=none | sha256sum)
    expect_fails "buffered write" dd if=/dev/zero of=/dev/kheaders0 bs="$(page_bytes)" count=1 conv=notrunc status=none
    expect_fails "O_DIRECT write" dd if=/dev/zero of=/dev/kheaders0 bs="$(page_bytes)" count=1 oflag=direct conv=notrunc status=none
    expect_fails "pwrite at 1 MiB" python3 -c '
import os
fd = os.open("/dev/kheaders0", os.O_RDWR)
os.pwrite(fd, b"x" * 4096, 1 << 20)'
    expect_fails "shared writable mmap" python3 -c '
import mmap, os
fd = os.open("/dev/kheaders0", os.O_RDWR)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[0:4] = b"XXXX"'
    expect_fails "discard (BLKDISCARD)" blkdiscard /dev/kheaders0
    expect_fails "zero-out (BLKZEROOUT)" blkdiscard -z /dev/kheaders0
    expect_fails "BLKROSET to read-write" blockdev --setrw /dev/kheaders0
    expect_eq "$(blockdev --getro /dev/kheaders0)" 1 "BLKROGET after --setrw"
    expect_eq "$(cat /sys/block/kheaders0/ro)" 1 "/sys/block/kheaders0/ro after --setrw"
    blockdev --setro /dev/kheaders0   # asking for read-only is harmless
    # A read-write mount request ends up read-only, and writes through it fail.
    mkdir -p "$MNT"
    mount -t squashfs -o rw /dev/kheaders0 "$MNT" 2>/dev/null || mount_kheaders
    findmnt -no OPTIONS "$MNT" | grep -qw ro || fail "mounted read-write: $(findmnt -no OPTIONS "$MNT")"
    expect_fails "create a file in the mount" touch "$MNT/new-file"
    expect_fails "write a file in the mount" sh -c "echo x >> '$MNT/include/linux/sched.h'"
    umount "$MNT"
    drop_caches
    expect_eq "$(dd if=/dev/kheaders0 bs=1M iflag=direct status=none | sha256sum)" "$before" "device bytes after the write attempts"
    cmp -n "$(image_bytes)" /dev/kheaders0 "$KHB_IMAGE" || fail "device differs from the image after the write attempts"
    unload_kheaders_blk
}

test_writes_of_an_in_kernel_user_fail_and_change_nothing() {
    # bio_check_ro() only warns: a dm-linear target over the device opens it
    # for writing and passes WRITE requests down to the driver.
    load_kheaders_blk
    local before sectors
    before=$(dd if=/dev/kheaders0 bs=1M iflag=direct status=none | sha256sum)
    sectors=$(blockdev --getsz /dev/kheaders0)
    DM_DISABLE_UDEV=1 dmsetup create khb-linear --table "0 $sectors linear /dev/kheaders0 0"
    [[ -b /dev/mapper/khb-linear ]] || fail "no /dev/mapper/khb-linear"
    expect_fails "O_DIRECT write through dm-linear" \
        dd if=/dev/zero of=/dev/mapper/khb-linear bs=4096 count=1 oflag=direct conv=notrunc status=none
    expect_fails "buffered write through dm-linear" \
        sh -c 'dd if=/dev/zero of=/dev/mapper/khb-linear bs=4096 count=1 conv=notrunc,fsync status=none'
    klog_has 'kheaders_blk: /dev/kheaders0 is read-only: failing request op 1 ' ||
        fail "the driver did not refuse a WRITE: $(dmesg | grep -i kheaders | tail -n 3)"
    # Reads through it still work.
    cmp -n 65536 /dev/mapper/khb-linear "$KHB_IMAGE" || fail "read through dm-linear differs"
    DM_DISABLE_UDEV=1 dmsetup remove khb-linear
    drop_caches
    expect_eq "$(dd if=/dev/kheaders0 bs=1M iflag=direct status=none | sha256sum)" "$before" "device bytes after the dm writes"
    unload_kheaders_blk
}

test_rmmod_refused_while_mounted_or_open() {
    load_kheaders_blk
    mount_kheaders
    expect_fails "rmmod while mounted" rmmod kheaders_blk
    module_loaded kheaders_blk || fail "module gone although rmmod failed"
    cat "$MNT/include/linux/kconfig.h" >/dev/null || fail "mount broken after refused rmmod"
    umount "$MNT"
    exec 3</dev/kheaders0
    expect_fails "rmmod while the device is open" rmmod kheaders_blk
    head -c 4096 <&3 | cmp -n 4096 - "$KHB_IMAGE" || fail "open device broken after refused rmmod"
    exec 3<&-
    unload_kheaders_blk
    [[ ! -d /sys/block/kheaders0 ]] || fail "/sys/block/kheaders0 still there"
}

test_twenty_load_mount_read_unload_cycles() {
    upstream_reference
    local files=(include/linux/sched.h include/linux/kconfig.h include/generated/autoconf.h
                 arch/x86/include/asm/ptrace.h include/dt-bindings/input/linux-event-codes.h)
    local want
    want="$(cd "$REF" && sha256sum "${files[@]}")"
    for i in $(seq 1 20); do
        load_kheaders_blk
        mount_kheaders
        expect_eq "$(cd "$MNT" && sha256sum "${files[@]}")" "$want" "checksums in cycle $i"
        umount "$MNT"
        unload_kheaders_blk
    done
    echo "  20 cycles done"
}

test_concurrent_readers_get_identical_bytes() {
    upstream_reference
    load_kheaders_blk
    mount_kheaders
    drop_caches
    local list=/tmp/khb-files
    (cd "$MNT" && find . -type f) >"$list"
    local orders=(
        "LC_ALL=C sort"
        "LC_ALL=C sort -r"
        "shuf --random-source=/tmp/khb-files"
        "awk '{print length(\$0), \$0}' | sort -n | cut -d' ' -f2-"
        "tac"
        "rev | LC_ALL=C sort | rev"
    )
    local i pids=()
    for i in "${!orders[@]}"; do
        (cd "$MNT" && eval "${orders[$i]}" <"$list" | xargs -d '\n' sha256sum | LC_ALL=C sort -k2 >"/tmp/khb-reader-$i") &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || fail "reader $i failed"
    done
    local want
    want="$(tree_checksums "$REF" | LC_ALL=C sort -k2)"
    for i in "${!orders[@]}"; do
        [[ "$(cat "/tmp/khb-reader-$i")" == "$want" ]] || fail "reader $i (${orders[$i]}) saw different bytes"
    done
    echo "  ${#orders[@]} concurrent readers x $(wc -l <"$list") files: identical"
    umount "$MNT"
    unload_kheaders_blk
}

test_odd_requests_end_in_errors_not_crashes() {
    load_kheaders_blk
    local bs blocks
    bs=$(page_bytes)
    blocks=$(( $(blockdev --getsize64 /dev/kheaders0) / bs ))
    expect_eq "$(dd if=/dev/kheaders0 bs="$bs" skip="$blocks" count=1 status=none | wc -c)" 0 "read past the end"
    expect_eq "$(dd if=/dev/kheaders0 bs="$bs" skip=$((blocks - 1)) count=2 status=none | wc -c)" "$bs" "read across the end"
    expect_fails "O_DIRECT read at an offset that is not block-aligned" python3 -c '
import mmap, os
fd = os.open("/dev/kheaders0", os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 2 * mmap.PAGESIZE)
os.preadv(fd, [buf], 512)'
    expect_fails "O_DIRECT read smaller than a logical block" python3 -c '
import mmap, os
fd = os.open("/dev/kheaders0", os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, mmap.PAGESIZE)
os.preadv(fd, [memoryview(buf)[:512]], 0)'
    # An empty flush (fsync) succeeds in the block layer without reaching
    # the driver: the disk has no write cache. No write is counted.
    local writes
    writes=$(writes_done kheaders0)
    python3 -c 'import os; os.fsync(os.open("/dev/kheaders0", os.O_RDONLY))' || fail "fsync of the device"
    expect_eq "$(writes_done kheaders0)" "$writes" "write I/Os after fsync"
    expect_fails "ioctl the device does not know" python3 -c '
import fcntl, os
fd = os.open("/dev/kheaders0", os.O_RDONLY)
fcntl.ioctl(fd, 0x4b01, 0)'
    cmp -n "$(image_bytes)" /dev/kheaders0 "$KHB_IMAGE" || fail "device changed"
    unload_kheaders_blk
}

test_corrupted_image_refuses_to_load() {
    expect_fails "insmod with a corrupted image" insmod "$KHB_ARTIFACTS/corrupt-data/kmod/kheaders_blk.ko"
    klog_has 'kheaders_blk: embedded image is corrupted (crc32 ' ||
        fail "no clear log line: $(dmesg | tail -n 3)"
    expect_fails "insmod with an image lacking the trailer" insmod "$KHB_ARTIFACTS/no-trailer/kmod/kheaders_blk.ko"
    klog_has 'kheaders_blk: embedded image has no kheaders-image trailer' ||
        fail "no clear log line: $(dmesg | tail -n 3)"
    ! module_loaded kheaders_blk || fail "module loaded anyway"
    [[ ! -e /dev/kheaders0 ]] || fail "/dev/kheaders0 exists"
    # The good module still loads afterwards.
    load_kheaders_blk
    unload_kheaders_blk
}

test_image_of_another_release_loads_with_a_warning() {
    load_kheaders_blk "$KHB_ARTIFACTS/other-release/kmod/kheaders_blk.ko"
    klog_has "kheaders_blk: the embedded headers are of kernel 9.9.9-other, this module was built for $(uname -r)" ||
        fail "no release warning: $(dmesg | grep kheaders_blk | tail -n 2)"
    mount_kheaders
    expect_eq "$(cat "$MNT/include/generated/utsrelease.h")" '#define UTS_RELEASE "9.9.9-other"' "the small image's content"
    umount "$MNT"
    unload_kheaders_blk
    # The image of this very build gives no such warning.
    local before
    before=$(dmesg | grep -c 'embedded headers are of kernel' || true)
    load_kheaders_blk
    unload_kheaders_blk
    expect_eq "$(dmesg | grep -c 'embedded headers are of kernel' || true)" "$before" "warnings for the matching image"
}

# Once complete() has woken rmmod, the module's text may be freed while the
# task that called it is still inside complete() (preempted there): so
# khb_free_disk must reach complete() by a jump (a tail call), never by a
# call that returns into the module (kmod/helpers.c).
test_free_disk_jumps_to_complete() {
    local obj=${KHB_MODULE:-$KHB_KERNEL_TREE/vmlinux} objdump=objdump refs
    [[ $(uname -m) == aarch64 ]] && objdump=aarch64-linux-gnu-objdump
    # Each instruction that refers to complete (directly, or by the relocation
    # on the next line of an unlinked module), as its mnemonic.
    refs=$("$objdump" -dr --no-show-raw-insn --disassemble=khb_free_disk "$obj" | awk -F'\t' '
        /^ +[0-9a-f]+:\t/ { split($2, w, " "); insn = w[1] }
        /<complete>|R_[A-Z0-9_]+\tcomplete([-+]|$)/ { print insn }')
    echo "  khb_free_disk reaches complete() by: ${refs:-nothing}"
    case "$refs" in
        jmp|b) ;;
        *) fail "khb_free_disk must jump to complete() once (a tail call), found: ${refs:-no reference}" ;;
    esac
}

# kheaders_blk built into the kernel (CONFIG_KHEADERS_BLK=y, issue 10), with
# its peer built in too (IKHEADERS=y): the oracle is the running kernel's own
# /sys/kernel/kheaders.tar.xz, the image the one the kernel build packed.

# What the built-in driver shares with the module: the device's behaviour,
# from module.sh, harness.sh and clients.sh as they are (lib.sh's load/unload helpers
# only check that the built-in disk is there). Loading, unloading, modinfo and
# bad .ko files are the modular kernel's tests.
HERE_BUILTIN="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE_BUILTIN/harness.sh"
source "$HERE_BUILTIN/module.sh"
source "$HERE_BUILTIN/clients.sh"
SHARED_TESTS=(
    test_runs_the_kernel_just_built
    test_mount_matches_upstream_tarball
    test_device_bytes_equal_image_file
    test_queue_settings
    test_largest_squashfs_read_is_one_request
    test_writes_fail_and_change_nothing
    test_writes_of_an_in_kernel_user_fail_and_change_nothing
    test_concurrent_readers_get_identical_bytes
    test_odd_requests_end_in_errors_not_crashes
    test_zero_config_mounts_where_tools_look_and_undoes
    test_zero_config_never_touches_installed_headers
    test_boot_unit_and_udev_rule
    test_bcc_kprobe_program_sees_events
    test_bpftrace_program_uses_a_struct_from_the_headers
)
# Not repeated here (the modular kernel runs them; what they check does not
# depend on how the driver is built, and each costs about a minute of TCG):
# test_stock_bcc_tool_reports, test_bcc_with_the_upstream_tarball_peer.
for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
    if [[ " ${SHARED_TESTS[*]} " != *" $t "* ]]; then
        echo "n/a  $t (the modular kernel's test)"
        unset -f "$t"
    fi
done

test_device_is_there_before_init_starts() {
    built_in KHEADERS_BLK || fail "this kernel does not have CONFIG_KHEADERS_BLK=y"
    ! module_loaded kheaders_blk || fail "kheaders_blk is a loaded module, not built in"
    grep -q '/kheaders_blk/kheaders_blk.ko$' "$KHB_KERNEL_TREE/modules.builtin" ||
        fail "kheaders_blk not in modules.builtin"
    grep -qw __kheaders_blk_init /proc/kallsyms || fail "no __kheaders_blk_init initcall in the kernel"
    [[ -b /dev/kheaders0 ]] || fail "/dev/kheaders0 missing"
    expect_eq "$(cat /sys/block/kheaders0/ro)" 1 "/sys/block/kheaders0/ro"
    # The disk was added (and its devtmpfs node created) by an initcall,
    # before the kernel ran init.
    local log added init
    log="$(dmesg)"
    added=$(grep -n "kheaders_blk: /dev/kheaders0: headers of $(uname -r), squashfs-xz" <<<"$log" | cut -d: -f1)
    init=$(grep -n 'Run .* as init process' <<<"$log" | head -n1 | cut -d: -f1)
    [[ -n "$added" ]] || fail "no boot line for /dev/kheaders0: $(grep kheaders_blk <<<"$log")"
    [[ -n "$init" ]] || fail "no 'Run ... as init process' line in the kernel log"
    [[ $added -lt $init ]] || fail "/dev/kheaders0 was added after init started (log lines $added, $init)"
    echo "  $(sed -n "${added}p" <<<"$log")"
}

test_never_removed() {
    load_kheaders_blk
    expect_fails "rmmod of the built-in driver" rmmod kheaders_blk
    [[ -b /dev/kheaders0 ]] || fail "/dev/kheaders0 gone"
    # Init memory is freed by now; the image is not init memory.
    boot_log_has 'Freeing unused kernel image (initmem) memory' || fail "init memory not freed yet?"
    cmp -n "$(image_bytes)" /dev/kheaders0 "$KHB_IMAGE" || fail "device differs from the image"
}

# The image's bytes sit in vmlinux's .rodata (never freed; write-protected
# at boot with STRICT_KERNEL_RWX), not in an init section.
test_image_lives_in_vmlinux_rodata() {
    boot_log_has 'Write protecting the kernel read-only data' || fail "read-only data not write-protected"
    python3 - "$KHB_KERNEL_TREE/vmlinux" "$KHB_IMAGE" <<'PY'
import struct, sys
elf = open(sys.argv[1], "rb").read()
img = open(sys.argv[2], "rb").read()
at = elf.find(img[:4096])
assert at >= 0, "the image is not in vmlinux"
assert elf.find(img[:4096], at + 1) < 0, "the image is in vmlinux twice"
assert elf[at:at + len(img)] == img, "vmlinux holds a different image"
shoff, = struct.unpack_from("<Q", elf, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3a)
def section(i):  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
    return struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
names = section(shstrndx)[4]
SHT_NOBITS = 8
for i in range(shnum):
    name, kind, _, _, off, size = section(i)
    if kind != SHT_NOBITS and off <= at < off + size:
        sname = elf[names + name:elf.index(b"\0", names + name)].decode()
        assert sname == ".rodata", f"the image is in {sname}"
        assert at + len(img) <= off + size
        print(f"  {len(img)} bytes at {sname}+{at - off:#x}")
        break
else:
    raise SystemExit("the image is in no section")
PY
}

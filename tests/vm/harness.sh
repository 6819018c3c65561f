# Harness checks (issue 3): the VM runs the kernel we built, the upstream
# kheaders.ko works in it, and out-of-tree Rust modules load and unload.

test_runs_the_kernel_just_built() {
    expect_eq "$(uname -r)" "$(cat "$KHB_KERNEL_TREE/include/config/kernel.release")" "uname -r"
    # UTS_VERSION carries the build number and time: identifies this build.
    local built
    built="$(sed -n 's/^#define UTS_VERSION "\(.*\)"$/\1/p' "$KHB_KERNEL_TREE/include/generated/utsversion.h")"
    expect_eq "$(uname -v)" "$built" "uname -v"
    grep -q '^CONFIG_RUST=y' "$KHB_KERNEL_TREE/.config" || fail "kernel built without CONFIG_RUST"
}

test_upstream_kheaders_extracts_to_tmpfs() {
    insmod "$KHB_KERNEL_TREE/kernel/kheaders.ko"
    [[ -s /sys/kernel/kheaders.tar.xz ]] || fail "/sys/kernel/kheaders.tar.xz missing or empty"
    cmp /sys/kernel/kheaders.tar.xz "$KHB_KERNEL_TREE/kernel/kheaders_data.tar.xz" ||
        fail "served tarball differs from the build's kernel/kheaders_data.tar.xz"
    local dir=/tmp/harness-kheaders
    scratch_tmpfs "$dir"
    tar -xJf /sys/kernel/kheaders.tar.xz -C "$dir"
    local files expected
    files=$(find "$dir" -type f | wc -l)
    expected=$(tar -tvJf "$KHB_KERNEL_TREE/kernel/kheaders_data.tar.xz" | grep -c '^-')
    expect_eq "$files" "$expected" "files extracted from /sys/kernel/kheaders.tar.xz"
    [[ $files -gt 5000 ]] || fail "only $files headers"
    [[ -f "$dir/include/linux/sched.h" ]] || fail "include/linux/sched.h not extracted"
    umount "$dir"
    rmmod kheaders
    [[ ! -e /sys/kernel/kheaders.tar.xz ]] || fail "tarball still present after rmmod"
}

test_out_of_tree_rust_module_loads_and_unloads() {
    insmod "$KHB_ARTIFACTS/khb_sample.ko"
    module_loaded khb_sample || fail "khb_sample not in /proc/modules"
    klog_has 'khb_sample: loaded' || fail "no load message"
    rmmod khb_sample
    ! module_loaded khb_sample || fail "khb_sample still loaded"
    klog_has 'khb_sample: unloaded' || fail "no unload message"
}

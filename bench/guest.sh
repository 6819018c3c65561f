#!/usr/bin/env bash
# In the VM: time and memory of the tarball and the device approaches.
#
#   guest.sh OUT_DIR KHEADERS_KO REPS NAME=KHEADERS_BLK_KO...
#
# (KHB_REPO and KHB_KERNEL_TREE in the environment, for the bcc part.)
#
# Every run starts from nothing loaded and dropped caches and times each
# stage a user waits for: load the module, make the headers readable (mount,
# or extract the tarball to tmpfs), read. Appends "metric variant rep value"
# lines to OUT_DIR/results.tsv (metrics <workload>:load|ready|read).
set -euo pipefail
out="$1" kheaders_ko="$2" reps="$3"
shift 3
set_file="$out/compile-set.txt"
results="$out/results.tsv"
: >"$results"

# shellcheck source=../tests/vm/lib.sh
source "$KHB_REPO/tests/vm/lib.sh"   # drop_caches, no_headers_installed, tmp_on_tmpfs
tmp_on_tmpfs   # before anything is made in /tmp (the bcc part needs it)
mnt=/tmp/bench-mnt
mkdir -p "$mnt"
record() { echo "$*" >>"$results"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
secs() { awk -v us="$1" 'BEGIN {printf "%.3f", us / 1e6}'; }
meminfo() { awk -v k="$1:" '$1 == k {print $2 * 1024}' /proc/meminfo; }

# --- the two approaches: load, make ready, tear down ---------------------
device_load() { insmod "$1"; }
device_ready() { mount -t squashfs -o ro /dev/kheaders0 "$mnt"; }
device_down() { umount "$mnt"; rmmod kheaders_blk; }
tarball_load() { insmod "$kheaders_ko"; }
tarball_ready() {
    mount -t tmpfs -o size=1G tmpfs "$mnt"
    tar -xJf /sys/kernel/kheaders.tar.xz -C "$mnt"
}
tarball_down() { umount "$mnt"; rmmod kheaders; }

read_first_header() { cat "$mnt/include/linux/sched.h" >/dev/null; }
read_compile_set() { (cd "$mnt" && xargs -d '\n' cat <"$set_file" >/dev/null); }
read_everything() { (cd "$mnt" && find . -type f -print0 | xargs -0 cat >/dev/null); }

# timed WORKLOAD VARIANT APPROACH ARG READ_FN
timed() {
    local workload="$1" variant="$2" how="$3" arg="$4" read="$5" r t0 t1 t2 t3
    for r in $(seq 1 "$reps"); do
        drop_caches
        t0=$(now_us)
        "${how}_load" $arg
        t1=$(now_us)
        "${how}_ready"
        t2=$(now_us)
        "$read"
        t3=$(now_us)
        record "$workload:load" "$variant" "$r" "$(secs $((t1 - t0)))"
        record "$workload:ready" "$variant" "$r" "$(secs $((t2 - t1)))"
        record "$workload:read" "$variant" "$r" "$(secs $((t3 - t2)))"
        "${how}_down"
    done
}

# memory VARIANT APPROACH ARG MODULE_NAME: deltas against nothing loaded,
# after a full read and after dropping caches again.
memory() {
    local variant="$1" how="$2" arg="$3" mod="$4"
    drop_caches
    local avail0 cached0 shmem0 slab0
    avail0=$(meminfo MemAvailable) cached0=$(meminfo Cached) shmem0=$(meminfo Shmem) slab0=$(meminfo SUnreclaim)
    "${how}_load" $arg
    "${how}_ready"
    read_everything
    record mem_available_used "$variant" 1 $((avail0 - $(meminfo MemAvailable)))
    record mem_cached "$variant" 1 $(($(meminfo Cached) - cached0))
    record mem_shmem "$variant" 1 $(($(meminfo Shmem) - shmem0))
    record mem_slab_unreclaimable "$variant" 1 $(($(meminfo SUnreclaim) - slab0))
    record mem_module "$variant" 1 "$(cat "/sys/module/$mod/coresize")"
    drop_caches
    record mem_available_used_dropped "$variant" 1 $((avail0 - $(meminfo MemAvailable)))
    record mem_cached_dropped "$variant" 1 $(($(meminfo Cached) - cached0))
    "${how}_down"
}

echo "bench: $(nproc) CPUs, $(( $(meminfo MemTotal) / 1048576 )) MiB, $(wc -l <"$set_file") headers in the compile set"
record vm_cpus all 1 "$(nproc)"

echo "bench: tarball (kheaders.ko + tar -xJf to tmpfs)"
timed first_header tar.xz tarball "" read_first_header
timed compile_set tar.xz tarball "" read_compile_set
timed full_read tar.xz tarball "" read_everything
memory tar.xz tarball "" kheaders

# bcc, from nothing loaded to the first event of the same kprobe program
# (tests/vm/bcc-count-reads.py): bcc's own tarball extraction against
# kheaders-mount. /tmp is a tmpfs (tmp_on_tmpfs, above), as bcc extracts there.
bcc_first_event() {   # APPROACH: tarball | device
    local how="$1" r t0 t1 avail0 shmem0 rel
    rel=$(uname -r)
    for r in $(seq 1 "$reps"); do
        no_headers_installed
        drop_caches
        avail0=$(meminfo MemAvailable) shmem0=$(meminfo Shmem)
        t0=$(now_us)
        [[ $how == device ]] && "$KHB_REPO/userspace/kheaders-mount" >/dev/null
        "$KHB_REPO/tests/vm/bcc-count-reads.py" --first >/dev/null
        t1=$(now_us)
        record bcc_first_event "$how" "$r" "$(secs $((t1 - t0)))"
        record bcc_left_bytes "$how" "$r" "$(du -sb "/tmp/kheaders-$rel" 2>/dev/null | cut -f1 || echo 0)"
        record bcc_left_shmem "$how" "$r" $(($(meminfo Shmem) - shmem0))
        drop_caches
        record bcc_mem_used_dropped "$how" "$r" $((avail0 - $(meminfo MemAvailable)))
        if [[ $how == device ]]; then "$KHB_REPO/userspace/kheaders-mount" --undo >/dev/null; fi
        rm -rf "/tmp/kheaders-$rel"
    done
}
if [[ -n "${KHB_BCC_MODULE:-}" ]]; then
    KHB_MODULE="$KHB_BCC_MODULE"
    echo "bench: bcc, time to the first event (tarball, then device)"
    bcc_first_event tarball
    bcc_first_event device
fi

for v in "$@"; do
    name="${v%%=*}" ko="${v#*=}"
    echo "bench: device, $name"
    timed first_header "$name" device "$ko" read_first_header
    timed compile_set "$name" device "$ko" read_compile_set
    timed full_read "$name" device "$ko" read_everything
    memory "$name" device "$ko" kheaders_blk
done
echo "bench: done"

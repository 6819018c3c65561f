#!/usr/bin/env bash
# In the VM: time and memory of the tarball and the device approaches.
#
#   guest.sh OUT_DIR KHEADERS_KO REPS NAME=KHEADERS_BLK_KO...
#
# Every timed run starts from nothing loaded and dropped caches, and covers
# what a user would do: load the module, then mount (device) or extract to
# tmpfs (tarball), then read. Appends "metric variant rep value" lines to
# OUT_DIR/results.tsv.
set -euo pipefail
out="$1" kheaders_ko="$2" reps="$3"
shift 3
set_file="$out/compile-set.txt"
results="$out/results.tsv"
: >"$results"
mnt=/tmp/bench-mnt
mkdir -p "$mnt"

record() { echo "$*" >>"$results"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
secs() { awk -v us="$1" 'BEGIN {printf "%.3f", us / 1e6}'; }
meminfo() { awk -v k="$1:" '$1 == k {print $2 * 1024}' /proc/meminfo; }

# --- the two approaches: set up, read, tear down -------------------------
device_up() {   # $1: kheaders_blk.ko
    insmod "$1"
    mount -t squashfs -o ro /dev/kheaders0 "$mnt"
}
device_down() { umount "$mnt"; rmmod kheaders_blk; }
tarball_up() {
    insmod "$kheaders_ko"
    mount -t tmpfs -o size=1G tmpfs "$mnt"
    tar -xJf /sys/kernel/kheaders.tar.xz -C "$mnt"
}
tarball_down() { umount "$mnt"; rmmod kheaders; }

read_first_header() { cat "$mnt/include/linux/sched.h" >/dev/null; }
read_compile_set() { (cd "$mnt" && xargs -d '\n' cat <"$set_file" >/dev/null); }
read_everything() { (cd "$mnt" && find . -type f -print0 | xargs -0 cat >/dev/null); }

# timed NAME VARIANT UP_FN UP_ARG READ_FN DOWN_FN
timed() {
    local metric="$1" variant="$2" up="$3" arg="$4" read="$5" down="$6" r t0 t1
    for r in $(seq 1 "$reps"); do
        drop_caches
        t0=$(now_us)
        "$up" $arg
        "$read"
        t1=$(now_us)
        record "$metric" "$variant" "$r" "$(secs $((t1 - t0)))"
        "$down"
    done
}

# memory VARIANT UP_FN UP_ARG MODULE_NAME DOWN_FN: deltas against nothing
# loaded, after a full read and after dropping caches again.
memory() {
    local variant="$1" up="$2" arg="$3" mod="$4" down="$5"
    drop_caches
    local avail0 cached0 shmem0 slab0
    avail0=$(meminfo MemAvailable) cached0=$(meminfo Cached) shmem0=$(meminfo Shmem) slab0=$(meminfo SUnreclaim)
    "$up" $arg
    read_everything
    record mem_available_used "$variant" 1 $((avail0 - $(meminfo MemAvailable)))
    record mem_cached "$variant" 1 $(($(meminfo Cached) - cached0))
    record mem_shmem "$variant" 1 $(($(meminfo Shmem) - shmem0))
    record mem_slab_unreclaimable "$variant" 1 $(($(meminfo SUnreclaim) - slab0))
    record mem_module "$variant" 1 "$(cat "/sys/module/$mod/coresize")"
    drop_caches
    record mem_available_used_dropped "$variant" 1 $((avail0 - $(meminfo MemAvailable)))
    record mem_cached_dropped "$variant" 1 $(($(meminfo Cached) - cached0))
    "$down"
}

echo "bench: $(nproc) CPUs, $(( $(meminfo MemTotal) / 1048576 )) MiB, $(wc -l <"$set_file") headers in the compile set"
record vm_cpus all 1 "$(nproc)"

echo "bench: tarball (kheaders.ko + tar -xJf to tmpfs)"
timed first_header tar.xz tarball_up "" read_first_header tarball_down
timed compile_set tar.xz tarball_up "" read_compile_set tarball_down
timed full_read tar.xz tarball_up "" read_everything tarball_down
memory tar.xz tarball_up "" kheaders tarball_down

for v in "$@"; do
    name="${v%%=*}" ko="${v#*=}"
    echo "bench: device, $name blocks"
    timed first_header "$name" device_up "$ko" read_first_header device_down
    timed compile_set "$name" device_up "$ko" read_compile_set device_down
    timed full_read "$name" device_up "$ko" read_everything device_down
    memory "$name" device_up "$ko" kheaders_blk device_down
done
echo "bench: done"

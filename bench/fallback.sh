#!/usr/bin/env bash
# What the fallback costs (kheaders-mount on a kernel without kheaders_blk:
# the kernel's kheaders tarball converted once into a cached image, then
# loop-mounted; docs/usage.md), measured natively on this machine's kernel
# against what bcc does with the same tarball (extract it into a tmpfs, then
# read), in the same run, cold (drop_caches), median of N:
#
#   conversion   kheaders-image pack --format F of the tarball, 2 jobs
#   first use    conversion + loop mount + a compile set (a tracing program's
#                headers, bench/programs/trace.c, read in gcc's order)
#   later use    loop mount of the cached image + the same compile set
#   memory       page cache and tmpfs left after the compile set and
#                drop_caches (the extraction's tmpfs cannot be dropped)
#
#   bench/fallback.sh [--reps N] [--tree KERNEL_TREE] [--formats "squashfs erofs"]
#
# The tarball sits in /dev/shm (the kernel serves it from memory); the cache
# is a directory on the root filesystem, as /var/cache/kheaders-blk is.
# Needs root (loop devices, mount, drop_caches).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$REPO_ROOT"

reps=5 formats="squashfs erofs" tree=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --tree) tree="$(readlink -f "$2")"; shift 2 ;;
        --formats) formats="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "bench/fallback.sh: unknown option $1 (see --help)" ;;
    esac
done
[[ $(id -u) == 0 ]] || die "bench/fallback.sh needs root (loop devices, mount, drop_caches)"
for f in $formats; do
    grep -qw "$f" /proc/filesystems || modprobe "$f" 2>/dev/null || die "this kernel has no $f"
done
bench_tree_and_tool "$tree"

shm="$(mktemp -d /dev/shm/khb-fallback.XXXXXX)"
cache="$(mktemp -d /var/tmp/khb-fallback-cache.XXXXXX)"
mnt="$(mktemp -d /tmp/khb-fallback-mnt.XXXXXX)"
cleanup() {
    mountpoint -q "$mnt" && umount "$mnt"
    rm -rf "$shm" "$cache" "$mnt"
}
trap cleanup EXIT
tarball="$shm/kheaders.tar.xz"
cp "$KTREE/kernel/kheaders_data.tar.xz" "$tarball"

ref="$shm/ref" && mkdir -p "$ref" && tar -xJf "$tarball" -C "$ref"
set="$shm/set"
compile_set "$ref" x86 bench/programs/trace.c >"$set" && [[ -s "$set" ]] || die "gcc -M of bench/programs/trace.c found no headers"
rm -rf "$ref"

# resident_kib: page cache (tmpfs included) and buffers, after drop_caches.
resident_kib() { drop_caches; awk '/^(Cached|Buffers):/ {s += $2} END {print s}' /proc/meminfo; }
now() { echo "$EPOCHREALTIME"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", (b - a) * 1000}'; }
read_set() { (cd "$mnt" && xargs -d '\n' cat <"$set" >/dev/null); }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

declare -A t
# bcc's way: extract into a tmpfs, read the set; what stays is the tmpfs.
for r in $(seq 1 "$reps"); do
    base=$(resident_kib)
    t0=$(now)
    mount -t tmpfs -o size=512M tmpfs "$mnt"
    tar -xJf "$tarball" -C "$mnt"
    read_set
    t1=$(now)
    t[extract]+="$(ms "$t0" "$t1") "
    t[extract_mem]+="$(( $(resident_kib) - base )) "
    umount "$mnt"
done
for f in $formats; do
    img="$cache/image.$f.img"
    for r in $(seq 1 "$reps"); do
        rm -f "$img"
        drop_caches
        t0=$(now)
        "$TOOL" pack -q -j 2 --format "$f" "$tarball" -o "$img"
        t1=$(now)
        mount -t "$f" -o loop,ro "$img" "$mnt"
        read_set
        t2=$(now)
        umount "$mnt"
        t[$f.convert]+="$(ms "$t0" "$t1") " t[$f.first]+="$(ms "$t0" "$t2") "
    done
    for r in $(seq 1 "$reps"); do
        base=$(resident_kib)
        t0=$(now)
        mount -t "$f" -o loop,ro "$img" "$mnt"
        read_set
        t1=$(now)
        t[$f.later]+="$(ms "$t0" "$t1") "
        t[$f.mem]+="$(( $(resident_kib) - base )) "
        umount "$mnt"
    done
    t[$f.size]=$(stat -c %s "$img")
done

med() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
x=$(med extract)
echo
echo "fallback, native on $(uname -r): $(wc -l <"$set") headers of bench/programs/trace.c, tarball $(stat -c %s "$tarball") B, cold, median of $reps"
printf '| %-30s | %12s | %10s | %14s | %14s | %18s |\n' "" "conversion" "first use" "later use" "image" "resident after"
printf '|%s|%s|%s|%s|%s|%s|\n' "--------------------------------" "-------------:" "-----------:" "---------------:" "---------------:" "-------------------:"
printf '| %-30s | %12s | %10s | %14s | %14s | %15s KiB |\n' "bcc: extract + read" "" "$x ms" "$x ms" "" "$(med extract_mem)"
for f in $formats; do
    c=$(med "$f.convert") a=$(med "$f.first") l=$(med "$f.later")
    printf '| %-30s | %9s ms | %7s ms | %5s ms %5.1fx | %12s B | %15s KiB |\n' "ours, $f: convert, loop" "$c" "$a" \
        "$l" "$(awk -v x="$x" -v l="$l" 'BEGIN {print x / l}')" "${t[$f.size]}" "$(med "$f.mem")"
done

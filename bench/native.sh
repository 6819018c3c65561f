#!/usr/bin/env bash
# Native benchmarks: filesystem-side performance measured on this machine's
# own kernel, where timings mean something (the VM tier runs under QEMU TCG).
#
#   bench/native.sh [--reps N] [--images "includes directory erofs mkfs.erofs"]
#                   [--tree KERNEL_TREE] [--kernel-sets N] [--devices "zram loop"]
#                   [--out DIR] [--update-docs]
#
# The headers are those of KERNEL_TREE (a kernel build tree holding upstream's
# kernel/kheaders_data.tar.xz; default: the x86 test kernel). Images:
#   includes    ours, squashfs-xz, include-graph layout (what the module embeds);
#               includes-COMPRESSOR: with --compressor COMPRESSOR (zstd, lz4, lz4hc)
#   directory   ours, squashfs-xz, directory order (directory-COMPRESSOR likewise)
#   erofs       ours, --format erofs (lz4hc, 32 KiB pclusters, fragments);
#               erofs-SIZE: with SIZE pclusters (-b SIZE)
#   mkfs.erofs  Debian's mkfs.erofs -zlz4hc -C65536 -Eztailpacking of the
#               extracted tarball (its erofs-utils 1.5 writes no fragments)
#   mksquashfs-COMPRESSOR  Debian's mksquashfs of the extracted tarball
#               (xz; zstd at level 19; lz4hc), 128 KiB blocks, directory order
# Ours take more suffixes, in any order: a compressor and a block (squashfs)
# or pcluster (EROFS) size, e.g. includes-zstd-64K, erofs-16K.
# --frontier: the size/speed frontier (docs/benchmarks.md, "Frontier"): a
# fixed set of our layouts x compressors x block sizes and the peers, on
# zram, with a plot of speed against size (docs/benchmarks-frontier.png).
# Each is served by a RAM block device standing in for /dev/kheaders0,
# read-only, with 4 KiB logical blocks:
#   zram   bio-based: completes each read in the submitter's context, as a
#          RAM disk does (the closer stand-in; it stores the image's pages
#          compressed with its own lzo-rle, which compressed data barely
#          shrinks, so reading them costs little);
#   loop   over the image in /dev/shm: each request goes to a worker thread,
#          which roughly doubles the times. The peer is upstream's kheaders_data.tar.xz of
# the same build, also in RAM, extracted to a fresh tmpfs. Each run starts
# cold (drop_caches; nothing mounted or extracted) and covers what a user
# waits for: extract + read, or mount + read. Workloads:
#   first header    include/linux/sched.h
#   compile sets    the headers `gcc -M` lists for bench/programs/*.c and for
#                   N kernel sources picked at random (fixed seed), read in
#                   the order gcc opens them
#   every file      find order (directory order on the mount)
#   every file, 2   the same list read by 2 parallel readers (xargs -P2)
# Read amplification = bytes the device read / image size (field 3 of
# /sys/block/<dev>/stat): deterministic, unlike the times.
# Needs root (zram, losetup, mount, drop_caches).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
cd "$REPO_ROOT"

reps=5 images="includes directory erofs mkfs.erofs" kernel_sets=20 devices="zram loop" out="$KHB_CACHE/bench/native"
update_docs="" tree="" frontier=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --images) images="$2"; shift 2 ;;
        --tree) tree="$(readlink -f "$2")"; shift 2 ;;
        --kernel-sets) kernel_sets="$2"; shift 2 ;;
        --devices) devices="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --update-docs) update_docs=1; shift ;;
        --frontier) frontier=1; devices=zram
                    images="includes includes-xz-64K includes-xz-256K includes-zstd includes-lz4hc directory"
                    images+=" directory-zstd erofs-16K erofs erofs-64K"
                    images+=" mksquashfs-xz mksquashfs-zstd mksquashfs-lz4hc mkfs.erofs"
                    shift ;;
        -h|--help) sed -n '2,/^source/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "bench/native.sh: unknown option $1 (see --help)" ;;
    esac
done
[[ $(id -u) == 0 ]] || die "bench/native.sh needs root (loop devices, mount, drop_caches)"
# fs_of IMAGE_NAME: the filesystem it is mounted as.
fs_of() { case "$1" in erofs|erofs-*|mkfs.erofs) echo erofs ;;
                       includes|directory|includes-*|directory-*|mksquashfs-*) echo squashfs ;;
          *) die "--images: unknown image '$1' (includes, directory and erofs with -COMPRESSOR and -SIZE; mksquashfs-COMPRESSOR; mkfs.erofs)" ;; esac; }
# pack_args IMAGE_NAME: kheaders-image pack's options for one of ours.
pack_args() {
    local words w
    IFS=- read -r -a words <<<"$1"
    case "${words[0]}" in erofs) echo "--format erofs" ;; *) echo "--layout ${words[0]}" ;; esac
    for w in "${words[@]:1}"; do
        if [[ "$w" =~ ^[0-9]+[KM]?$ ]]; then echo "-b $w"; else echo "--compressor $w"; fi
    done
}
for i in $images; do
    fs="$(fs_of "$i")"
    grep -qw "$fs" /proc/filesystems || modprobe "$fs" 2>/dev/null || die "this kernel has no $fs (image $i)"
done

say "setup, kernel, tool"
scripts/setup.sh
bench_tree_and_tool "$tree"

rm -rf "$out" && mkdir -p "$out/sets"
shm="$(mktemp -d /dev/shm/khb-bench.XXXXXX)"
mnt="$(mktemp -d /tmp/khb-bench-mnt.XXXXXX)"
loops=() zrams=()
cleanup() {
    mountpoint -q "$mnt" && umount "$mnt"
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    for z in "${zrams[@]}"; do echo "$z" >/sys/class/zram-control/hot_remove 2>/dev/null || true; done
    rm -rf "$shm" "$mnt"
}
trap cleanup EXIT

results="$out/results.tsv"
: >"$results"
record() { echo "$*" >>"$results"; }   # metric variant rep value

cp "$KTREE/kernel/kheaders_data.tar.xz" "$shm/kheaders.tar.xz"
record size tar.xz 1 "$(stat -c %s "$shm/kheaders.tar.xz")"
for i in $images; do
    case "$i" in
        includes*|directory*|erofs*)
            # shellcheck disable=SC2046 # one option per word
            "$TOOL" pack -q $(pack_args "$i") "$KTREE" -o "$shm/$i.img" || die "packing $i failed" ;;
        mksquashfs-*)
            c="${i#mksquashfs-}" opts=(-comp "$c")
            [[ "$c" == zstd ]] && opts+=(-Xcompression-level 19)
            [[ "$c" == lz4hc ]] && opts=(-comp lz4 -Xhc)
            x="$(mktemp -d "$shm/x.XXXXXX")" && tar -xJf "$shm/kheaders.tar.xz" -C "$x" &&
                mksquashfs "$x" "$shm/$i.img" "${opts[@]}" -noappend -all-root -quiet -no-progress >/dev/null ||
                die "mksquashfs of the tarball failed"
            rm -rf "$x" ;;
        mkfs.erofs)
            x="$(mktemp -d "$shm/x.XXXXXX")" && tar -xJf "$shm/kheaders.tar.xz" -C "$x" &&
                mkfs.erofs -zlz4hc -C65536 -Eztailpacking -T0 --all-root "$shm/$i.img" "$x" >/dev/null 2>&1 ||
                die "mkfs.erofs of the tarball failed"
            rm -rf "$x" ;;
    esac
    record size "$i" 1 "$(stat -c %s "$shm/$i.img")"
done

say "compile sets: gcc -M of bench/programs/*.c and $kernel_sets kernel sources"
ref="$shm/ref" && mkdir -p "$ref" && tar -xJf "$shm/kheaders.tar.xz" -C "$ref"
record files all 1 "$(find "$ref" -type f | wc -l)"
# set_of NAME SOURCE [EXTRA FLAGS]: its compile set, in $out/sets/NAME.
set_of() {
    local name="$1" src="$2"
    shift 2
    compile_set "$ref" x86 "$src" "$@" >"$out/sets/$name" || true
    [[ -s "$out/sets/$name" ]] || { rm -f "$out/sets/$name"; return 1; }
}
for p in bench/programs/*.c; do
    n="$(basename "$p" .c)"
    set_of "$n" "$p" || die "gcc -M of $p found no headers"
    record set_files "$n" 1 "$(wc -l <"$out/sets/$n")"
done
src="$(readlink -f "$KTREE/source")"
(cd "$src" && find drivers fs net kernel mm sound block crypto security lib -name '*.c' | LC_ALL=C sort) |
    awk 'BEGIN {srand(8)} {print rand() "\t" $0}' | LC_ALL=C sort | cut -f2 >"$out/kernel-sources"
kernel_names=()
while read -r f && [[ ${#kernel_names[@]} -lt $kernel_sets ]]; do
    n="kernel:${f//\//_}"
    # Sources that pull in fewer than 100 headers (or fail) are no compile set.
    set_of "$n" "$src/$f" -iquote "$src/$(dirname "$f")" && [[ $(wc -l <"$out/sets/$n") -ge 100 ]] ||
        { rm -f "$out/sets/$n"; continue; }
    kernel_names+=("$n")
done <"$out/kernel-sources"
rm -rf "$ref"
find_list() { (cd "$1" && find . -type f -print0) }

# --- one cold run: set up, read, tear down --------------------------------
# read_workload NAME: in the current directory (the mount or the extraction).
read_workload() {
    case "$1" in
        first) cat include/linux/sched.h >/dev/null ;;
        every) find . -type f -print0 | xargs -0 cat >/dev/null ;;
        every2) find . -type f -print0 | xargs -0 -P 2 -n 256 cat >/dev/null ;;
        *) xargs -d '\n' cat <"$out/sets/$1" >/dev/null ;;
    esac
}

# run_tarball WORKLOAD: seconds for extract + read.
run_tarball() {
    drop_caches
    local t0=$EPOCHREALTIME
    mount -t tmpfs -o size=512M tmpfs "$mnt"
    tar -xJf "$shm/kheaders.tar.xz" -C "$mnt"
    (cd "$mnt" && read_workload "$1")
    local t1=$EPOCHREALTIME
    umount "$mnt"
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}'
}

# run_image LAYOUT DEV WORKLOAD: "seconds amplification" for mount + read.
run_image() {
    local img="$shm/$1.img" dev="$2" n="${2#/dev/}"
    drop_caches
    local s0 t0 t1 s1
    s0=$(awk '{print $3}' "/sys/block/$n/stat")
    t0=$EPOCHREALTIME
    mount -t "$(fs_of "$1")" -o ro "$dev" "$mnt"
    (cd "$mnt" && read_workload "$3")
    t1=$EPOCHREALTIME
    s1=$(awk '{print $3}' "/sys/block/$n/stat")
    umount "$mnt"
    awk -v a="$t0" -v b="$t1" -v s="$((s1 - s0))" -v size="$(stat -c %s "$img")" \
        'BEGIN {printf "%.4f %.4f", b - a, s * 512 / size}'
}

# zram_of IMAGE: a new zram device holding IMAGE, read-only.
zram_of() {
    local id
    [[ -e /sys/class/zram-control/hot_add ]] || modprobe zram num_devices=0 2>/dev/null ||
        die "this kernel has no zram (--devices loop measures without it)"
    id="$(cat /sys/class/zram-control/hot_add)"
    zrams+=("$id")
    echo "$(stat -c %s "$1")" >"/sys/block/zram$id/disksize"
    dd if="$1" of="/dev/zram$id" bs=1M oflag=direct status=none
    blockdev --setro "/dev/zram$id"
    echo "/dev/zram$id"
}
declare -A dev_of
variants=()
for d in $devices; do
    for l in $images; do
        case "$d" in
            zram) dev_of[$l@$d]="$(zram_of "$shm/$l.img")" ;;
            loop) dev_of[$l@$d]="$(losetup -f --show -r -b 4096 "$shm/$l.img")"; loops+=("${dev_of[$l@$d]}") ;;
            *) die "--devices: unknown device '$d' (zram, loop)" ;;
        esac
        variants+=("$l@$d")
    done
done

workloads=(first bench/programs/*.c "${kernel_names[@]}" every every2)
say "measuring: ${#workloads[@]} workloads x $reps cold runs x (tarball + ${#variants[@]} image@device)"
for w in "${workloads[@]}"; do
    [[ "$w" == bench/programs/*.c ]] && w="$(basename "$w" .c)"
    for r in $(seq 1 "$reps"); do
        record "time:$w" tar.xz "$r" "$(run_tarball "$w")"
        for v in "${variants[@]}"; do
            read -r t a <<<"$(run_image "${v%@*}" "${dev_of[$v]}" "$w")"
            record "time:$w" "$v" "$r" "$t"
            record "amp:$w" "$v" "$r" "$a"
        done
    done
done

say "report"
args=("$results" --native --kernel "$(cat "$KTREE/include/config/kernel.release")" --host-kernel "$(uname -r)"
      --json "$out/results.json")
[[ -n "$frontier" ]] && args+=(--frontier "$out/frontier.png")
[[ -n "$update_docs" ]] && args+=(--update-docs "$REPO_ROOT/docs")
python=python3
[[ -z "$frontier" ]] || python="$(plot_python)"
"$python" "$REPO_ROOT/bench/report.py" "${args[@]}"

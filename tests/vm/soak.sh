# Soak under memory pressure (issue 12), on kernels with memory cgroups and
# kmemleak (the x86-debug variant). For KHB_SOAK_SECONDS (default 60): five
# readers, each in its own order, read every file of the mount again and
# again and check it against upstream's tarball (upstream_reference); a
# sixth reads random ranges of the device, buffered and O_DIRECT, against the
# image. Meanwhile their page cache is forced out: they run in a memory
# cgroup whose memory.high leaves KHB_SOAK_CACHE_MB (default 16) MiB for
# cache above what they use themselves (the headers are 28 MiB), and all
# caches are dropped every 2 s. On another path the device is mounted a
# second time, read and unmounted, and rmmod is tried (it must be refused).
# Result: no wrong byte, no failed read. A soak of 10 minutes or more must
# also see every reader through at least one whole pass.

SOAK_SECONDS="${KHB_SOAK_SECONDS:-60}"
SOAK_CACHE_MB="${KHB_SOAK_CACHE_MB:-16}"
CG=/sys/fs/cgroup/khb-soak

# memcg_value FILE KEY
memcg_value() { awk -v k="$2" '$1 == k { print $2 }' "$CG/$1"; }

test_soak_under_memory_pressure() {
    leave_clean /tmp/khb-soak-mnt2
    upstream_reference
    local out=/tmp/khb-soak m2=/tmp/khb-soak-mnt2 sums until start pids=() i
    rm -rf "$out" && mkdir -p "$out" "$m2"
    sums="$out/sums"
    tree_checksums "$REF" >"$sums"
    load_kheaders_blk
    mount_kheaders

    mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
    echo +memory >/sys/fs/cgroup/cgroup.subtree_control
    [[ -d $CG ]] && rmdir "$CG"
    mkdir "$CG"

    # The readers set up (checksums, the image in memory) first, and all
    # start reading at $start, once their own memory is known. Six Python
    # readers under KASAN and TCG took more than 30 s to set up beside a
    # kernel build (an empty-cache run): 120 s, a deadline, not a measure.
    start=$(( $(date +%s) + 120 ))
    until=$((start + SOAK_SECONDS))
    local readers=(name reverse shuffle largest-first by-basename)
    local results=("${readers[@]/#/$out/}" "$out/device")   # each reader's output
    for i in "${readers[@]}"; do
        (echo "$BASHPID" >"$CG/cgroup.procs"
         exec python3 "$KHB_REPO/tests/vm/soak-reader.py" files "$i" "$sums" "$MNT" "$REF" \
             "$start" "$until" "$out/$i.ready" "$out/$i.checked") >"$out/$i" 2>&1 &
        pids+=($!)
    done
    (echo "$BASHPID" >"$CG/cgroup.procs"
     exec python3 "$KHB_REPO/tests/vm/soak-reader.py" device /dev/kheaders0 "$KHB_IMAGE" \
         "$start" "$until" 1 "$out/device.ready") >"$out/device" 2>&1 &
    pids+=($!)
    while [[ $(ls "$out"/*.ready 2>/dev/null | wc -l) -lt 6 ]]; do
        [[ $(date +%s) -lt $start ]] || fail "the readers were not set up within 120 s"
        sleep 0.5
    done

    # The limit: what the readers hold themselves (their memory and the
    # kernel's for them) plus a cache far smaller than the headers.
    local own limit
    own=$(( $(memcg_value memory.stat anon) + $(memcg_value memory.stat kernel) ))
    limit=$(( own + SOAK_CACHE_MB * 1048576 ))
    # memory.high, not memory.max: reclaim is forced above it, but nobody is
    # OOM-killed (with max, KASAN's slab overhead got the readers killed).
    echo "$limit" >"$CG/memory.high"
    local now
    now=$(date +%s)
    if [[ $now -lt $start ]]; then sleep $((start - now)); fi

    # Pressure from outside the cgroup, and a second mount with rmmod tries.
    local drops=0 cycles=0 rmmod_ok=0 second_bad=0 pair=(include/linux/kconfig.h include/linux/sched.h)
    local want
    want="$(cd "$REF" && sha256sum "${pair[@]}")"
    while [[ $(date +%s) -lt $until ]]; do
        echo 3 >/proc/sys/vm/drop_caches && drops=$((drops + 1))
        mount -t squashfs -o ro /dev/kheaders0 "$m2"
        [[ "$(cd "$m2" && sha256sum "${pair[@]}")" == "$want" ]] || second_bad=$((second_bad + 1))
        umount "$m2"
        rmmod kheaders_blk 2>/dev/null && rmmod_ok=$((rmmod_ok + 1))
        cycles=$((cycles + 1))
        sleep 2
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || fail "reader $i exited with an error: $(cat "${results[@]}")"
    done
    local secs=$(( $(date +%s) - start ))

    cat "${results[@]}"
    local passes="" files_bytes=0 total_bytes=0 reads=0 wrong=0 failed=0 line
    for i in "${readers[@]}" device; do
        line="$(head -n1 "$out/$i")"
        [[ "$line" =~ ^[a-z-]+\ passes=([0-9]+)\ reads=([0-9]+)\ bytes=([0-9]+)\ wrong_bytes=([0-9]+)\ failed_reads=([0-9]+)$ ]] ||
            fail "reader $i gave no result: $(cat "$out/$i")"
        [[ ${BASH_REMATCH[2]} -ge 1 ]] || fail "reader $i read nothing"
        [[ $i == device || $SOAK_SECONDS -lt 600 || ${BASH_REMATCH[1]} -ge 1 ]] ||
            fail "reader $i did not complete a pass in $SOAK_SECONDS s"
        reads=$((reads + BASH_REMATCH[2]))
        total_bytes=$((total_bytes + BASH_REMATCH[3]))
        [[ $i == device ]] || files_bytes=$((files_bytes + BASH_REMATCH[3])) passes+=" ${BASH_REMATCH[1]}"
        wrong=$((wrong + BASH_REMATCH[4]))
        failed=$((failed + BASH_REMATCH[5]))
    done
    local nfiles covered refaults steals ooms highs
    nfiles=$(wc -l <"$sums")
    covered=$(sort -u "$out"/*.checked | wc -l)
    refaults=$(memcg_value memory.stat workingset_refault_file)
    steals=$(memcg_value memory.stat pgsteal)
    ooms=$(memcg_value memory.events oom_kill)
    highs=$(memcg_value memory.events high)
    # The result goes to the kernel log too: the console log of the run keeps it.
    for line in \
        "soak: ${secs} s, ${#readers[@]} file readers (whole passes:$passes) + 1 device reader, $reads reads, $total_bytes bytes compared ($files_bytes through the file system), $wrong wrong bytes, $failed failed reads; $covered of $nfiles files checked at least once" \
        "soak pressure: memory.high $((limit / 1048576)) MiB ($((own / 1048576)) MiB the readers' own), $highs times over it, $steals pages reclaimed, $refaults file refaults, $drops drop_caches; $cycles second mounts, $rmmod_ok rmmod succeeded"; do
        echo "  $line"
        echo "khb-$line" >/dev/kmsg
    done
    rmdir "$CG"

    expect_eq "$wrong" 0 "wrong bytes"
    expect_eq "$failed" 0 "failed reads"
    expect_eq "$second_bad" 0 "second mounts that read wrong bytes"
    expect_eq "$rmmod_ok" 0 "rmmod attempts that succeeded under a mount"
    expect_eq "$ooms" 0 "OOM kills in the readers' cgroup"
    [[ $secs -ge $SOAK_SECONDS ]] || fail "ran ${secs} s, less than $SOAK_SECONDS"
    [[ $cycles -ge 1 && $drops -ge 1 ]] || fail "no second mount or drop_caches ran"
    [[ $steals -gt 0 && $refaults -gt 0 ]] || fail "the page cache was not forced out (pgsteal $steals, refaults $refaults)"
    umount "$MNT"
    unload_kheaders_blk
    kmemleak_check
}

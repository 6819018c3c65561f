#!/usr/bin/env bash
# Every test, from a fresh machine: setup and its check (tests/setup/), the
# test kernels (built once, cached), host tests (cargo test, including the oracle against upstream's
# tarball), a fuzz smoke run, then for each kernel the modules built against
# it and one boot running the VM suites that apply to it (the plan below,
# printed first).
#
#   scripts/test.sh [-k REGEX] [--kernels "x86 ..."] [--all]
#
#   -k REGEX      only VM tests whose "suite/test" name matches
#   --kernels L   only these kernels of the plan (default: all but ON_DEMAND)
#   --all         also the kernels run on demand (ON_DEMAND) and the tests the
#                 plan leaves out on some kernels (LEAVE_OUT)
#
#   KHB_SOAK_SECONDS=N   the soak runs N s instead of 60 (the long soak:
#                        KHB_SOAK_SECONDS=1200 scripts/test.sh --kernels x86-debug -k soak)
#   KHB_LOAD_FAULT_STRIDE, KHB_MOUNT_FAULT_STRIDE   fault points tried (default
#                        every 16th and 40th; 1 is the full sweep, tests/vm/faults.sh)
#   KHB_FAULT_OFFSET     where those strides start (default: the day number,
#                        so that daily runs cover every point; the run prints it)
#   KHB_PREBUILD=0       build each kernel only when its suites need it, not
#                        ahead in the background
#   KHB_ARTIFACTS_DIR    where the suites' inputs go (default
#                        $KHB_CACHE/test-artifacts)
#
# The last line is "N passed, M failed" over host and VM tests.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

# The plan: kernel variant (scripts/build-kernel.sh) -> VM suites
# (tests/vm/<suite>.sh). A suite not listed for a kernel does not apply to it.
# VARIANT+corrupt-image: that built-in kernel relinked around a corrupted
# headers image (scripts/corrupt-builtin-kernel.sh).
# Kernels are built in this order, ahead of their suites (see below): the
# longest VM run (x86-debug) comes second so that it starts early.
PLAN=(
    # fallback: a kernel without kheaders_blk, its kheaders tarball mounted.
    "x86: harness module layout clients fallback"
    # The kernel's checkers (KASAN, lockdep, kmemleak, fault injection);
    # canary last. Not layout: it asserts what squashfs decompresses, which
    # no debug option changes, and takes 12.5 min there (docs/reliability.md).
    "x86-debug: harness module faults soak checkers canary"
    # Linux 7.3 (Debian's trixie-backports source), the same driver source.
    # The built-in driver is tested on 7.3 rather than on a second 6.12
    # kernel (x86-builtin stays a variant, for bench/builtin.sh): one kernel
    # build fewer than a 6.12 and a 7.3 built-in kernel.
    # Not the clients suite on the 7.3 module kernel: 7.3-builtin runs its
    # zero-config, bcc and bpftrace tests (builtin.sh's SHARED_TESTS), and the
    # whole suite here cost about 14 min of TCG, which the budget lacks.
    "7.3: harness module"
    "7.3-builtin: builtin"
    "7.3-builtin+corrupt-image: builtin-corrupt"
    "arm64-16k: harness essentials"
    # Android GKI's shape (arm64, 4 KiB pages, EROFS with LZ4 only, no
    # squashfs): the module embeds an EROFS image.
    "arm64-gki: harness essentials"
)
# Kernels of the plan that run only when named (--kernels) or with --all
# (none now). Not in the plan at all: x86-builtin (bench/builtin.sh) and arm64
# (4 KiB pages, squashfs: x86 and arm64-16k cover its cases).
ON_DEMAND=()
# Tests a kernel of the plan leaves out, to keep an empty-cache run within
# its budget (README), each because another test covers it: the peer's
# extraction (harness) is the same on every kernel and runs on x86; on
# x86-debug, the soak reads concurrently, the fault tests load, mount and
# unload hundreds of times, and the mount fault test compares the whole tree
# with upstream's. --all runs them too.
declare -A LEAVE_OUT=(
    [x86-debug]='^harness/test_upstream_kheaders_extracts|^module/test_(concurrent_readers|twenty_load|mount_matches)'
    [7.3]='^harness/test_upstream_kheaders_extracts'
    [arm64-gki]='^harness/test_upstream_kheaders_extracts'
    [arm64-16k]='^harness/test_upstream_kheaders_extracts'
)

vm_filter=() only="" all=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        -k) vm_filter=(-k "$2"); shift 2 ;;
        --kernels) only="$2"; shift 2 ;;
        --all) all=1; shift ;;
        *) die "scripts/test.sh: unknown option $1 (usage: scripts/test.sh [-k REGEX] [--kernels \"x86 ...\"] [--all])" ;;
    esac
done

passed=0 failed=0
count_cargo() {   # sum "test result: ... N passed; M failed" lines of $1
    local p f
    p=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ | bc)
    f=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ | bc)
    passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
}
count_line() {   # add a "...: N passed, M failed" line to the totals
    passed=$((passed + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$1")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$1")))
}
finish() {
    if [[ ${#step_times[@]} -gt 0 ]]; then
        say "step times (builds overlap the steps after them)"
        printf '  %s\n' "${step_times[@]}" "$(printf '%-28s %6d s' total $((SECONDS - run_start)))" >&2
    fi
    echo "$passed passed, $failed failed"
    [[ $failed == 0 && $passed -gt 0 ]]
    exit
}
step_failed() {   # a step that is not itself a test broke: count it, stop
    echo "error: $1" >&2
    failed=$((failed + 1))
    finish
}

# A step that breaks outside a test (errexit) still ends with the totals.
trap 'echo "error: scripts/test.sh stopped at line $LINENO: $BASH_COMMAND" >&2; failed=$((failed + 1)); finish' ERR

say "plan (kernel: VM suites)"
kernels=()
for row in "${PLAN[@]}"; do
    k="${row%%:*}"
    if [[ -n "$only" && " $only " != *" $k "* ]]; then
        echo "  $row   [not selected]" >&2
        continue
    fi
    if [[ -z "$only" && -z "$all" && " ${ON_DEMAND[*]} " == *" $k "* ]]; then
        echo "  $row   [on demand: --kernels $k, or --all]" >&2
        continue
    fi
    echo "  $row" >&2
    [[ -n "$all" || -z "${LEAVE_OUT[$k]:-}" ]] || echo "      leaves out ${LEAVE_OUT[$k]} (--all runs them)" >&2
    kernels+=("$k")
done
for k in $only; do
    printf '%s\n' "${PLAN[@]}" | grep -q "^$k:" || die "--kernels: no kernel '$k' in the plan"
done

step_times=()
timed() {   # NAME SECONDS: one row of the closing table of step times
    step_times+=("$(printf '%-28s %6d s' "$1" "$2")")
}
run_start=$SECONDS
# One offset for the whole run, from the host's clock (tests/vm/faults.sh).
fault_offset="${KHB_FAULT_OFFSET:-$(( $(date +%s) / 86400 ))}"

say "setup"
t0=$SECONDS
"$REPO_ROOT/scripts/setup.sh" || step_failed "setup failed"
timed setup $((SECONDS - t0))

say "setup check (setup's package lists resolved from a new machine's state)"
log="$(mktemp)"
"$REPO_ROOT/tests/setup/check.sh" | tee "$log" || true
line="$(grep -E '^setup check: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)"
[[ -n "$line" ]] || step_failed "the setup check did not run (see above)"
count_line "$line"

# What the suites get from the host. KHB_ARTIFACTS_DIR moves it, so that
# two runs that share the kernel cache do not clear each other's.
art="${KHB_ARTIFACTS_DIR:-$KHB_CACHE/test-artifacts}"
rm -rf "$art" && mkdir -p "$art"

# --- Kernel builds, ahead of the suites ------------------------------------
# One background chain builds the plan's kernels in plan order while the
# foreground runs the host tests and each kernel's VM suites as soon as that
# kernel is there: a build and a TCG guest overlap instead of taking turns.
# KHB_PREBUILD=0 builds each kernel only when its suites need it.
builds="$art/builds"
mkdir -p "$builds"
build_order=(x86)
for k in "${kernels[@]}"; do
    [[ " ${build_order[*]} " == *" ${k%%+*} "* ]] || build_order+=("${k%%+*}")
done
build_one() {   # VARIANT: build it; VARIANT.tree, .log, .secs, then .done
    local v="$1" t=$SECONDS rc=0
    "$REPO_ROOT/scripts/build-kernel.sh" "$v" >"$builds/$v.tree" 2>"$builds/$v.log" || rc=$?
    echo $((SECONDS - t)) >"$builds/$v.secs"
    echo "$rc" >"$builds/$v.done"
}
builder_pid=""
if [[ "${KHB_PREBUILD:-1}" != 0 ]]; then
    # At nice 10: the suites in the foreground are the path that has
    # time-outs, and a TCG guest beside a 2-job build ran 3-4x slower (the
    # builder gets what the guest leaves; the total work is the same).
    ( renice -n 10 -p "$BASHPID" >/dev/null || true
      for v in "${build_order[@]}"; do build_one "$v"; done ) </dev/null &
    builder_pid=$!
    # Not "[[ ]] && kill": under errexit a kill of the finished builder
    # would fail the exit trap, and with it a run whose tests all passed.
    # The whole tree: a stopped run must not leave a kernel build running.
    kill_tree() { local c; for c in $(pgrep -P "$1"); do kill_tree "$c"; done; kill "$1" 2>/dev/null || true; }
    trap 'kill_tree "$builder_pid"' EXIT
fi
kernel_tree() {   # VARIANT: wait for its build, show its log, print its tree
    local v="$1"
    if [[ -z "$builder_pid" ]]; then
        [[ -f "$builds/$v.done" ]] || build_one "$v"
    fi
    while [[ ! -f "$builds/$v.done" ]]; do
        kill -0 "$builder_pid" 2>/dev/null || [[ -f "$builds/$v.done" ]] ||
            { echo "error: the kernel builder stopped before $v" >&2; return 1; }
        sleep 2
    done
    cat "$builds/$v.log" >&2
    [[ "$(cat "$builds/$v.done")" == 0 ]] || return 1
    cat "$builds/$v.tree"
}
build_timed() {   # VARIANT: its build's time into the table, once
    [[ " ${timed_builds:-} " == *" $1 "* ]] && return 0
    timed_builds+=" $1"
    timed "$1 build" "$(cat "$builds/$1.secs")"
}

say "test kernel x86 (the host tests' oracle)"
X86_TREE="$(kernel_tree x86)" || step_failed "x86 kernel build failed"
build_timed x86

say "host tests (cargo test)"
t0=$SECONDS
log="$(mktemp)"
cargo build --release --locked --quiet || step_failed "cargo build failed"
TOOL="$REPO_ROOT/target/release/kheaders-image"
KHB_KERNEL_TREE="$X86_TREE" cargo test --release --locked 2>&1 | tee "$log" |
    grep -E '^(test |test result|failures|---- )' || true
count_cargo "$log"
grep -qE '^test result:' "$log" || step_failed "cargo test did not run (see above)"
timed "host tests" $((SECONDS - t0))

say "fuzz smoke (scripts/fuzz.sh: each target a few seconds from real seeds)"
t0=$SECONDS
log="$(mktemp)"
{ scripts/fuzz.sh build && scripts/fuzz.sh seeds "$X86_TREE" --quick && scripts/fuzz.sh smoke 5; } 2>&1 | tee "$log" |
    grep -E '^(fuzz smoke|error)' || true
line="$(grep -E '^fuzz smoke: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)"
[[ -n "$line" ]] || step_failed "the fuzz smoke run did not run (see $log)"
count_line "$line"
timed "fuzz smoke" $((SECONDS - t0))

# --- Inputs that do not depend on a kernel --------------------------------
# Images that reach the writer's edges, for the kernel's squashfs to read.
edge="$art/edge/tree"
mkdir -p "$edge/include/linux" "$edge/include/many" "$edge/include/a/b/c/d/e/f/g/h" "$edge/arch/x86/include/asm"
touch "$edge/Kbuild"
echo '#include <linux/types.h>' >"$edge/include/linux/kconfig.h"
head -c 3000 "$REPO_ROOT/README.md" | tr -d '/*' >"$edge/include/linux/types.h"
: >"$edge/include/empty.h"
printf x >"$edge/include/one.h"
for n in 4096 131072 1048576 2621440; do head -c "$n" /dev/urandom | base64 >"$edge/include/size-$n.h"; done
cp "$edge/include/size-131072.h" "$edge/include/same-as-size-131072.h"
echo 'int x;' >"$edge/include/$(printf 'n%.0s' $(seq 1 253)).h"
echo 'int y;' >"$edge/include/sp ace & ü.h"
echo 'int z;' >"$edge/include/a/b/c/d/e/f/g/h/deep.h"
ln -s linux/types.h "$edge/include/link.h"
ln -s ../nowhere/x.h "$edge/include/dangling.h"
for i in $(seq -w 1 1600); do echo "int v$i;" >"$edge/include/many/header-with-a-longish-name-$i.h"; done
echo 'struct pt_regs;' >"$edge/arch/x86/include/asm/ptrace.h"
for v in "includes 4K" "includes 1M" "directory 128K"; do
    read -r layout bs <<<"$v"
    "$TOOL" pack -q --layout "$layout" -b "$bs" "$edge" -o "$art/edge/$layout-$bs.img" ||
        step_failed "packing the edge-case tree ($layout, $bs) failed"
done

# A tree of another kernel release, for the warning test.
other="$art/other-release-tree"
mkdir -p "$other/include/linux" "$other/include/generated" "$other/arch/x86/include/asm"
touch "$other/Kbuild"
echo '#define KCONFIG 1' >"$other/include/linux/kconfig.h"
echo '#define UTS_RELEASE "9.9.9-other"' >"$other/include/generated/utsrelease.h"
echo '#define ASM 1' >"$other/arch/x86/include/asm/x.h"
"$TOOL" pack -q "$other" -o "$art/other-release.img" || step_failed "packing $other failed"

# 1 MiB blocks and a file that fills one, for the largest squashfs read
# (module/test_largest_squashfs_read_is_one_request). Random bytes without
# '/' and '*', which the comment stripping would act on.
big="$art/big-block-tree"
mkdir -p "$big/include/linux" "$big/include/generated" "$big/arch/x86/include/asm"
touch "$big/Kbuild"
echo '#define KCONFIG 1' >"$big/include/linux/kconfig.h"
echo '#define UTS_RELEASE "9.9.9-big-block"' >"$big/include/generated/utsrelease.h"
echo '#define ASM 1' >"$big/arch/x86/include/asm/x.h"
head -c 1100000 /dev/urandom | tr -d '/*' >"$big/include/random-1M.h"
truncate -s 1048576 "$big/include/random-1M.h"   # from about 1091000 bytes
"$TOOL" pack -q -b 1M "$big" -o "$art/big-block.img" || step_failed "packing $big failed"

# --- Per kernel: what the suites need, then one boot ----------------------
# modules_for KERNEL_TREE DIR SUITES: kheaders_blk as kmod/Kbuild builds it
# (the image packed from that tree) and the sample module, in DIR; for the
# module and layout suites also variants around unusual images, for the
# essentials suite a manifest of upstream's tarball, for the canary suite the
# checkers' canary module.
modules_for() {
    local kt="$1" d="$2" suites=" $3 "
    mkdir -p "$d"
    build_module "$kt" "$d/main" || step_failed "kheaders_blk build against $kt failed"
    cp -r tests/sample-module "$d/sample" && make_in_tree "$kt" -s M="$d/sample" modules ||
        step_failed "sample module build failed"
    cp "$d/sample/khb_sample.ko" "$d/"
    if [[ "$suites" == *" canary "* ]]; then
        cp -r tests/checker-canary "$d/canary" && make_in_tree "$kt" -s M="$d/canary" modules ||
            step_failed "checker canary module build failed"
        cp "$d/canary/khb_canary.ko" "$d/"
    fi
    if [[ "$suites" == *" essentials "* ]]; then
        # flock(1) for kheaders-mount, which the guest's busybox lacks.
        mkdir -p "$d/bin" && "${cross}gcc" -static -O2 -Wall -Werror -o "$d/bin/flock" tests/vm/flock.c ||
            step_failed "building tests/vm/flock.c failed"
        # What upstream's tarball holds, for a busybox guest to compare with.
        rm -rf "$d/upstream" && mkdir -p "$d/upstream" &&
            tar -xJf "$kt/kernel/kheaders_data.tar.xz" -C "$d/upstream" &&
            rm -f "$d/upstream/include/generated/utsversion.h" &&   # by build order; docs/design.md
            tests/vm/tree-manifest.sh "$d/upstream" >"$d/upstream.manifest" ||
            step_failed "manifest of $kt/kernel/kheaders_data.tar.xz failed"
        rm -rf "$d/upstream"
    fi
    [[ "$suites" == *" module "* || "$suites" == *" layout "* ]] || return 0
    local image="$d/main/kmod/kheaders.img" v
    v() {   # NAME IMAGE: kheaders_blk built around IMAGE, in DIR/NAME
        build_module "$kt" "$d/$1" "$2" || step_failed "module build with $2 failed"
    }
    corrupt_image "$image" "$d/corrupt-data.img"
    v corrupt-data "$d/corrupt-data.img"
    rm -rf "$d/plain" && mkdir -p "$d/plain" && unsquashfs -q -d "$d/plain/t" "$image" >/dev/null
    mksquashfs "$d/plain/t" "$d/no-trailer.img" -comp xz -noappend -quiet -no-progress >/dev/null
    v no-trailer "$d/no-trailer.img"
    v other-release "$art/other-release.img"
    v big-block "$art/big-block.img"
    # An image in a compression this kernel's squashfs lacks (lz4).
    mksquashfs "$d/plain/t" "$d/lz4.sqfs" -comp lz4 -noappend -quiet -no-progress >/dev/null
    "$TOOL" seal "$d/lz4.sqfs" -o "$d/lz4.img" --release "$(cat "$kt/include/config/kernel.release")" 2>/dev/null ||
        step_failed "sealing the lz4 image failed"
    v lz4-image "$d/lz4.img"
    # The same headers in directory order, for the layout tests to compare.
    "$TOOL" pack -q --layout directory "$kt" -o "$d/directory.img" || step_failed "packing $kt failed"
    v directory-layout "$d/directory.img"
}

for k in "${kernels[@]}"; do
    suites=$(printf '%s\n' "${PLAN[@]}" | sed -n "s/^$k: *//p")
    say "kernel $k: build"
    KTREE="$(kernel_tree "${k%%+*}")" || step_failed "$k kernel build failed"
    build_timed "${k%%+*}"
    t0=$SECONDS
    d="$art/$k"
    arch="$(tree_arch "$KTREE")" && arch_toolchain "$arch"   # sets $image: the boot image
    kernel="$KTREE/$image"
    module="$d/main/kmod/kheaders_blk.ko" image="$d/main/kmod/kheaders.img"
    if grep -q '^CONFIG_KHEADERS_BLK=y' "$KTREE/.config"; then
        # Built in: the image is the one the kernel build packed; no modules.
        module="" image="$KTREE/drivers/block/kheaders_blk/kheaders.img"
        if [[ "$k" == *+corrupt-image ]]; then
            kernel="$("$REPO_ROOT/scripts/corrupt-builtin-kernel.sh" "${k%%+*}")" ||
                step_failed "relinking $k failed"
        fi
    else
        say "kernel $k: modules"
        modules_for "$KTREE" "$d" "$suites"
    fi
    paths=()
    for s in $suites; do paths+=("'$REPO_ROOT/tests/vm/$s.sh'"); done
    leave_out=""
    [[ -n "$all" || -z "${LEAVE_OUT[$k]:-}" ]] || leave_out="-x $(printf '%q' "${LEAVE_OUT[$k]}")"
    say "kernel $k: VM tests ($suites) in one boot of $(cat "$KTREE/include/config/kernel.release") under QEMU"
    vmlog="$(mktemp)"
    mkdir -p "$d"
    vm_rc=0   # failed tests must not end this script (errexit, pipefail): they are counted
    # A large log buffer: checks read the whole boot's kernel log.
    "$REPO_ROOT/scripts/vm-run.sh" --arch "$arch" --kernel "$kernel" --timeout $((2400 + ${KHB_SOAK_SECONDS:-60})) \
        --append log_buf_len=16M --log "$d/vm-console.log" -- \
        "export KHB_REPO='$REPO_ROOT' KHB_KERNEL_TREE='$KTREE' KHB_MODULE='$module' \
                KHB_IMAGE='$image' KHB_ARTIFACTS='$d' KHB_EDGE='$art/edge' KHB_TOOL='$TOOL' \
                KHB_MANIFEST='$d/upstream.manifest' KHB_VERBOSE='${KHB_VERBOSE:-}' \
                KHB_SOAK_SECONDS='${KHB_SOAK_SECONDS:-}' KHB_SOAK_CACHE_MB='${KHB_SOAK_CACHE_MB:-}' \
                KHB_LOAD_FAULT_STRIDE='${KHB_LOAD_FAULT_STRIDE:-}' KHB_MOUNT_FAULT_STRIDE='${KHB_MOUNT_FAULT_STRIDE:-}' \
                KHB_FAULT_OFFSET='$fault_offset'; \
         '$REPO_ROOT/tests/vm/run-suite.sh' ${vm_filter[*]:+$(printf '%q ' "${vm_filter[@]}")} $leave_out ${paths[*]}" | tee "$vmlog" || vm_rc=${PIPESTATUS[0]}
    timed "$k modules + VM" $((SECONDS - t0))
    # No line (a VM that timed out): grep fails, which must not stop the run.
    line="$(grep -E '^vm tests: [0-9]+ passed, [0-9]+ failed$' "$vmlog" | tail -n1 || true)"
    if [[ -z "$line" ]]; then
        echo "error: the $k VM run gave no result line (console log: $d/vm-console.log)" >&2
        failed=$((failed + 1))
        continue
    fi
    count_line "$line"
    if [[ $vm_rc != 0 && $line == *" 0 failed" ]]; then
        echo "error: the $k VM run failed (exit $vm_rc) although its tests passed" >&2
        failed=$((failed + 1))
    fi
done
finish

#!/usr/bin/env bash
# Every test, from a fresh machine: setup, kernel build (cached), host tests
# (cargo test, including the oracle against upstream's tarball), module
# builds, then one boot of the test kernel running the VM suites.
#
#   scripts/test.sh [-k PATTERN]     (PATTERN filters the VM tests)
#
# The last line is "N passed, M failed" over host and VM tests.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

vm_filter=()
[[ "${1:-}" == -k ]] && vm_filter=(-k "$2")

passed=0 failed=0
count_cargo() {   # sum "test result: ... N passed; M failed" lines of $1
    local p f
    p=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) passed.*/\1/' | paste -sd+ | bc)
    f=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) failed.*/\1/' | paste -sd+ | bc)
    passed=$((passed + ${p:-0})) failed=$((failed + ${f:-0}))
}
finish() {
    echo "$passed passed, $failed failed"
    [[ $failed == 0 && $passed -gt 0 ]]
    exit
}
step_failed() {   # a step that is not itself a test broke: count it, stop
    echo "error: $1" >&2
    failed=$((failed + 1))
    finish
}

say "1/5 setup"
"$REPO_ROOT/scripts/setup.sh" || step_failed "setup failed"

say "2/5 test kernel"
KTREE="$("$REPO_ROOT/scripts/build-kernel.sh")" || step_failed "kernel build failed"
export KHB_KERNEL_TREE="$KTREE"

say "3/5 host tests (cargo test)"
log="$(mktemp)"
cargo build --release --locked --quiet || step_failed "cargo build failed"
cargo test --release --locked 2>&1 | tee "$log" | grep -E '^(test |test result|failures|---- )' || true
count_cargo "$log"
grep -qE '^test result:' "$log" || step_failed "cargo test did not run (see above)"

say "4/5 module builds"
art="$KHB_CACHE/test-artifacts"
rm -rf "$art" && mkdir -p "$art"
kbuild() { make -C "$KTREE" -s M="$1" "${@:2}" modules; }
kbuild "$REPO_ROOT" || step_failed "kheaders_blk build failed"
cp -r tests/sample-module "$art/sample" && kbuild "$art/sample" || step_failed "sample module build failed"
cp "$art/sample/khb_sample.ko" "$art/"
# Modules with unusual images, for the refuse-to-load and warning tests.
image="$REPO_ROOT/kmod/kheaders.img"
bad_module() {   # NAME IMAGE: kheaders_blk built around IMAGE, in $art/NAME
    build_module_with_image "$KTREE" "$art/$1" "$2" || step_failed "module build with $2 failed"
}
cp "$image" "$art/corrupt-data.img"
printf '\xff' | dd of="$art/corrupt-data.img" bs=1 seek=$(( $(stat -c %s "$image") / 2 )) conv=notrunc status=none
bad_module corrupt-data "$art/corrupt-data.img"
rm -rf "$art/plain" && mkdir -p "$art/plain" && unsquashfs -q -d "$art/plain/t" "$image" >/dev/null
mksquashfs "$art/plain/t" "$art/no-trailer.img" -comp xz -noappend -quiet -no-progress >/dev/null
bad_module no-trailer "$art/no-trailer.img"

# A module whose image is of another kernel release: loads, but warns.
other="$art/other-release-tree"
mkdir -p "$other/include/linux" "$other/include/generated" "$other/arch/x86/include/asm"
touch "$other/Kbuild"
echo '#define KCONFIG 1' >"$other/include/linux/kconfig.h"
echo '#define UTS_RELEASE "9.9.9-other"' >"$other/include/generated/utsrelease.h"
echo '#define ASM 1' >"$other/arch/x86/include/asm/x.h"
target/release/kheaders-image pack -q "$other" -o "$art/other-release.img" || step_failed "packing $other failed"
bad_module other-release "$art/other-release.img"

# The same headers in directory order (what mksquashfs does), for the layout
# tests to compare against.
target/release/kheaders-image pack -q --layout directory "$KTREE" -o "$art/directory.img" ||
    step_failed "packing the directory layout failed"
bad_module directory-layout "$art/directory.img"

# Images that reach the writer's edges, for the kernel's squashfs to read.
edge="$art/edge/tree"
mkdir -p "$edge/include/linux" "$edge/include/many" "$edge/include/a/b/c/d/e/f/g/h" "$edge/arch/x86/include/asm"
touch "$edge/Kbuild"
echo '#include <linux/types.h>' >"$edge/include/linux/kconfig.h"
head -c 3000 "$REPO_ROOT/host-tool/src/squashfs.rs" | tr -d '/*' >"$edge/include/linux/types.h"
: >"$edge/include/empty.h"
printf x >"$edge/include/one.h"
for n in 4096 131072 1048576 2621440; do head -c "$n" /dev/urandom | base64 >"$edge/include/size-$n.h"; done
cp "$edge/include/size-131072.h" "$edge/include/same-as-size-131072.h"
echo 'int x;' >"$edge/include/$(printf 'n%.0s' $(seq 1 253)).h"
echo 'int y;' >"$edge/include/sp ace & ü.h"
echo 'int z;' >"$edge/include/a/b/c/d/e/f/g/h/deep.h"
ln -s linux/types.h "$edge/include/link.h"
ln -s ../nowhere/x.h "$edge/include/dangling.h"
for i in $(seq -w 1 3000); do echo "int v$i;" >"$edge/include/many/header-with-a-longish-name-$i.h"; done
echo 'struct pt_regs;' >"$edge/arch/x86/include/asm/ptrace.h"
for v in "includes 4K" "includes 1M" "directory 128K"; do
    read -r layout bs <<<"$v"
    target/release/kheaders-image pack -q --layout "$layout" -b "$bs" "$edge" -o "$art/edge/$layout-$bs.img" ||
        step_failed "packing the edge-case tree ($layout, $bs) failed"
done

say "5/5 VM tests (one boot of $(cat "$KTREE/include/config/kernel.release") under QEMU)"
vmlog="$(mktemp)"
"$REPO_ROOT/scripts/vm-run.sh" --timeout 1500 --log "$art/vm-console.log" -- \
    "export KHB_REPO='$REPO_ROOT' KHB_KERNEL_TREE='$KTREE' KHB_MODULE='$REPO_ROOT/kmod/kheaders_blk.ko' \
            KHB_IMAGE='$image' KHB_ARTIFACTS='$art' KHB_TOOL='$REPO_ROOT/target/release/kheaders-image'; \
     '$REPO_ROOT/tests/vm/run-suite.sh' ${vm_filter[*]} '$REPO_ROOT/tests/vm/harness.sh' '$REPO_ROOT/tests/vm/module.sh' '$REPO_ROOT/tests/vm/layout.sh'" \
    | tee "$vmlog"
vm_rc=${PIPESTATUS[0]}
line="$(grep -E '^vm tests: [0-9]+ passed, [0-9]+ failed$' "$vmlog" | tail -n1)"
if [[ -z "$line" ]]; then
    step_failed "the VM run gave no result line (console log: $art/vm-console.log)"
fi
p=$(sed -E 's/vm tests: ([0-9]+) passed.*/\1/' <<<"$line")
f=$(sed -E 's/.* ([0-9]+) failed/\1/' <<<"$line")
passed=$((passed + p)) failed=$((failed + f))
if [[ $vm_rc != 0 && $f == 0 ]]; then
    echo "error: the VM run failed (exit $vm_rc) although its tests passed" >&2
    failed=$((failed + 1))
fi
finish

#!/usr/bin/env bash
# Coverage-guided fuzzing of the host tool (libFuzzer through libfuzzer-sys
# on the stable toolchain; targets in host-tool/fuzz/fuzz_targets).
#
#   scripts/fuzz.sh build
#   scripts/fuzz.sh seeds KERNEL_TREE [--quick]   seed corpora from that tree's headers
#   scripts/fuzz.sh run TARGET SECONDS    a campaign, nice -n 19, corpus kept
#   scripts/fuzz.sh smoke [SECONDS]       every target briefly; "fuzz smoke: N passed, M failed"
#   scripts/fuzz.sh coverage TARGET       edges its corpus reaches, per source file
#
# Targets: format (superblock, xz options, trailer), image (inspect and
# verify's read: backhand), strip (against upstream's perl line), layout
# (include parser and data plan), roundtrip (arbitrary trees, pack -> read).
# Corpora, seeds and findings live in $KHB_CACHE/fuzz, never in the repo;
# a finding is a crash-* file there: reproduce with
# `$KHB_CACHE/fuzz/target/$FUZZ_TRIPLE/release/TARGET FILE`, then copy it to
# host-tool/tests/fuzz-findings/TARGET/ (cargo test replays it) and fix it.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TARGETS=(format image strip layout roundtrip)
FUZZ_DIR="$REPO_ROOT/host-tool/fuzz"
FUZZ_TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
WORK="$KHB_CACHE/fuzz"
# In the cache, not the clone: a later run (CI's fresh clone too) reuses
# the instrumented build of the dependencies (~5 minutes on 2 cores).
TARGET_DIR="$WORK/target"
BIN_DIR="$TARGET_DIR/$FUZZ_TRIPLE/release"

# What cargo-fuzz passes, minus the sanitizer (that needs nightly): edge
# counters, their PC table and comparison tracing. --target keeps build
# scripts and proc macros uninstrumented.
build() {
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
        cargo build --manifest-path "$FUZZ_DIR/Cargo.toml" --release --locked --quiet --target "$FUZZ_TRIPLE" \
        --target-dir "$TARGET_DIR"
}

# Per-target options: input size bounds (strip and layout get whole headers).
options() {
    case "$1" in
        format) echo "-max_len=1048576" ;;
        image) echo "-max_len=1048576 -timeout=20" ;;
        strip) echo "-max_len=65536 -timeout=10" ;;
        layout) echo "-max_len=65536 -timeout=10" ;;
        roundtrip) echo "-max_len=4096 -timeout=30" ;;
    esac
}

# seeds KERNEL_TREE [--quick]: small real inputs (images of subsets of the
# tree's headers, plain and with our trailer, also by mksquashfs; real
# headers), plus larger images for `format` only (too slow to read on every
# run); --quick leaves out the whole tree's image (packing it takes ~10 s).
seeds() {
    local kt="$1" quick="${2:-}" tool="$REPO_ROOT/target/release/kheaders-image"
    [[ -x "$tool" ]] || die "build the tool first (cargo build --release)"
    local src
    src="$(readlink -f "$kt/source" 2>/dev/null || echo "$kt")"
    rm -rf "$WORK/seeds" && mkdir -p "$WORK/seeds"/{format,image,strip,layout,roundtrip}
    local tmp
    tmp="$(mktemp -d)"
    # Kernel trees of a few real headers (a small one and a larger one).
    mini() {   # DIR PATTERN...: the tree's headers matching the patterns, in DIR
        local d="$1"; shift
        mkdir -p "$d/arch/x86/include" && touch "$d/Kbuild"
        (cd "$src" && find include arch/x86/include -name '*.h' \( "$@" \) -print0 | cpio -0pdm --quiet "$d")
        (cd "$kt" && find include/generated arch/x86/include/generated -name '*.h' \( -name autoconf.h -o -name utsrelease.h \) -print0 |
            cpio -0pdm --quiet "$d")
        [[ -f "$d/include/linux/kconfig.h" ]] || cp "$src/include/linux/kconfig.h" "$d/include/linux/"
    }
    mini "$tmp/small" -path 'include/linux/compiler*' -o -path include/linux/types.h -o -path 'include/uapi/linux/types.h' \
        -o -path 'include/uapi/asm-generic/int-*' -o -path 'arch/x86/include/asm/ptrace.h' -o -path 'include/linux/stddef.h'
    mini "$tmp/medium" -path 'include/linux/[a-b]*' -o -path 'include/uapi/linux/[a-c]*' -o -path 'arch/x86/include/asm/[a-c]*' \
        -o -path 'include/linux/compiler*'
    ln -s ../linux/types.h "$tmp/small/include/uapi/link.h"
    local n=0 t layout bs img
    for t in small medium; do
        for layout in includes directory; do
            for bs in 4K 128K; do
                img="$tmp/$t-$layout-$bs.img"
                "$tool" pack -q --layout "$layout" -b "$bs" "$tmp/$t" -o "$img"
                cp "$img" "$WORK/seeds/image/"
                # The same without our trailer: backhand reads it with no CRC first.
                head -c "$(od -An -t u8 -j 40 -N 8 "$img" | tr -d ' ')" "$img" >"$WORK/seeds/image/plain-$t-$layout-$bs.img"
                n=$((n + 2))
            done
        done
        # Another writer's choices: compressed metadata, xattrs, export table.
        mksquashfs "$tmp/$t" "$WORK/seeds/image/mksquashfs-$t.img" -comp xz -b 4K -noappend -quiet -no-progress -exports >/dev/null
        mksquashfs "$tmp/$t" "$WORK/seeds/image/mksquashfs-gzip-$t.img" -comp gzip -noappend -quiet -no-progress >/dev/null
    done
    cp "$WORK/seeds/image/"* "$WORK/seeds/format/"
    # Reading a medium image takes ~0.2 s: fine once, too slow to mutate.
    rm "$WORK/seeds/image/"*medium*
    [[ "$quick" ]] || "$tool" pack -q "$kt" -o "$WORK/seeds/format/whole-tree.img"
    # strip: real headers, every 20th in path order, up to 64 KiB.
    (cd "$src" && find include arch/x86/include -name '*.h' -type f -size -64k | sort | awk 'NR % 20 == 0') |
        while read -r f; do cp "$src/$f" "$WORK/seeds/strip/$(tr / _ <<<"$f")"; done
    # layout: real headers on the paths the target knows (checks.rs
    # LAYOUT_PATHS), NUL-separated records led by the path's index.
    record() { printf "\\x$(printf %02x "$1")"; tr -d '\0' <"$src/$2"; printf '\0'; }
    {
        record 0 include/linux/kconfig.h; record 1 include/linux/compiler_types.h
        record 2 include/linux/compiler-version.h; record 3 include/linux/types.h
        record 6 include/uapi/linux/types.h; record 11 arch/x86/include/asm/ptrace.h
        record 12 arch/x86/include/asm/page_types.h
    } >"$WORK/seeds/layout/real-core"
    { record 3 include/linux/types.h; record 4 include/linux/list.h; record 5 include/linux/kernel.h; } >"$WORK/seeds/layout/real-list"
    # roundtrip: a few trees (the input is a stream of choices, see checks.rs).
    printf '\x00\x00\x00\x00\x00\x06\x00\x08\x80\x00\x03\x04\x41\x42\x43\x44\x45\x46' >"$WORK/seeds/roundtrip/files"
    printf '\x81\x01\x02\x03\x04\x00\xd2\x05pre-6\x10\x03\x00\x01\x02\x03\xc1\x00\x01\x00\x10\x00\x00\x02\x41\x42\x00' >"$WORK/seeds/roundtrip/mixed"
    rm -rf "$tmp"
    say "seeds in $WORK/seeds: $(find "$WORK/seeds" -type f | wc -l) files"
}

# run TARGET SECONDS [EXTRA...]: fuzz, keeping the corpus; print the last
# status line and libFuzzer's final stats. Exit non-zero on a finding.
run() {
    local t="$1" secs="$2"; shift 2
    [[ " ${TARGETS[*]} " == *" $t "* ]] || die "no fuzz target '$t' (${TARGETS[*]})"
    local corpus="$WORK/corpus/$t" findings="$WORK/findings/$t"
    mkdir -p "$corpus" "$findings"
    # shellcheck disable=SC2046
    nice -n 19 "$BIN_DIR/$t" $(options "$t") -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$findings/" "$@" "$corpus" "$WORK/seeds/$t"
}

# smoke [SECONDS]: each target for a few seconds from the seeds (in a scratch
# corpus; cargo test replays the recorded findings); one line per target.
smoke() {
    local secs="${1:-5}" t passed=0 failed=0 log
    log="$(mktemp -d)"
    for t in "${TARGETS[@]}"; do
        mkdir -p "$log/corpus-$t"
        # shellcheck disable=SC2046
        if nice -n 10 "$BIN_DIR/$t" $(options "$t") -max_total_time="$secs" -artifact_prefix="$log/" \
            "$log/corpus-$t" "$WORK/seeds/$t" >"$log/$t.log" 2>&1; then
            echo "fuzz smoke $t: ok, $(grep -Eo '#[0-9]+' "$log/$t.log" | tail -n1 | tr -d '#') runs"
            passed=$((passed + 1))
        else
            echo "fuzz smoke $t: FAILED"
            tail -n 30 "$log/$t.log"
            failed=$((failed + 1))
        fi
    done
    rm -rf "$log"
    echo "fuzz smoke: $passed passed, $failed failed"
    [[ $failed == 0 ]]
}

# coverage TARGET: replay its corpus and seeds; of the source lines the
# instrumented edges map to, those reached, per source file of the tool and
# of the parsers it uses (by line, so that inlined copies count once), then
# the edges of the whole binary (see host-tool/fuzz/src/coverage.rs).
coverage() {
    local t="$1" cov
    cov="$(mktemp)"
    mkdir -p "$WORK/corpus/$t"
    # shellcheck disable=SC2046
    KHB_FUZZ_COVERAGE="$cov" nice -n 19 "$BIN_DIR/$t" $(options "$t") -runs=0 "$WORK/corpus/$t" "$WORK/seeds/$t" >/dev/null 2>&1
    cut -d' ' -f1 "$cov" | addr2line -e "$BIN_DIR/$t" | sed -E 's/ \(discriminator [0-9]+\)$//' |
        paste -d' ' - "$cov" |
        awk -v root="$REPO_ROOT/" '{
                all++; hit += $3
                f = $1; sub(root, "", f); sub(/.*\/registry\/src\/[^\/]*\//, "", f)
                if (f ~ /:\?$/ || f !~ /^host-tool\/src\/|^(backhand|deku|liblzma|zerocopy)-/) next
                line[f] = line[f] || $3
            } END {
                for (l in line) { f = l; sub(/:[0-9]+$/, "", f); t[f]++; c[f] += line[l] }
                for (f in t) printf "%5d / %5d lines  %5.1f%%  %s\n", c[f], t[f], 100 * c[f] / t[f], f
                printf "%5d / %5d edges  %5.1f%%  (whole binary)\n", hit, all, 100 * hit / all
            }' | sort -k6
    rm -f "$cov"
}

case "${1:-}" in
    build) build ;;
    seeds) [[ $# == 2 || "${3:-}" == --quick ]] || die "usage: scripts/fuzz.sh seeds KERNEL_TREE [--quick]"; seeds "$2" "${3:-}" ;;
    run) [[ $# -ge 3 ]] || die "usage: scripts/fuzz.sh run TARGET SECONDS [libFuzzer options]"; shift; run "$@" ;;
    smoke) shift; smoke "$@" ;;
    coverage) [[ $# == 2 ]] || die "usage: scripts/fuzz.sh coverage TARGET"; coverage "$2" ;;
    *) die "usage: scripts/fuzz.sh build | seeds KERNEL_TREE | run TARGET SECONDS | smoke [SECONDS]" ;;
esac

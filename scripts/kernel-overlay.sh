#!/usr/bin/env bash
# Run commands in a cached kernel build without changing it: the build
# directory is overlaid, in a private mount namespace and at the path its
# commands name (kbuild_ns in common.sh), by a scratch directory that
# receives every file written. At that path every command Kbuild recorded
# still matches, so make redoes only what the commands change (a relink, not
# a rebuild), and the cache stays as it was.
#
#   scripts/kernel-overlay.sh VARIANT SCRATCH -- COMMANDS
#
# COMMANDS run in bash in the build directory, with `kmake` (the recipe's
# make command, written by scripts/build-kernel.sh), `make_args` and `JOBS`
# defined. Afterwards SCRATCH/upper holds what they created or changed, e.g.
# SCRATCH/upper/arch/x86/boot/bzImage. Needs root (mount namespace, overlayfs).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

[[ $# -ge 4 && "$3" == -- ]] || die "usage: scripts/kernel-overlay.sh VARIANT SCRATCH -- COMMANDS"
variant="$1" scratch="$2"
shift 3
build="$("$REPO_ROOT/scripts/build-kernel.sh" "$variant")"
kmake_file="${build%/build}/kmake.sh"
[[ -f "$kmake_file" ]] ||
    die "$kmake_file missing: that $variant build predates it; remove ${build%/build} and build again"
rm -rf "$scratch" && mkdir -p "$scratch/upper" "$scratch/work"
kbuild_ns "$kmake_file" "$scratch" "$*"

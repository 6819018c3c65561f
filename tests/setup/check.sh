#!/usr/bin/env bash
# Does scripts/setup.sh resolve on a new machine? Without needing one: the
# dpkg state of a new machine of this kind is rebuilt from this machine's
# (only the packages named in new-machine-packages.txt are kept) and setup's
# package lists are resolved against it with apt-get -s. A control checks
# that this state still reproduces the conflict setup works around
# (qemu-utils 10 from bookworm-backports against bookworm's qemu-system 7.2):
# if it stops failing, the fixture no longer describes a new machine.
#
#   tests/setup/check.sh        (after scripts/setup.sh; prints "setup check: N passed, M failed")
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
here="$REPO_ROOT/tests/setup"

passed=0 failed=0
ok()  { passed=$((passed + 1)); echo "ok   setup/$1"; }
bad() { failed=$((failed + 1)); echo "FAIL setup/$1"; sed 's/^/     /' <<<"$2" | tail -n 20; }

state="$(mktemp -d)"
trap 'rm -rf "$state"' EXIT
# The stanzas of /var/lib/dpkg/status whose package is on the list.
awk 'NR == FNR { if ($0 !~ /^#/) keep[$0] = 1; next }
     /^Package: / { p = ($2 in keep) }
     p' "$here/new-machine-packages.txt" /var/lib/dpkg/status >"$state/status"
kept=$(grep -c '^Package: ' "$state/status" || true)
if [[ $kept -ge 600 ]]; then
    ok "new_machine_state ($kept packages)"
else
    bad new_machine_state "only $kept of the new machine's packages are installed here"
fi

# 1. setup's own plan, from that state.
if out="$("$REPO_ROOT/scripts/setup.sh" --dry-run --admindir "$state" 2>&1)" &&
        grep -q 'the package lists resolve' <<<"$out"; then
    ok "plan_resolves_from_a_new_machine"
    [[ -n "${KHB_VERBOSE:-}" ]] && sed 's/^/     /' <<<"$out"
else
    bad plan_resolves_from_a_new_machine "$out"
fi

# 2. The control: the same packages in one plain apt-get install, as setup
# did before it matched QEMU to the installed qemu-utils, must not resolve.
mapfile -t list < <("$REPO_ROOT/scripts/setup.sh" --list-packages)
if out="$(apt-get -s -q -o "Dir::State::status=$state/status" install "${list[@]}" 2>&1)"; then
    bad plain_install_conflicts "a plain install of setup's ${#list[@]} packages resolved: the fixture no longer reproduces a new machine's QEMU conflict"
elif grep -q 'qemu' <<<"$out"; then
    ok "plain_install_conflicts (as on a new machine: $(grep -m1 -o 'qemu-utils : Breaks: [^ ]*' <<<"$out"))"
else
    bad plain_install_conflicts "failed, but not over QEMU: $out"
fi

echo "setup check: $passed passed, $failed failed"
[[ $failed == 0 ]]

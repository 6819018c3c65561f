#!/usr/bin/env bash
# The main job, end to end: set up, build the test kernel (cached), the host
# tool and the module (which packs that kernel's headers and embeds them),
# boot the kernel in QEMU, load the module, mount /dev/kheaders0, show what
# is there, and run a bcc program against it with no configuration
# (kheaders-mount; under QEMU TCG bcc's compile takes a minute).
#
#   scripts/demo.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

say "setup"
scripts/setup.sh
say "test kernel"
KTREE="$(scripts/build-kernel.sh)"
say "host tool"
cargo build --release --locked --quiet
say "module (packs the headers of $KTREE and embeds them)"
make -C "$KTREE" -s M="$REPO_ROOT" modules
target/release/kheaders-image inspect kmod/kheaders.img

say "booting the test kernel (QEMU; under TCG this takes a few seconds)"
exec scripts/vm-run.sh --timeout 900 -- "
set -e
export KHB_REPO='$REPO_ROOT' KHB_MODULE='$REPO_ROOT/kmod/kheaders_blk.ko' KHB_KERNEL_TREE='$KTREE'
source '$REPO_ROOT/tests/vm/lib.sh'   # kernel_cpp_flags, no_headers_installed
echo '# insmod kmod/kheaders_blk.ko'
insmod '$REPO_ROOT/kmod/kheaders_blk.ko'
dmesg | grep kheaders_blk: | tail -n1
ls -l /dev/kheaders0
echo
# (In this VM /lib/modules/\$(uname -r)/build is virtme-ng's link to the
# kernel tree; on a real system mount there or point BCC_KERNEL_SOURCE here.)
build=/usr/src/kheaders-\$(uname -r)
echo \"# mount -t squashfs /dev/kheaders0 \$build\"
mkdir -p \$build
mount -t squashfs /dev/kheaders0 \$build
findmnt \$build
echo
echo '# ls' \$build \$build/include
ls \$build \$build/include | head -n 12
echo
echo '# head' \$build/include/linux/sched.h
head -n 12 \$build/include/linux/sched.h
echo
echo '# preprocess a tracing-style program against the mounted headers (what bcc does)'
printf '#include <linux/sched.h>\n#include <linux/blkdev.h>\nint size = sizeof(struct task_struct);\n' >/tmp/prog.c
gcc -E \$(kernel_cpp_flags \$build x86) /tmp/prog.c -o /tmp/prog.i
echo \"preprocessed: \$(wc -l </tmp/prog.i) lines from \$(grep -c '^# 1 \"' /tmp/prog.i) headers\"
umount \$build
rmmod kheaders_blk
echo '# unmounted and unloaded'
echo
echo '# zero configuration for bcc: the module installed, no headers anywhere'
no_headers_installed
echo '# kheaders-mount'
'$REPO_ROOT/userspace/kheaders-mount'
echo '# a bcc kprobe program that includes linux/sched.h and linux/fs.h (tests/vm/bcc-count-reads.py)'
'$REPO_ROOT/tests/vm/bcc-count-reads.py'
echo '# kheaders-mount --undo'
'$REPO_ROOT/userspace/kheaders-mount' --undo
"

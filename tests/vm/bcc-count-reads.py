#!/usr/bin/python3
"""The bcc program of the client tests and the bcc benchmark: a kprobe on
vfs_read that includes kernel headers, reads task_struct and file fields and
counts this process's reads. Prints "events N".

    bcc-count-reads.py [--first]   (--first: stop at the first event)
"""
import os
import sys

from bcc import BPF

PROG = r"""
#include <uapi/linux/ptrace.h>
#include <linux/sched.h>
#include <linux/fs.h>
BPF_HASH(reads, u32, u64);
int on_vfs_read(struct pt_regs *ctx, struct file *file) {
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 tgid = task->tgid;
    if (!(file->f_mode & FMODE_READ))
        return 0;
    reads.increment(tgid);
    return 0;
}
"""

first = "--first" in sys.argv[1:]
# Kernels since 6.19 build with -fms-extensions, and their headers need it
# (7.3's fs.h embeds struct __filename_head by tag); bcc 0.26 does not pass
# it by itself. Harmless for 6.12's headers.
b = BPF(text=PROG, cflags=["-fms-extensions"])
b.attach_kprobe(event="vfs_read", fn_name="on_vfs_read")
n = 0
for _ in range(1 if first else 50):
    with open("/proc/self/stat") as f:
        f.read()
    n = sum(v.value for k, v in b["reads"].items() if k.value == os.getpid())
print(f"events {n}")
sys.exit(0 if n > 0 else 1)

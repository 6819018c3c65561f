// A bcc-style tracing program (cf. bcc's tools/biolatency, opensnoop):
// what bcc preprocesses against the headers before compiling to BPF.
#include <uapi/linux/ptrace.h>
#include <linux/sched.h>
#include <linux/fs.h>
#include <linux/blk-mq.h>

struct event {
	u32 pid;
	char comm[TASK_COMM_LEN];
	u64 bytes;
};

int trace_read(struct pt_regs *ctx, struct file *file, char __user *buf, size_t count)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return task->pid + file->f_flags + count;
}

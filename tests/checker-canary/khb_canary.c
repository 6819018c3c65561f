// SPDX-License-Identifier: GPL-2.0
/*
 * The checkers' self-test: on load, commits the one bug named by `bug=` and
 * fails to load, so that tests/vm/checkers.sh can show that the kernel
 * reports it and that tests/vm/kernel-reports.sh recognises the report.
 * Each bug is chosen to be reported without damaging the running kernel.
 */
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

static char *bug = "";
module_param(bug, charp, 0444);
MODULE_PARM_DESC(bug, "kasan, lockdep, atomic-sleep, leak, warn or list");

static DEFINE_MUTEX(lock_a);
static DEFINE_MUTEX(lock_b);
static DEFINE_SPINLOCK(spin);

/* noinline, so that the reports name them. */
static noinline void khb_canary_use_after_free(void)
{
	char *p = kmalloc(64, GFP_KERNEL);

	if (!p)
		return;
	kfree(p);
	pr_info("khb_canary: read after free: %d\n", READ_ONCE(p[8]));
}

static noinline void khb_canary_lock_inversion(void)
{
	mutex_lock(&lock_a);
	mutex_lock(&lock_b);
	mutex_unlock(&lock_b);
	mutex_unlock(&lock_a);
	mutex_lock(&lock_b);
	mutex_lock(&lock_a);
	mutex_unlock(&lock_a);
	mutex_unlock(&lock_b);
}

static noinline void khb_canary_sleep_in_atomic(void)
{
	spin_lock(&spin);
	might_sleep();
	spin_unlock(&spin);
}

static noinline void khb_canary_leak(void)
{
	void *p = kmalloc(128, GFP_KERNEL);

	/* Only the address, hashed: kmemleak must find no pointer to it. */
	pr_info("khb_canary: leaked %p\n", p);
}

static noinline void khb_canary_list_double_del(void)
{
	LIST_HEAD(head);
	struct list_head entry;

	list_add(&entry, &head);
	list_del(&entry);
	list_del(&entry);
}

static int __init canary_init(void)
{
	if (!strcmp(bug, "kasan"))
		khb_canary_use_after_free();
	else if (!strcmp(bug, "lockdep"))
		khb_canary_lock_inversion();
	else if (!strcmp(bug, "atomic-sleep"))
		khb_canary_sleep_in_atomic();
	else if (!strcmp(bug, "leak"))
		khb_canary_leak();
	else if (!strcmp(bug, "warn"))
		WARN(1, "khb_canary: deliberate warning\n");
	else if (!strcmp(bug, "list"))
		khb_canary_list_double_del();
	else
		return -EINVAL;
	return -ECANCELED;
}
module_init(canary_init);

MODULE_DESCRIPTION("kheaders-blk test: deliberate bugs for the kernel's checkers");
MODULE_LICENSE("GPL");

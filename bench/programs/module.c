// An out-of-tree character-device module: the includes of a typical driver.
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/init.h>
#include <linux/slab.h>
#include <linux/miscdevice.h>
#include <linux/uaccess.h>
#include <linux/mutex.h>

static DEFINE_MUTEX(lock);

static ssize_t demo_read(struct file *f, char __user *buf, size_t len, loff_t *off)
{
	return 0;
}

static const struct file_operations demo_fops = {
	.owner = THIS_MODULE,
	.read = demo_read,
};

static struct miscdevice demo = { .minor = MISC_DYNAMIC_MINOR, .name = "demo", .fops = &demo_fops };
module_misc_device(demo);
MODULE_LICENSE("GPL");

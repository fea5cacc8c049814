// SPDX-License-Identifier: GPL-2.0
/*
 * msgq's C shim: the misc device and its file_operations, whose handlers
 * are in Rust. The contracts are in msgq_shim.h.
 *
 * Why C: Linux 7.3's `MiscDevice` trait has `read_iter`, `write_iter` and
 * `ioctl`, but no `poll`, and a device without one is reported readable
 * and writable by poll() at all times (DEFAULT_POLLMASK).
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>

#include "msgq_shim.h"

/* What msgq_file_open() gets; set before the device exists. */
static void *msgq_ctx;

/* misc_open() calls this with misc_mtx held. */
static int msgq_open(struct inode *inode, struct file *file)
{
	/* A queue has no file position: lseek(), pread() and pwrite() fail (ESPIPE). */
	stream_open(inode, file);
	return msgq_file_open(msgq_ctx, file);
}

/* The VFS calls this once, after the last reference to the file is put. */
static int msgq_release(struct inode *inode, struct file *file)
{
	msgq_file_release(file);
	return 0;
}

// ANCHOR: fops
static const struct file_operations msgq_fops = {
	/* An open file holds the module: no handler runs after exit. */
	.owner = THIS_MODULE,
	.open = msgq_open,
	.release = msgq_release,
	.read_iter = msgq_file_read_iter,
	.write_iter = msgq_file_write_iter,
	.poll = msgq_file_poll,
	.unlocked_ioctl = msgq_file_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};
// ANCHOR_END: fops

static struct miscdevice msgq_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "msgq",
	.fops = &msgq_fops,
};

int msgq_register(void *ctx)
{
	msgq_ctx = ctx;
	return misc_register(&msgq_misc);
}

void msgq_deregister(void)
{
	misc_deregister(&msgq_misc);
}

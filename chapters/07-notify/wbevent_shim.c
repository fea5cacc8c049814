// SPDX-License-Identifier: GPL-2.0
/*
 * wbevent's C shim: the misc device and its file_operations, whose
 * handlers are in Rust, and `struct pid` references. The contracts are in
 * wbevent_shim.h.
 *
 * Why C: in Linux 7.3 the `kernel` crate's `MiscDevice` has no `poll` or
 * `fasync` operation, and get_pid(), task_pid() and clear_siginfo() are
 * inline functions that `kernel::bindings` cannot call.
 */
#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/signal.h>

#include "wbevent_shim.h"

/* What wbevent_file_open() gets; set before the device exists. */
static void *wbevent_ctx;

static atomic_long_t pids_held = ATOMIC_LONG_INIT(0);

/* misc_open() calls this with misc_mtx held (see wbevent_register()). */
static int wbevent_open(struct inode *inode, struct file *file)
{
	return wbevent_file_open(wbevent_ctx, file);
}

/* The VFS calls this once, at the last fput(), after ->fasync(-1, file, 0). */
static int wbevent_release(struct inode *inode, struct file *file)
{
	wbevent_file_release(file);
	return 0;
}

// ANCHOR: fops
static const struct file_operations wbevent_fops = {
	/* An open file holds the module: no handler runs after exit. */
	.owner = THIS_MODULE,
	.open = wbevent_open,
	.release = wbevent_release,
	.read = wbevent_file_read,
	.write = wbevent_file_write,
	.poll = wbevent_file_poll,
	.fasync = wbevent_file_fasync,
	.unlocked_ioctl = wbevent_file_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice wbevent_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "wbevent",
	.fops = &wbevent_fops,
};

int wbevent_register(void *ctx)
{
	wbevent_ctx = ctx;
	return misc_register(&wbevent_misc);
}

void wbevent_deregister(void)
{
	misc_deregister(&wbevent_misc);
}
// ANCHOR_END: fops

// ANCHOR: pid
struct pid *wbevent_pid_get_current(void)
{
	atomic_long_inc(&pids_held);
	/* A running thread is attached to its pid: task_pid() is not NULL. */
	return get_pid(task_pid(current));
}

void wbevent_pid_put(struct pid *pid)
{
	put_pid(pid);
	atomic_long_dec(&pids_held);
}

int wbevent_pid_nr(struct pid *pid)
{
	return pid_nr(pid);
}

int wbevent_pid_signal(struct pid *pid, int sig, int value)
{
	struct kernel_siginfo info;
	struct task_struct *task;
	int err;

	if (sig < SIGRTMIN || sig > _NSIG)
		return -EINVAL;
	/*
	 * The thread, if it is still attached to `pid`: release_task()
	 * detaches it when it is reaped, and a new thread given the same
	 * number gets a new `struct pid`, so this never finds a stranger.
	 */
	task = get_pid_task(pid, PIDTYPE_PID);
	if (!task)
		return -ESRCH;
	/* What sigqueue(3) sends, with no sender: si_pid and si_uid are 0. */
	clear_siginfo(&info);
	info.si_signo = sig;
	info.si_code = SI_QUEUE;
	info.si_int = value;
	/*
	 * Takes the thread's siglock. -ESRCH only once the thread is released
	 * (reaped); a thread that is exiting still returns 0, and the signal
	 * is dropped (task_can_queue_signal(), SIGNAL_GROUP_EXIT).
	 */
	err = send_sig_info(sig, &info, task);
	put_task_struct(task);
	return err;
}
// ANCHOR_END: pid

long wbevent_pids_held(void)
{
	return atomic_long_read(&pids_held);
}

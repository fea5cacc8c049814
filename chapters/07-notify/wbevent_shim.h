/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two directions of the Rust/C boundary of the wbevent module.
 *
 * C to Rust: the file operations of /dev/wbevent, written in Rust with
 * `#[unsafe(no_mangle)] extern "C"`. The VFS calls each with a reference
 * on `file` held for the whole call; `file->private_data` is what
 * wbevent_file_open() stored, until wbevent_file_release() returns.
 *
 * Rust to C: registering the misc device (Rust's `MiscDevice` in 7.3 has
 * no `poll` or `fasync` hook), and `struct pid` references, which 7.3's
 * `kernel` crate does not wrap (get_pid() and task_pid() are inline).
 */
#ifndef WBEVENT_SHIM_H
#define WBEVENT_SHIM_H

#include <linux/types.h>

struct file;
struct pid;
struct poll_table_struct;

/* Implemented in Rust (wbevent_main.rs). */
int wbevent_file_open(void *ctx, struct file *file);
void wbevent_file_release(struct file *file);
ssize_t wbevent_file_read(struct file *file, char __user *buf, size_t count, loff_t *pos);
ssize_t wbevent_file_write(struct file *file, const char __user *buf, size_t count, loff_t *pos);
__poll_t wbevent_file_poll(struct file *file, struct poll_table_struct *wait);
int wbevent_file_fasync(int fd, struct file *file, int on);
long wbevent_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/*
 * Registers /dev/wbevent. From the moment it is called until
 * wbevent_deregister() has returned, an open of the device calls
 * wbevent_file_open(ctx, file); opens never run concurrently with
 * wbevent_deregister() (both take misc_mtx). Returns 0 or a negative
 * errno. Once only, and wbevent_deregister() once after a success.
 */
int wbevent_register(void *ctx);
/* Removes the device; no open runs during or after it. May sleep. */
void wbevent_deregister(void);

/*
 * A counted reference to the calling thread's `struct pid` (never NULL).
 * Process context only. Each must be given back with wbevent_pid_put().
 */
struct pid *wbevent_pid_get_current(void);
/* Drops a reference from wbevent_pid_get_current(); it must not be used after. */
void wbevent_pid_put(struct pid *pid);
/*
 * The thread's number in the initial pid namespace. It stays in `pid` after
 * the thread is gone, when another thread may be given the same number.
 */
int wbevent_pid_nr(struct pid *pid);
/*
 * Sends real-time signal `sig` (SIGRTMIN to _NSIG) carrying `value` in
 * si_int to the thread `pid` names: 0, -ESRCH if that thread is gone (reaped: an exiting thread gives 0
 * and never sees the signal),
 * -EAGAIN if its queue of real-time signals is full, -EINVAL for a bad
 * `sig`. `pid` must be a live reference. Process context, any locks but
 * spinlocks held.
 */
int wbevent_pid_signal(struct pid *pid, int sig, int value);
/* How many references from wbevent_pid_get_current() are not given back. */
long wbevent_pids_held(void);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two directions of the Rust/C boundary of the msgq module.
 *
 * C to Rust: the file operations of /dev/msgq, written in Rust with
 * `#[unsafe(no_mangle)] extern "C"`. The VFS calls each with a reference
 * on the file held for the whole call; `file->private_data` is what
 * msgq_file_open() stored, until msgq_file_release() returns.
 *
 * Rust to C: registering the misc device. Linux 7.3's `MiscDevice` has no
 * `poll` operation, so the shim owns the `file_operations`.
 */
#ifndef MSGQ_SHIM_H
#define MSGQ_SHIM_H

#include <linux/types.h>

struct file;
struct iov_iter;
struct kiocb;
struct poll_table_struct;

/* Implemented in Rust (msgq_main.rs). */
int msgq_file_open(void *ctx, struct file *file);
void msgq_file_release(struct file *file);
ssize_t msgq_file_read_iter(struct kiocb *iocb, struct iov_iter *to);
ssize_t msgq_file_write_iter(struct kiocb *iocb, struct iov_iter *from);
__poll_t msgq_file_poll(struct file *file, struct poll_table_struct *wait);
long msgq_file_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/*
 * Registers /dev/msgq. From the moment it is called until
 * msgq_deregister() has returned, an open of the device calls
 * msgq_file_open(ctx, file), with misc_mtx held, which
 * msgq_deregister() takes too: no open runs during or after it.
 * Returns 0 or a negative errno. Once, and msgq_deregister() once after a
 * success.
 */
int msgq_register(void *ctx);
/* Removes the device. May sleep. */
void msgq_deregister(void);

#endif

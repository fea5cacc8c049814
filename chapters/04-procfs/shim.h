/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two directions of the Rust/C boundary of the procstats module.
 *
 * C to Rust: the callbacks /proc calls, written in Rust with
 * `#[unsafe(no_mangle)] extern "C"`.
 * Rust to C: the procfs calls, which Rust cannot make itself because
 * `kernel::bindings` does not cover <linux/proc_fs.h>, and because
 * `struct proc_ops` tables are plain C data best declared in C.
 */
#ifndef PROCSTATS_SHIM_H
#define PROCSTATS_SHIM_H

#include <linux/types.h>

struct file;
struct seq_file;
struct proc_dir_entry;

/* Implemented in Rust (procstats_main.rs). */
void procstats_stats_opened(void);
int procstats_show_stats(struct seq_file *m, void *v);
int procstats_show_setting(struct seq_file *m, void *v);
ssize_t procstats_write_setting(struct file *file, const char __user *buf, size_t count, loff_t *pos);
ssize_t procstats_write_reset(struct file *file, const char __user *buf, size_t count, loff_t *pos);

/*
 * Implemented in C (shim.c). procstats_create() needs a NUL-terminated
 * dir_name, read during the call only (procfs copies it), and returns NULL
 * on failure. procstats_remove() needs a directory procstats_create()
 * returned and that was not removed yet; it may sleep.
 */
struct proc_dir_entry *procstats_create(const char *dir_name);
void procstats_remove(struct proc_dir_entry *dir);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Rust/C boundary of the counters module: /proc/counters and its three
 * entries, made in C because Linux 7.3's `kernel` crate has no procfs
 * abstraction (the technique of chapter 04).
 *
 * Every callback gets `data`, the pointer given to counters_proc_create(),
 * and is only called between that call and the return of
 * counters_proc_remove().
 */
#ifndef COUNTERS_SHIM_H
#define COUNTERS_SHIM_H

#include <linux/types.h>

struct seq_file;
struct proc_dir_entry;

/* Implemented in Rust (counters_main.rs). All may sleep. */
int counters_show_stats(struct seq_file *m, void *v);
int counters_show_config(struct seq_file *m, void *v);
ssize_t counters_write_hammer(const void *data, const char __user *buf, size_t count);
ssize_t counters_write_config(const void *data, const char __user *buf, size_t count);

/*
 * Implemented in C (counters_shim.c). counters_proc_create() makes
 * /proc/counters with `stats` (read), `hammer` (write) and `config` (read
 * and write), whose callbacks get `data`; it returns NULL on failure.
 * counters_proc_remove() needs a directory counters_proc_create() returned
 * and not yet removed; it waits for the callbacks that are running, and
 * none starts after it returns. It may sleep.
 */
struct proc_dir_entry *counters_proc_create(const void *data);
void counters_proc_remove(struct proc_dir_entry *dir);

#endif

// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of the procstats module, kept as small as it can be: it only
 * creates and removes the /proc entries. Everything they do is in Rust.
 *
 * Why C at all: in Linux 7.3 the `kernel` crate has no procfs abstraction
 * and `kernel::bindings` does not include <linux/proc_fs.h>, so Rust cannot
 * call proc_mkdir() or name a `struct proc_ops`. A shim like this is how an
 * out-of-tree Rust module uses kernel APIs that have no Rust binding yet.
 */
#include <linux/fs.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#include "shim.h"

/*
 * What happens once per open happens here, not in the show callback:
 * seq_file may call show several times for one read (see
 * procstats_show_stats).
 */
static int stats_open(struct inode *inode, struct file *file)
{
	int err = single_open(file, procstats_show_stats, NULL);

	if (!err)
		procstats_stats_opened();
	return err;
}

/* /proc/DIR/stats: read-only counters. */
static const struct proc_ops stats_ops = {
	.proc_open = stats_open,
	.proc_read_iter = seq_read_iter,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

static int setting_open(struct inode *inode, struct file *file)
{
	return single_open(file, procstats_show_setting, NULL);
}

/* /proc/DIR/setting: read shows the value, write sets it (Rust validates). */
static const struct proc_ops setting_ops = {
	.proc_open = setting_open,
	.proc_read_iter = seq_read_iter,
	.proc_write = procstats_write_setting,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

/*
 * /proc/DIR/reset: write-only, zeroes the counters. A file that is never
 * read needs no open, seq_file or seek.
 */
static const struct proc_ops reset_ops = {
	.proc_write = procstats_write_reset,
};

/*
 * Creates /proc/DIR with `stats` (read-only), `setting` (read-write) and
 * `reset` (write-only).
 */
struct proc_dir_entry *procstats_create(const char *dir_name)
{
	struct proc_dir_entry *dir = proc_mkdir(dir_name, NULL);

	if (!dir)
		return NULL;
	if (!proc_create("stats", 0444, dir, &stats_ops) ||
	    !proc_create("setting", 0644, dir, &setting_ops) ||
	    !proc_create("reset", 0200, dir, &reset_ops)) {
		/* Removes the entries already made with the directory. */
		proc_remove(dir);
		return NULL;
	}
	return dir;
}

/* Removes DIR and everything in it; waits for readers to leave. */
void procstats_remove(struct proc_dir_entry *dir)
{
	proc_remove(dir);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of the counters module: it creates and removes the /proc
 * entries and passes each callback the module's pointer (pde_data).
 * Everything the entries do is in Rust. Contracts in counters_shim.h.
 */
#include <linux/fs.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#include "counters_shim.h"

static int stats_open(struct inode *inode, struct file *file)
{
	return single_open(file, counters_show_stats, pde_data(inode));
}

static const struct proc_ops stats_ops = {
	.proc_open = stats_open,
	.proc_read_iter = seq_read_iter,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

static ssize_t hammer_write(struct file *file, const char __user *buf,
			    size_t count, loff_t *pos)
{
	return counters_write_hammer(pde_data(file_inode(file)), buf, count);
}

static const struct proc_ops hammer_ops = {
	.proc_write = hammer_write,
	.proc_lseek = noop_llseek,
};

static int config_open(struct inode *inode, struct file *file)
{
	return single_open(file, counters_show_config, pde_data(inode));
}

static ssize_t config_write(struct file *file, const char __user *buf,
			    size_t count, loff_t *pos)
{
	return counters_write_config(pde_data(file_inode(file)), buf, count);
}

static const struct proc_ops config_ops = {
	.proc_open = config_open,
	.proc_read_iter = seq_read_iter,
	.proc_write = config_write,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
};

struct proc_dir_entry *counters_proc_create(const void *data)
{
	struct proc_dir_entry *dir = proc_mkdir("counters", NULL);
	void *private = (void *)data; /* procfs only hands it back */

	if (!dir)
		return NULL;
	if (!proc_create_data("stats", 0444, dir, &stats_ops, private) ||
	    !proc_create_data("hammer", 0200, dir, &hammer_ops, private) ||
	    !proc_create_data("config", 0644, dir, &config_ops, private)) {
		proc_remove(dir);
		return NULL;
	}
	return dir;
}

void counters_proc_remove(struct proc_dir_entry *dir)
{
	proc_remove(dir);
}

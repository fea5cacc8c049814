#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# vmalloc-leak.sh COMMAND...: runs COMMAND between two readings of
# VmallocUsed (/proc/meminfo) and says whether vmalloc memory leaked.
# Exits with COMMAND's status.
#
# Why a threshold: vmalloc serves more than this module. With
# CONFIG_VMAP_STACK each new process or kernel thread gets its kernel stack
# from vmalloc, so the count moves by a few pages whenever the shell forks,
# and loading a module may reserve a new 2 MiB block for module code that the
# kernel keeps for later loads. A leak of the buffer the checks ask for
# (16 MiB) is far above 4 MiB; that noise is below it.

before=$(awk '/^VmallocUsed:/ { print $2 }' /proc/meminfo)
"$@"
status=$?
after=$(awk '/^VmallocUsed:/ { print $2 }' /proc/meminfo)
grown=$((after - before))
echo "VmallocUsed: $before kB before, $after kB after"
if [ "$grown" -lt 4096 ]; then
	echo "no vmalloc leak"
else
	echo "vmalloc grew by $grown kB"
fi
exit $status

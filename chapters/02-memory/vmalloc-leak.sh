#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# vmalloc-leak.sh COMMAND...: runs COMMAND between two readings of
# VmallocUsed (/proc/meminfo) and says whether vmalloc memory leaked.
# Exits with COMMAND's status.
#
# Why a threshold: vmalloc serves more than this module. Each new process
# or kernel thread gets its 16 kB stack from vmalloc, so the count moves by a
# few pages whenever the shell forks. A leak of the module's buffers (4 MiB
# and more) is far above 1 MiB; that noise is far below it.

before=$(awk '/^VmallocUsed:/ { print $2 }' /proc/meminfo)
"$@"
status=$?
after=$(awk '/^VmallocUsed:/ { print $2 }' /proc/meminfo)
grown=$((after - before))
echo "VmallocUsed: $before kB before, $after kB after"
if [ "$grown" -lt 1024 ]; then
	echo "no vmalloc leak"
else
	echo "vmalloc grew by $grown kB"
fi
exit $status

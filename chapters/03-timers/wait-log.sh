#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# wait-log.sh PATTERN COMMAND...: runs COMMAND, then waits until the kernel
# log has a new line matching PATTERN (grep -E), for at most 10 seconds.
# Prints `seen: PATTERN` or `not seen within 10 s: PATTERN`; exits with
# COMMAND's status, or 1 if the line did not come.
#
# Lines already in the log before COMMAND ran do not count: an earlier
# load's line cannot end the wait.

pattern=$1
shift
before=$(dmesg | grep -c -E "$pattern")
"$@" || exit $?
tries=0
while [ "$(dmesg | grep -c -E "$pattern")" -le "$before" ]; do
	tries=$((tries + 1))
	if [ "$tries" -gt 200 ]; then
		echo "not seen within 10 s: $pattern"
		exit 1
	fi
	sleep 0.05
done
echo "seen: $pattern"

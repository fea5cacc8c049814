#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# wait-log.sh [-t SECONDS] PATTERN COMMAND...: runs COMMAND, then waits until
# the kernel log has a new line matching PATTERN (grep -E), for at most
# SECONDS (a whole number; 10 by default). Prints `seen: PATTERN` or
# `not seen within SECONDS s: PATTERN`; exits with COMMAND's status, or 1 if
# the line did not come.
#
# Lines already in the log before COMMAND ran do not count: an earlier
# load's line cannot end the wait.

seconds=10
if [ "$1" = "-t" ]; then
	seconds=$2
	shift 2
fi
pattern=$1
shift
before=$(dmesg | grep -c -E "$pattern")
"$@" || exit $?
tries=0
while [ "$(dmesg | grep -c -E "$pattern")" -le "$before" ]; do
	tries=$((tries + 1))
	if [ "$tries" -gt $((seconds * 20)) ]; then
		echo "not seen within $seconds s: $pattern"
		exit 1
	fi
	sleep 0.05
done
echo "seen: $pattern"

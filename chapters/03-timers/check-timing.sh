#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# check-timing.sh PERIOD_MS TICKS DELAY_MS TOLERANCE_MS
#
# Reads the kernel log and checks when the timers module's callbacks ran:
# tick N must come at least N periods after the start (a high-resolution
# timer never fires early) and at most TOLERANCE_MS later than that; the
# delayed work must run at least DELAY_MS after it was queued and at most
# TOLERANCE_MS later.
#
# Why a tolerance at all: the guest runs under software emulation on a busy
# two-core host, and a timer interrupt is delivered only when the host gives
# the guest's CPU thread time to run. Lateness of tens of milliseconds is the
# host, not the module; 200 ms (four 50 ms periods) still catches a timer
# with the wrong unit, a doubled period or a missed restart within a few
# ticks.

dmesg | awk -v period="$1" -v ticks="$2" -v delay="$3" -v tolerance="$4" '
{
	for (i = 1; i <= NF; i++) {
		if ($i == "tick" && $(i + 2) == "at") {
			split($(i + 1), nm, "/")
			n = nm[1] + 0
			ms = $(i + 3) / 1000
			low = n * period
			high = low + tolerance
			seen++
			if (ms < low) {
				printf "tick %d came early: at %.1f ms, not before %d ms\n", n, ms, low
				bad++
			} else if (ms > high) {
				printf "tick %d came late: at %.1f ms, after %d ms\n", n, ms, high
				bad++
			}
		}
		if ($i == "ran" && $(i + 1) == "after") {
			waited = $(i + 2)
			work++
			if (waited < delay || waited > delay + tolerance) {
				printf "the delayed work ran after %d ms, not within %d..%d ms\n", waited, delay, delay + tolerance
				bad++
			}
		}
	}
}
END {
	if (seen != ticks) {
		printf "%d ticks seen, %d expected\n", seen, ticks
		bad++
	}
	if (work != 1) {
		printf "the delayed work ran %d times, not once\n", work
		bad++
	}
	if (bad == 0) {
		printf "%d ticks, each within [n*%d ms, n*%d ms + %d ms]\n", seen, period, period, tolerance
		printf "delayed work ran once, within [%d ms, %d ms]\n", delay, delay + tolerance
	}
}'

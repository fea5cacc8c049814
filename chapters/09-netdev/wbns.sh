#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# wbns.sh: the network namespace the 09-netdev checks put wb1 in.
#
#   wbns.sh up         move wb1 into the namespace, give both ends an address
#                      and a permanent ARP entry for the other, bring both up
#   wbns.sh arp        set the permanent ARP entries again (taking a device
#                      down flushes its neighbours, permanent ones too)
#   wbns.sh CMD...     run CMD in the namespace
#   wbns.sh stats      one line per device: what /proc/net/dev reports
#                      (ndo_get_stats64), from each end's own namespace
#
# The kernel sends to its own addresses through `lo`, never through a
# device: with both ends in one namespace, a ping between them would never
# touch wbpair. wb0 (10.9.0.1) stays in the initial namespace; wb1
# (10.9.0.2) lives in /tmp/wbns, a namespace kept alive by a bind mount
# (`unshare --net=FILE`) so that it outlasts each step's processes.
#
# Permanent ARP entries keep ARP off the wire: every frame the counters
# show is one the checks sent.

NS=/tmp/wbns
A_MAC=02:77:62:00:00:00
B_MAC=02:77:62:00:00:01

in_ns() { nsenter --net=$NS "$@"; }

stats() {
	# Fields after "IFACE:": rx bytes packets errs drop fifo frame
	# compressed multicast, then tx bytes packets errs drop ...
	awk -F'[: ]+' -v dev="$1" '$2 == dev {
		printf "%s: rx %d packets %d bytes %d dropped, tx %d packets %d bytes %d dropped\n",
			dev, $4, $3, $6, $12, $11, $14 }' /proc/net/dev
}

case "$1" in
up)
	[ -e $NS ] || { touch $NS && unshare --net=$NS true; } || exit 1
	# busybox ip moves a device to the namespace of a process: one that
	# enters the namespace and sleeps, as itself (-F: no fork).
	nsenter --net=$NS -F sleep 30 &
	holder=$!
	sleep 0.2
	ip link set wb1 netns $holder || exit 1
	kill $holder
	# ARP entries need a route to their address: after the links are up.
	in_ns ip addr add 10.9.0.2/24 dev wb1 &&
	in_ns ip link set lo up &&
	in_ns ip link set wb1 up &&
	ip addr add 10.9.0.1/24 dev wb0 &&
	ip link set wb0 up &&
	"$0" arp
	;;
arp)
	in_ns arp -s 10.9.0.1 $A_MAC && arp -s 10.9.0.2 $B_MAC
	;;
stats)
	stats wb0
	in_ns wbns.sh __stats wb1
	;;
__stats)
	stats "$2"
	;;
*)
	in_ns "$@"
	;;
esac

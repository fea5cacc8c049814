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
#   wbns.sh bound PORT wait until a UDP socket in the namespace is bound
#                      to PORT (a server started in the background is
#                      ready), for 5 s at most
#   wbns.sh free PORT  wait until no UDP socket in the namespace is bound
#                      to PORT (the server of an earlier step has exited),
#                      for 5 s at most
#   wbns.sh sending N  wait until wb0 has sent N more frames than when it
#                      was called (a flood is under way), for 5 s at most
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

# until CMD... succeeds, every 10 ms, for 5 s at most; then fails saying so.
await() {
	what=$1
	shift
	i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -lt 500 ] || { echo "wbns.sh: not $what after 5 s" >&2; return 1; }
		usleep 10000
	done
}

# Whether /proc/net/udp (of the reader's namespace) lists a socket bound to
# port $1: local addresses read ADDR:PORT, both in hex.
udp_bound() {
	awk -v port="$(printf ':%04X' "$1")" 'NR > 1 && substr($2, length($2) - 4) == port { found = 1 } END { exit !found }' /proc/net/udp
}

udp_free() { ! udp_bound "$1"; }

# Whether process $holder has entered a network namespace other than $ours.
entered() { [ "$(readlink /proc/$holder/ns/net)" != "$ours" ]; }

# Whether wb0 has sent $target frames in all.
sent() { [ "$(cat /sys/class/net/wb0/statistics/tx_packets)" -ge "$target" ]; }

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
	ours=$(readlink /proc/$$/ns/net)
	await "in the namespace" entered || exit 1
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
bound)
	in_ns wbns.sh __bound "$2"
	;;
__bound)
	await "bound to UDP port $2" udp_bound "$2"
	;;
free)
	in_ns wbns.sh __free "$2"
	;;
__free)
	await "UDP port $2 free" udp_free "$2"
	;;
sending)
	target=$(($(cat /sys/class/net/wb0/statistics/tx_packets) + $2))
	await "sending" sent
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

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C half of kecho: kernel sockets and kernel threads, as plain
 * functions Rust can call. Linux 7.3's `kernel` crate has no socket or
 * kthread abstraction, `kthread_run` is a macro and `struct msghdr` is
 * easier to fill in C, so the shim does exactly that and no more.
 *
 * Every function returns 0 or a byte count, or a negative errno.
 */
#ifndef KECHO_SHIM_H
#define KECHO_SHIM_H

#include <linux/types.h>

struct socket;
struct task_struct;

/* Where a datagram came from (a `struct sockaddr_in`, kept opaque). */
struct kecho_peer {
	u8 raw[16];
};

int kecho_udp_open(u16 port, struct socket **res);
int kecho_tcp_listen(u16 port, struct socket **res);
int kecho_accept(struct socket *listener, struct socket **res);
int kecho_recv(struct socket *sock, void *buf, size_t len, struct kecho_peer *from);
int kecho_send(struct socket *sock, const void *buf, size_t len, const struct kecho_peer *to);
void kecho_release(struct socket *sock);

int kecho_thread_start(int (*fn)(void *data), void *data, const char *name, struct task_struct **res);
void kecho_thread_stop(struct task_struct *task);
void kecho_wait_until_stopped(void);

#endif

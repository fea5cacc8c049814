// SPDX-License-Identifier: GPL-2.0
/*
 * kecho's C shim: thin wrappers over the kernel socket API
 * (<linux/net.h>) and kthreads, for the Rust side to wrap in safe types.
 */
#include <linux/in.h>
#include <linux/kthread.h>
#include <linux/net.h>
#include <linux/sched.h>
#include <linux/socket.h>
#include <linux/uio.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "kecho_shim.h"

static_assert(sizeof(struct kecho_peer) >= sizeof(struct sockaddr_in));

/* A socket of `type` bound to 127.0.0.1:port in the initial namespace. */
static int open_bound(int type, int protocol, u16 port, struct socket **res)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	struct socket *sock;
	int err;

	err = sock_create_kern(&init_net, AF_INET, type, protocol, &sock);
	if (err)
		return err;
	/* Reloading at once must not fail on a port in TIME_WAIT. */
	sock->sk->sk_reuse = SK_CAN_REUSE;
	err = kernel_bind(sock, (struct sockaddr_unsized *)&addr, sizeof(addr));
	if (err) {
		sock_release(sock);
		return err;
	}
	*res = sock;
	return 0;
}

int kecho_udp_open(u16 port, struct socket **res)
{
	return open_bound(SOCK_DGRAM, IPPROTO_UDP, port, res);
}

int kecho_tcp_listen(u16 port, struct socket **res)
{
	int err = open_bound(SOCK_STREAM, IPPROTO_TCP, port, res);

	if (err)
		return err;
	err = kernel_listen(*res, 8);
	if (err)
		sock_release(*res);
	return err;
}

int kecho_accept(struct socket *listener, struct socket **res)
{
	return kernel_accept(listener, res, 0);
}

/* Blocks until data or an error (-ERESTARTSYS when kthread_stop() interrupts it). */
int kecho_recv(struct socket *sock, void *buf, size_t len, struct kecho_peer *from)
{
	struct kvec vec = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {};

	if (from) {
		msg.msg_name = from->raw;
		msg.msg_namelen = sizeof(from->raw);
	}
	return kernel_recvmsg(sock, &msg, &vec, 1, len, 0);
}

int kecho_send(struct socket *sock, const void *buf, size_t len, const struct kecho_peer *to)
{
	struct kvec vec = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	if (to) {
		msg.msg_name = (void *)to->raw;
		msg.msg_namelen = sizeof(struct sockaddr_in);
	}
	return kernel_sendmsg(sock, &msg, &vec, 1, len);
}

void kecho_release(struct socket *sock)
{
	sock_release(sock);
}

int kecho_thread_start(int (*fn)(void *data), void *data, const char *name, struct task_struct **res)
{
	struct task_struct *task = kthread_run(fn, data, "%s", name);

	if (IS_ERR(task))
		return PTR_ERR(task);
	*res = task;
	return 0;
}

/*
 * Tells the thread to stop and waits until its function has returned. The
 * thread is woken with a signal flagged (TIF_NOTIFY_SIGNAL), so whatever
 * interruptible wait it is in (a receive, an accept) returns -ERESTARTSYS.
 */
void kecho_thread_stop(struct task_struct *task)
{
	kthread_stop(task);
}

/* What a thread does when its work is over: sleep until kthread_stop(). */
void kecho_wait_until_stopped(void)
{
	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop())
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
}

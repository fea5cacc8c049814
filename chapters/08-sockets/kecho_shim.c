// SPDX-License-Identifier: GPL-2.0
/*
 * kecho's C shim: thin wrappers over the kernel socket API
 * (<linux/net.h>) and kthreads, for the Rust side to wrap in safe types.
 * The contracts are in kecho_shim.h.
 */
#include <linux/in.h>
#include <linux/kthread.h>
#include <linux/net.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/socket.h>
#include <linux/uio.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "kecho_shim.h"

/* An AF_INET socket of `type` in the initial network namespace. */
static int create(int type, int protocol, struct socket **sock)
{
	return sock_create_kern(&init_net, AF_INET, type, protocol, sock);
}

static int bind_loopback(struct socket *sock, u16 port)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	return kernel_bind(sock, (struct sockaddr_unsized *)&addr, sizeof(addr));
}

int kecho_udp_open(u16 port, struct socket **res)
{
	struct socket *sock;
	int err = create(SOCK_DGRAM, IPPROTO_UDP, &sock);

	if (err)
		return err;
	/* No SO_REUSEADDR here: see kecho_tcp_listen(). */
	err = bind_loopback(sock, port);
	if (err) {
		sock_release(sock);
		return err;
	}
	*res = sock;
	return 0;
}

int kecho_tcp_listen(u16 port, struct socket **res)
{
	struct socket *sock;
	int err = create(SOCK_STREAM, IPPROTO_TCP, &sock);

	if (err)
		return err;
	/*
	 * SO_REUSEADDR, so that loading again at once does not fail while
	 * the last connection's port waits out TIME_WAIT. It lets no one bind
	 * beside a *listening* TCP socket. On a UDP socket it would: any
	 * process, of any user, setting it too could bind 127.0.0.1:port and
	 * take the datagrams meant for the kernel.
	 */
	sock_set_reuseaddr(sock->sk);
	err = bind_loopback(sock, port);
	if (!err)
		err = kernel_listen(sock, 8);
	if (err) {
		sock_release(sock);
		return err;
	}
	*res = sock;
	return 0;
}

int kecho_accept(struct socket *listener, struct socket **res)
{
	/* kernel_accept() leaves *res NULL when it fails. */
	return kernel_accept(listener, res, 0);
}

int kecho_recv(struct socket *sock, void *buf, size_t len, struct sockaddr_in *from)
{
	struct kvec vec = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {};

	if (from) {
		msg.msg_name = from;
		msg.msg_namelen = sizeof(*from);
	}
	return kernel_recvmsg(sock, &msg, &vec, 1, len, 0);
}

int kecho_send(struct socket *sock, const void *buf, size_t len, const struct sockaddr_in *to)
{
	struct kvec vec = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	if (to) {
		/* Only read: msghdr has no const member for it. */
		msg.msg_name = (void *)to;
		msg.msg_namelen = sizeof(*to);
	}
	return kernel_sendmsg(sock, &msg, &vec, 1, len);
}

void kecho_release(struct socket *sock)
{
	sock_release(sock);
}

int kecho_thread_start(int (*fn)(void *data), void *data, const char *name, struct task_struct **res)
{
	struct task_struct *task = kthread_create(fn, data, "%s", name);

	if (IS_ERR(task))
		return PTR_ERR(task);
	/*
	 * Our own reference, taken before the thread can run: if fn returns
	 * early, the thread exits and its task would be freed, and
	 * kthread_stop() would touch freed memory (see its comment).
	 */
	get_task_struct(task);
	wake_up_process(task);
	*res = task;
	return 0;
}

/*
 * kthread_stop() sets the "should stop" flag, flags a pending signal on
 * the thread (TIF_NOTIFY_SIGNAL) and wakes it, so whatever interruptible
 * wait it is in (a receive, an accept, a pause) returns -ERESTARTSYS; then
 * it waits for the thread to exit.
 */
void kecho_thread_stop(struct task_struct *task)
{
	kthread_stop_put(task);
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C half of kecho: kernel sockets and kernel threads, as plain
 * functions Rust can call. Linux 7.3's `kernel` crate has no socket or
 * kthread abstraction, `kthread_create` is a macro and `struct msghdr` is
 * easier to fill in C, so the shim does exactly that and no more.
 *
 * Every function that returns an int returns 0 or a byte count, or a
 * negative errno. Every function may sleep: call them from process
 * context with no lock held. Each one's comment is its contract; the Rust
 * side's SAFETY comments cite them.
 */
#ifndef KECHO_SHIM_H
#define KECHO_SHIM_H

#include <linux/types.h>

struct socket;
struct sockaddr_in;
struct task_struct;

/*
 * A UDP socket bound to 127.0.0.1:port, or a TCP socket listening there.
 * On success *res is a socket the caller owns (see kecho_release()); on
 * failure *res is not written. `res` must be valid for a write.
 */
int kecho_udp_open(u16 port, struct socket **res);
int kecho_tcp_listen(u16 port, struct socket **res);

/*
 * The calls below need a live `sock` (not yet released). They may run on
 * several tasks at once on the same socket, as system calls on a shared
 * file descriptor do: the socket layer serialises them itself. A blocking
 * call returns -ERESTARTSYS (or -EINTR) when it would wait and its task
 * has a signal pending, which kthread_stop() flags on a kernel thread; a
 * call that finds data to return does not look for the signal.
 */

/* Waits for a connection; on success *res is a socket the caller owns. */
int kecho_accept(struct socket *listener, struct socket **res);
/*
 * Waits for data and copies up to `len` bytes to `buf`, which must be
 * valid for writes of `len` bytes; `from` is NULL or a `struct
 * sockaddr_in` valid for writes, which gets the sender's address.
 */
int kecho_recv(struct socket *sock, void *buf, size_t len, struct sockaddr_in *from);
/*
 * Sends `len` bytes of `buf`, which must be valid for reads of `len`
 * bytes, to `to` (NULL: the connected peer), a valid `struct sockaddr_in`.
 */
int kecho_send(struct socket *sock, const void *buf, size_t len, const struct sockaddr_in *to);
/* Closes and frees `sock`; nothing may use it during or after the call. */
void kecho_release(struct socket *sock);

/*
 * Starts a kernel thread named `name` (a NUL-terminated string) that calls
 * fn(data), and holds a reference on its task, stored in *res. fn may
 * return whenever it likes; it is not called at all if the thread is told
 * to stop before it first runs. On failure fn is never called and *res is
 * not written.
 */
int kecho_thread_start(int (*fn)(void *data), void *data, const char *name, struct task_struct **res);
/*
 * Tells the thread to stop (kthread_should_stop() turns true, its
 * interruptible waits return at once) and waits until fn has returned or
 * is known never to run; then drops the reference. Once per started task.
 */
void kecho_thread_stop(struct task_struct *task);

#endif

// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conn.h"
#include "fleet.h"
#include "ktls.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "ocsp.h"

struct conn *conn_new(struct conn_list *l, int fd, struct gen *g,
		      const struct sockaddr_storage *peer, socklen_t peer_len)
{
	struct conn *c;
	int one = 1;

	/* A reservation, atomic across workers. */
	if (atomic_fetch_add(l->open_conns, 1) >= l->max_conns) {
		atomic_fetch_sub(l->open_conns, 1);
		close(fd);
		errno = EBUSY;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		atomic_fetch_sub(l->open_conns, 1);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	c->list = l;
	c->fd = fd;
	c->mhd_fd = -1;
	c->refs = 1;
	c->gen = g;
	gen_ref(g);
	memcpy(&c->peer, peer, peer_len);
	c->peer_len = peer_len;
	listener_format_addr((const struct sockaddr *)peer, c->peer_text,
			     sizeof(c->peer_text));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	LIST_INSERT_HEAD(&l->head, c, link);
	l->n++;
	return c;
}

/* ---- lingering close ---- */

struct conn_linger {
	LIST_ENTRY(conn_linger) link;
	struct conn_list *list;
	struct loop_watch watch;
	struct loop_timer timer;
	size_t drained;
};

static void conn_linger_end(struct conn_linger *lg)
{
	struct conn_list *l = lg->list;

	loop_timer_cancel(l->loop, &lg->timer);
	loop_watch_del(l->loop, &lg->watch);
	close(lg->watch.fd);
	lg->watch.fd = -1;
	LIST_REMOVE(lg, link);
	l->n_lingering--;
	loop_defer_free(l->loop, lg);
	if (l->released)
		l->released(l);
}

static void conn_linger_on_timer(struct loop_timer *t)
{
	conn_linger_end(container_of(t, struct conn_linger, timer));
}

static void conn_linger_on_read(struct loop_watch *w, uint32_t events)
{
	struct conn_linger *lg = container_of(w, struct conn_linger, watch);
	char buf[4096];
	ssize_t n;

	(void)events;
	if (lg->watch.fd < 0)
		return;
	for (;;) {
		/* On kTLS a KeyUpdate or alert at the head would fail every
		 * plain recv(): take it like data. */
		n = ktls_recv_discard(lg->watch.fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) /* the client closed (or reset) too */
			break;
		lg->drained += (size_t)n;
		if (lg->drained >= CONN_LINGER_BYTES)
			break;
	}
	conn_linger_end(lg);
}

/* Take over FD: send what is queued and a FIN, drop what comes in. */
static void conn_linger(struct conn_list *l, int fd)
{
	struct conn_linger *lg;

	if (l->n_lingering >= CONN_LINGER_MAX || shutdown(fd, SHUT_WR) < 0 ||
	    !(lg = calloc(1, sizeof(*lg)))) {
		close(fd);
		return;
	}
	lg->list = l;
	if (loop_watch_add(l->loop, &lg->watch, fd, EPOLLIN,
			   conn_linger_on_read) < 0) {
		close(fd);
		free(lg);
		return;
	}
	LIST_INSERT_HEAD(&l->lingering, lg, link);
	l->n_lingering++;
	loop_timer_arm(l->loop, &lg->timer, CONN_LINGER_MS,
		       conn_linger_on_timer);
}

void conn_list_close_lingering(struct conn_list *l)
{
	struct conn_linger *lg;

	while ((lg = LIST_FIRST(&l->lingering)))
		conn_linger_end(lg);
}

/* ---- the connection ---- */

void conn_ref(struct conn *c)
{
	c->refs++;
}

void conn_close_socket(struct conn *c)
{
	if (c->fd < 0)
		return;
	loop_watch_del(c->list->loop, &c->watch);
	/* When MHD refused a kTLS socket it has closed it already, so the
	 * number may be reused by another worker's accept before this
	 * release; that connection is only admitted after its handshake,
	 * which cannot finish in between. */
	if (c->limits_bound) {
		c->limits_bound = false;
		limits_release(c->list->limits, c->fd);
	}
	if (c->fleet_bound) {
		c->fleet_bound = false;
		fleet_conn_close(c->list->fleet, c->fd);
	}
	if (!c->fd_mhd) {
		conn_linger(c->list, c->fd);
	} else if (c->mhd_closing) {
		/* MHD closes its descriptor next, with no shutdown of its own
		 * (MHD_USE_TURBO, http.c): linger on a duplicate, so unread
		 * client bytes (a KeyUpdate, a pipelined request) cannot turn
		 * the close into a reset that loses the close_notify. */
		int dup = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);

		if (dup >= 0)
			conn_linger(c->list, dup);
	}
	c->fd = -1;
}

void conn_unref(struct conn *c)
{
	struct conn_list *l = c->list;

	if (--c->refs > 0)
		return;
	c->state = CONN_CLOSED;
	loop_timer_cancel(l->loop, &c->timer);
	/* A handshake paused on OCSP: end its job before its socket goes. */
	if (c->ssl)
		ocsp_handshake_cancel(c->ssl);
	conn_close_socket(c);
	/* Keep a finished handshake's session in the cache (as tls_free). */
	if (c->ssl && SSL_is_init_finished(c->ssl))
		SSL_set_shutdown(c->ssl,
				 SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c->ssl);
	c->ssl = NULL;
	identity_clear(&c->id);
	gen_unref(c->gen);
	LIST_REMOVE(c, link);
	l->n--;
	atomic_fetch_sub(l->open_conns, 1);
	loop_defer_free(l->loop, c);
	if (l->released)
		l->released(l);
}

/* Fleet-wide limits and the block list, decided in memory (fleet.h),
 * after the local limits admitted the connection. */
static void conn_admit_fleet(struct conn *c)
{
	struct fleet *f = c->list->fleet;
	unsigned retry = 1;
	int r;

	if (!f || !c->id.verified || !c->id.fingerprint[0])
		return;
	r = fleet_conn_open(f, c->fd, c->id.fingerprint, &retry);
	if (r == FLEET_OK) {
		c->fleet_bound = true;
	} else if (r == FLEET_BLOCKED) {
		static struct log_ratelimit rl;

		c->fleet_blocked = true;
		log_ratelimited(&rl, LOG_LVL_INFO,
				"client %s: sha256:%s is on the fleet block "
				"list: 403",
				c->peer_text, c->id.fingerprint);
	} else {
		static struct log_ratelimit rl;

		metrics_inc(METRICS_CONNS_REFUSED_LIMITS);
		c->limits_refused = true;
		c->retry_after_s = retry ? retry : 1;
		log_ratelimited(&rl, LOG_LVL_INFO,
				"client %s: fleet connection limit reached "
				"for %s: 429",
				c->peer_text, c->id.fingerprint);
	}
}

/* Per-identity connection limits, in the kernel when BPF is on. A refused
 * connection still reaches HTTP, where its first request is answered 429
 * with Retry-After and the connection closed: nothing is forwarded. */
void conn_admit(struct conn *c)
{
	struct limits *l = c->list->limits;
	unsigned retry = 1;
	int r;

	if (!l) {
		conn_admit_fleet(c);
		return;
	}
	r = limits_admit(l, c->fd, &c->id, (const struct sockaddr *)&c->peer,
			 c->peer_len, &retry);
	if (r == 0) {
		c->limits_bound = true;
		conn_admit_fleet(c);
		return;
	}
	/* Refused by a limit (1), for want of limiter state (2) or on an
	 * internal error (-1): never admitted without limits. */
	c->limits_refused = true;
	c->retry_after_s = r == 1 && retry ? retry : 1;
	if (r == 1) {
		static struct log_ratelimit rl;

		metrics_inc(METRICS_CONNS_REFUSED_LIMITS);
		log_ratelimited(&rl, LOG_LVL_INFO,
				"client %s: connection limit reached for %s: "
				"429",
				c->peer_text,
				c->id.verified ? c->id.fingerprint
					       : "its address");
	} else {
		static struct log_ratelimit rl;

		metrics_inc(METRICS_CONNS_REFUSED_LIMITS_STATE);
		if (r < 0)
			log_ratelimited(&rl, LOG_LVL_WARN,
					"client %s: limits: admission check "
					"failed (%s): 429",
					c->peer_text, strerror(errno));
	}
}

void conn_mhd_attach(struct conn *c, int fd, bool tcp)
{
	c->mhd_fd = fd;
	c->fd_mhd = tcp;
}

void conn_mhd_detach(struct conn *c, bool still_open)
{
	if (c->fd_mhd) {
		c->mhd_closing = still_open;
		conn_close_socket(c);
	}
	c->mhd_fd = -1;
}

void conn_close_notify(struct conn *c)
{
	if (c->path != CONN_PATH_KTLS || c->fd < 0 || c->close_notify_sent)
		return;
	c->close_notify_sent = true;
	if (ktls_send_close_notify(c->fd) < 0 && errno != EAGAIN &&
	    errno != EPIPE && errno != ECONNRESET)
		log_debug("client %s: close_notify not sent: %s", c->peer_text,
			  strerror(errno));
}

void conn_mhd_error_end(struct conn *c, bool cut)
{
	if (cut)
		c->close_unclean = true;
	else
		conn_close_notify(c);
	if (c->mhd_fd >= 0)
		shutdown(c->mhd_fd, SHUT_WR);
}

void conn_request_begin(struct conn *c)
{
	c->active_requests++;
	c->pending_request_bytes = 0;
}

void conn_request_end(struct conn *c)
{
	if (c->active_requests)
		c->active_requests--;
}

void conn_client_bytes(struct conn *c, uint64_t n)
{
	c->pending_request_bytes += n;
}

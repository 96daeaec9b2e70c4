// SPDX-License-Identifier: MIT
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>

#include "conn.h"
#include "fleet.h"
#include "http.h"
#include "identity.h"
#include "ktls.h"
#include "limits.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "proxyproto.h"
#include "relay.h"
#include "tls.h"
#include "worker.h"

#define WORKER_ACCEPT_BATCH    64  /* accepts per readiness, for fairness */
#define WORKER_DRAIN_POLL_MS   100 /* how often a draining worker looks */
#define WORKER_PROXY_REPEEK_MS 20  /* partial PROXY header: look again */

struct worker_listener {
	struct worker *worker;
	struct loop_watch watch;
	const struct config_listen *conf;
};

struct worker {
	unsigned index;
	pthread_t thread;
	bool started;
	struct loop *loop;
	struct http_server *http;
	struct worker_shared *shared;
	struct gen *gen;
	struct worker_listener *listeners;
	size_t n_listeners;
	struct conn *conns; /* live connections */
	unsigned n_conns;

	/* Commands from the main thread. */
	int cmd_fd; /* eventfd */
	struct loop_watch cmd_watch;
	_Atomic(struct gen *) pending_gen;
	atomic_bool drain_requested;
	atomic_bool stop_requested;
	atomic_uint drain_ms;
	bool draining;
	uint64_t drain_deadline;
	bool stopping;
	atomic_bool done;
};

/* ---- configuration generations ---- */

struct gen *gen_new(struct config *cfg, SSL_CTX *ctx, unsigned id)
{
	struct gen *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->cfg = cfg;
	g->ssl_ctx = ctx;
	g->id = id;
	atomic_init(&g->refs, 1);
	return g;
}

void gen_ref(struct gen *g)
{
	atomic_fetch_add(&g->refs, 1);
}

void gen_unref(struct gen *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	SSL_CTX_free(g->ssl_ctx);
	config_free(g->cfg);
	free(g);
}

struct gen *worker_gen(struct worker *w)
{
	return w->gen;
}

struct worker_shared *worker_shared(struct worker *w)
{
	return w->shared;
}

struct loop *worker_loop(struct worker *w)
{
	return w->loop;
}

/* ---- connections ---- */

static void worker_conn_unlink(struct conn *c)
{
	struct worker *w = c->worker;

	if (c->prev)
		c->prev->next = c->next;
	else if (w->conns == c)
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	w->n_conns--;
}

void conn_tcp_closing(struct conn *c)
{
	if (c->fleet_bound) {
		c->fleet_bound = false;
		fleet_conn_close(c->worker->shared->fleet, c->fd);
	}
	if (!c->limits_bound)
		return;
	c->limits_bound = false;
	limits_release(c->worker->shared->limits, c->fd);
}

void conn_unref(struct conn *c)
{
	struct worker *w = c->worker;

	if (--c->refs > 0)
		return;
	c->state = CONN_CLOSED;
	loop_timer_cancel(w->loop, &c->timer);
	loop_watch_del(w->loop, &c->watch);
	if (c->fd >= 0) {
		conn_tcp_closing(c);
		close(c->fd);
	}
	c->fd = -1;
	SSL_free(c->ssl);
	c->ssl = NULL;
	identity_clear(&c->id);
	gen_unref(c->gen);
	worker_conn_unlink(c);
	atomic_fetch_sub(&w->shared->connections, 1);
	loop_defer_free(w->loop, c);
}

/* Close a connection that never reached MHD. */
static void worker_conn_abort(struct conn *c)
{
	c->state = CONN_CLOSED;
	conn_unref(c);
}

/*
 * The hand-off: the one place that decides the data path and gives MHD a
 * plaintext socket. With kTLS in both directions that socket is the TCP
 * socket itself; otherwise one end of a socketpair served by the relay.
 */
static int worker_handoff(struct conn *c)
{
	struct worker *w = c->worker;
	const char *reason = w->shared->no_ktls_reason;
	int sp[2];

	if (w->shared->ktls_usable &&
	    ktls_after_handshake(c->ssl, c->fd, &reason) == 1) {
		/* The socket now carries plaintext both ways; OpenSSL must
		 * not touch it again (no close_notify through it either). */
		c->path = CONN_PATH_KTLS;
		c->path_reason = NULL;
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->mhd_fd = c->fd;
		metrics_inc(METRICS_CONNS_KTLS);
		return http_server_add(w->http, c, c->fd);
	}
	c->path = CONN_PATH_USERSPACE;
	c->path_reason = reason;
	metrics_inc(METRICS_CONNS_USERSPACE);
	metrics_fallback(reason);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sp) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return -1;
	}
	if (relay_start(c, w->loop, sp[0], w->gen->cfg->request_timeout_ms) <
	    0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	c->mhd_fd = sp[1];
	/* MHD owns sp[1] from here, even if adding fails. */
	return http_server_add(w->http, c, sp[1]);
}

/* Fleet-wide limits and the block list, decided in memory (fleet.h). */
static void worker_admit_fleet(struct conn *c)
{
	struct fleet *f = c->worker->shared->fleet;
	unsigned retry = 1;
	int r;

	if (!f || !c->id.verified || !c->id.fingerprint[0])
		return;
	r = fleet_conn_open(f, c->fd, c->id.fingerprint, &retry);
	if (r == FLEET_OK) {
		c->fleet_bound = true;
	} else if (r == FLEET_BLOCKED) {
		c->fleet_blocked = true;
		log_info("client %s: sha256:%s is on the fleet block list: 403",
			 c->peer_text, c->id.fingerprint);
	} else {
		metrics_inc(METRICS_CONNS_REFUSED_LIMITS);
		c->limits_refused = true;
		c->retry_after_s = retry ? retry : 1;
		log_info("client %s: fleet connection limit reached for %s: "
			 "429",
			 c->peer_text, c->id.fingerprint);
	}
}

/* Per-identity connection limits, in the kernel when BPF is on. A refused
 * connection still reaches HTTP, where its first request is answered 429
 * with Retry-After and the connection closed: nothing is forwarded. */
static void worker_admit(struct conn *c)
{
	struct limits *l = c->worker->shared->limits;
	unsigned retry = 1;
	int r;

	if (!l)
		return;
	r = limits_admit(l, c->fd, &c->id, (const struct sockaddr *)&c->peer,
			 c->peer_len, &retry);
	if (r == 0) {
		c->limits_bound = true;
	} else if (r == 1) {
		metrics_inc(METRICS_CONNS_REFUSED_LIMITS);
		c->limits_refused = true;
		c->retry_after_s = retry ? retry : 1;
		log_info("client %s: connection limit reached for %s: 429",
			 c->peer_text,
			 c->id.verified ? c->id.fingerprint : "its address");
	} else {
		log_warn("client %s: limits: admission check failed (%s); "
			 "admitting",
			 c->peer_text, strerror(errno));
	}
	if (c->limits_refused)
		return;
	worker_admit_fleet(c);
}

static void worker_handshake_done(struct conn *c)
{
	SSL *ssl = c->ssl;

	loop_timer_cancel(c->worker->loop, &c->timer);
	loop_watch_del(c->worker->loop, &c->watch);
	c->tls_version = SSL_get_version(ssl);
	c->tls_cipher = SSL_get_cipher_name(ssl);
	c->tls_resumed = SSL_session_reused(ssl);
	c->verify_result = SSL_get_verify_result(ssl);
	if (identity_from_ssl(ssl, &c->id) < 0) {
		log_error("client %s: cannot read identity (out of memory)",
			  c->peer_text);
		worker_conn_abort(c);
		return;
	}
	log_debug("client %s: handshake done: %s %s%s, cert %s", c->peer_text,
		  c->tls_version, c->tls_cipher,
		  c->tls_resumed ? " (resumed)" : "",
		  c->id.verified ? c->id.subject : "none");
	worker_admit(c);
	c->state = CONN_HTTP;
	if (worker_handoff(c) < 0) {
		/* The relay, if it started, holds its own reference. */
		worker_conn_abort(c);
		return;
	}
	/* The handshake's reference passes to nobody: MHD and the relay
	 * took their own. */
	conn_unref(c);
}

static void worker_handshake_step(struct conn *c)
{
	switch (tls_accept_step(c->ssl, c->peer_text)) {
	case TLS_STEP_DONE:
		metrics_inc(METRICS_HANDSHAKES_OK);
		worker_handshake_done(c);
		return;
	case TLS_STEP_WANT_READ:
		if (loop_watch_set(c->worker->loop, &c->watch, EPOLLIN) < 0)
			worker_conn_abort(c);
		return;
	case TLS_STEP_WANT_WRITE:
		if (loop_watch_set(c->worker->loop, &c->watch, EPOLLOUT) < 0)
			worker_conn_abort(c);
		return;
	case TLS_STEP_FAILED:
		metrics_inc(METRICS_HANDSHAKES_FAILED);
		worker_conn_abort(c);
		return;
	}
}

static void worker_on_handshake_timeout(struct loop_timer *t);
static void worker_on_proxy_repeek(struct loop_timer *t);

/* The PROXY header names the real client: from here on it is the peer
 * for logs, policy, limits and MHD. */
static void worker_proxy_header_step(struct conn *c)
{
	struct loop *l = c->worker->loop;
	const char *why = NULL;
	char balancer[64];
	uint64_t now;

	switch (proxyproto_read(c->fd, &c->peer, &c->peer_len, &why)) {
	case PROXYPROTO_WAIT:
		loop_watch_set(l, &c->watch, EPOLLIN);
		return;
	case PROXYPROTO_MORE:
		/* Level-triggered epoll would report the partial header
		 * forever: stop watching and look again shortly. */
		loop_watch_set(l, &c->watch, 0);
		loop_timer_arm(l, &c->timer, WORKER_PROXY_REPEEK_MS,
			       worker_on_proxy_repeek);
		return;
	case PROXYPROTO_INVALID:
		log_info("client %s: %s: closing", c->peer_text, why);
		worker_conn_abort(c);
		return;
	case PROXYPROTO_DONE:
		break;
	}
	memcpy(balancer, c->peer_text, sizeof(balancer));
	listener_format_addr((const struct sockaddr *)&c->peer, c->peer_text,
			     sizeof(c->peer_text));
	log_debug("client %s: via PROXY header from %s", c->peer_text,
		  balancer);
	c->state = CONN_HANDSHAKE;
	now = loop_now_ms();
	loop_timer_arm(l, &c->timer,
		       c->deadline_ms > now ? c->deadline_ms - now : 0,
		       worker_on_handshake_timeout);
	loop_watch_set(l, &c->watch, EPOLLIN);
	worker_handshake_step(c);
}

static void worker_on_proxy_repeek(struct loop_timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);

	if (c->state != CONN_PROXY_HEADER)
		return;
	if (loop_now_ms() >= c->deadline_ms) {
		log_info("client %s: PROXY header timed out", c->peer_text);
		worker_conn_abort(c);
		return;
	}
	worker_proxy_header_step(c);
}

static void worker_on_conn_event(struct loop_watch *lw, uint32_t events)
{
	struct conn *c = container_of(lw, struct conn, watch);

	(void)events;
	if (c->state == CONN_PROXY_HEADER)
		worker_proxy_header_step(c);
	else if (c->state == CONN_HANDSHAKE)
		worker_handshake_step(c);
}

static void worker_on_handshake_timeout(struct loop_timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);

	if (c->state != CONN_HANDSHAKE && c->state != CONN_PROXY_HEADER)
		return;
	log_info("client %s: %s timed out", c->peer_text,
		 c->state == CONN_PROXY_HEADER ? "PROXY header" : "handshake");
	metrics_inc(METRICS_HANDSHAKES_TIMEOUT);
	worker_conn_abort(c);
}

static void worker_accept_one(struct worker_listener *wl, int fd,
			      const struct sockaddr_storage *peer,
			      socklen_t peer_len)
{
	struct worker *w = wl->worker;
	struct gen *g = w->gen;
	struct conn *c;
	int one = 1;

	if (atomic_fetch_add(&w->shared->connections, 1) >=
	    w->shared->max_connections) {
		atomic_fetch_sub(&w->shared->connections, 1);
		metrics_inc(METRICS_CONNS_REFUSED_MAX);
		log_warn("max_connections (%u) reached: refusing a connection",
			 w->shared->max_connections);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		atomic_fetch_sub(&w->shared->connections, 1);
		close(fd);
		return;
	}
	c->worker = w;
	c->fd = fd;
	c->mhd_fd = -1;
	c->refs = 1;
	c->gen = g;
	gen_ref(g);
	memcpy(&c->peer, peer, peer_len);
	c->peer_len = peer_len;
	listener_format_addr((const struct sockaddr *)peer, c->peer_text,
			     sizeof(c->peer_text));
	c->local_len = sizeof(c->local);
	getsockname(fd, (struct sockaddr *)&c->local, &c->local_len);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	c->ssl = SSL_new(g->ssl_ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
		log_ssl_errors(LOG_LVL_ERROR, "SSL_new");
		worker_conn_abort(c);
		return;
	}
	SSL_set_app_data(c->ssl, c->peer_text);
	c->proxy_protocol = wl->conf->proxy_protocol;
	c->state = c->proxy_protocol ? CONN_PROXY_HEADER : CONN_HANDSHAKE;
	if (loop_watch_add(w->loop, &c->watch, fd, EPOLLIN,
			   worker_on_conn_event) < 0) {
		worker_conn_abort(c);
		return;
	}
	/* One deadline covers the PROXY header and the handshake. */
	c->deadline_ms = loop_now_ms() + g->cfg->handshake_timeout_ms;
	loop_timer_arm(w->loop, &c->timer, g->cfg->handshake_timeout_ms,
		       worker_on_handshake_timeout);
}

static void worker_on_accept(struct loop_watch *lw, uint32_t events)
{
	struct worker_listener *wl =
		container_of(lw, struct worker_listener, watch);
	struct sockaddr_storage peer;
	socklen_t len;
	int i, fd;

	(void)events;
	for (i = 0; i < WORKER_ACCEPT_BATCH; i++) {
		len = sizeof(peer);
		fd = accept4(lw->fd, (struct sockaddr *)&peer, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			/* EMFILE and friends: back off until a timer or
			 * the next event rather than spin. */
			log_warn("accept on %s: %s", wl->conf->addr.text,
				 strerror(errno));
			return;
		}
		worker_accept_one(wl, fd, &peer, len);
	}
}

/* ---- commands from the main thread ---- */

static void worker_close_listeners(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->n_listeners; i++) {
		struct loop_watch *lw = &w->listeners[i].watch;

		if (lw->fd < 0)
			continue;
		loop_watch_del(w->loop, lw);
		close(lw->fd);
		lw->fd = -1;
	}
}

/* Close what is not serving a request: handshakes, idle keep-alives. */
static void worker_close_idle(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_HANDSHAKE || c->state == CONN_PROXY_HEADER)
			worker_conn_abort(c);
		else if (c->state == CONN_HTTP && c->active_requests == 0) {
			/* Never cut bytes MHD already wrote: make MHD see EOF
			 * and close; what is queued still goes out. */
			if (c->relay)
				relay_drain(c->relay);
			else if (c->mhd_fd >= 0)
				shutdown(c->mhd_fd, SHUT_RD);
		}
	}
}

static void worker_on_command(struct loop_watch *lw, uint32_t events)
{
	struct worker *w = container_of(lw, struct worker, cmd_watch);
	struct gen *g;
	uint64_t v;

	(void)events;
	if (read(w->cmd_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("worker %u: command read: %s", w->index,
			  strerror(errno));
	g = atomic_exchange(&w->pending_gen, NULL);
	if (g) {
		gen_unref(w->gen);
		w->gen = g;
		log_debug("worker %u: now on configuration %u", w->index,
			  g->id);
	}
	if (atomic_load(&w->stop_requested))
		w->stopping = true;
	if (atomic_load(&w->drain_requested) && !w->draining) {
		w->draining = true;
		w->drain_deadline = loop_now_ms() + atomic_load(&w->drain_ms);
		worker_close_listeners(w);
		http_server_drain(w->http);
	}
}

static void worker_post(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->cmd_fd, &one, sizeof(one)) < 0)
		log_error("worker %u: command write: %s", w->index,
			  strerror(errno));
}

void worker_reload(struct worker *w, struct gen *g)
{
	struct gen *old;

	gen_ref(g);
	old = atomic_exchange(&w->pending_gen, g);
	if (old)
		gen_unref(old);
	worker_post(w);
}

void worker_drain(struct worker *w, unsigned deadline_ms)
{
	atomic_store(&w->drain_ms, deadline_ms);
	atomic_store(&w->drain_requested, true);
	worker_post(w);
}

void worker_stop(struct worker *w)
{
	atomic_store(&w->stop_requested, true);
	worker_post(w);
}

/* ---- the thread ---- */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];

	snprintf(name, sizeof(name), "mtlsgw-w%u", w->index);
	pthread_setname_np(pthread_self(), name);
	while (!w->stopping) {
		int wait = -1;

		if (w->draining) {
			worker_close_idle(w);
			if (w->n_conns == 0)
				break;
			if (loop_now_ms() >= w->drain_deadline) {
				log_warn("worker %u: drain deadline: closing "
					 "%u connections",
					 w->index, w->n_conns);
				break;
			}
			wait = WORKER_DRAIN_POLL_MS;
		}
		if (loop_run_once(w->loop, wait) < 0)
			break;
	}
	atomic_store(&w->done, true);
	return NULL;
}

struct worker *worker_new(unsigned index, struct gen *g,
			  struct worker_shared *shared, const int *listen_fds,
			  size_t n)
{
	struct worker *w = calloc(1, sizeof(*w));
	size_t i;

	if (!w)
		return NULL;
	w->index = index;
	w->shared = shared;
	w->gen = g;
	gen_ref(g);
	w->cmd_fd = -1;
	w->loop = loop_new();
	w->listeners = calloc(n ? n : 1, sizeof(*w->listeners));
	if (!w->loop || !w->listeners)
		goto bad;
	w->n_listeners = n;
	for (i = 0; i < n; i++)
		w->listeners[i].watch.fd = listen_fds[i];
	for (i = 0; i < n; i++) {
		w->listeners[i].worker = w;
		w->listeners[i].conf = &g->cfg->listen[i];
		if (loop_watch_add(w->loop, &w->listeners[i].watch,
				   listen_fds[i], EPOLLIN,
				   worker_on_accept) < 0)
			goto bad;
	}
	w->cmd_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->cmd_fd < 0 || loop_watch_add(w->loop, &w->cmd_watch, w->cmd_fd,
					    EPOLLIN, worker_on_command) < 0)
		goto bad;
	w->http = http_server_new(w, w->loop, g->cfg);
	if (!w->http)
		goto bad;
	return w;
bad:
	log_error("worker %u: cannot set up", index);
	worker_free(w);
	return NULL;
}

int worker_start(struct worker *w)
{
	sigset_t all, old;
	int r;

	/* Signals belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		log_error("worker %u: pthread_create: %s", w->index,
			  strerror(r));
		return -1;
	}
	w->started = true;
	return 0;
}

void worker_join(struct worker *w)
{
	if (w && w->started) {
		pthread_join(w->thread, NULL);
		w->started = false;
	}
}

bool worker_done(struct worker *w)
{
	return atomic_load(&w->done);
}

void worker_free(struct worker *w)
{
	struct conn *c, *next;
	struct gen *g;

	if (!w)
		return;
	if (w->listeners)
		worker_close_listeners(w);
	/* MHD closes its sockets and drops its references; relays and
	 * handshakes still running are closed after. */
	http_server_free(w->http);
	for (c = w->conns; c; c = next) {
		next = c->next;
		if (c->relay)
			relay_close(c->relay);
		else if (c->state != CONN_HTTP)
			worker_conn_abort(c);
	}
	g = atomic_exchange(&w->pending_gen, NULL);
	gen_unref(g);
	gen_unref(w->gen);
	if (w->cmd_fd >= 0)
		close(w->cmd_fd);
	loop_free(w->loop);
	free(w->listeners);
	free(w);
}

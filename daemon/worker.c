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
#include <openssl/async.h>
#include <openssl/err.h>

#include "conn.h"
#include "files.h"
#include "handshake.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "ocsp.h"
#include "proxyproto.h"
#include "relay.h"
#include "worker.h"

#define WORKER_ACCEPT_BATCH  64	 /* accepts per readiness, for fairness */
#define WORKER_DRAIN_POLL_MS 100 /* how often a draining worker looks */
/* accept4 failing (out of descriptors): the listener stays readable, so
 * its watch pauses until a connection closes or this time has passed. */
#define WORKER_ACCEPT_PAUSE_MS 100
#define WORKER_ACCEPT_WARN_MS  1000 /* at most one warning per second */

struct worker_listener {
	struct worker *worker;
	struct loop_watch watch;
	/* A copy: the generation it came from may be freed by a reload
	 * (listen changes need a restart anyway). */
	struct config_listen conf;
	struct loop_timer resume; /* while paused */
	bool paused;
};

struct worker {
	unsigned index;
	pthread_t thread;
	bool started;
	struct loop *loop;
	struct worker_shared *shared;
	struct gen *gen; /* newest: new connections start on it */
	struct worker_listener *listeners;
	size_t n_listeners;
	struct handshake_ctx hs; /* connections, the HTTP server */
	struct ocsp *ocsp;	 /* OCSP cache and requests under way */

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
	unsigned accept_failures; /* since the last warning */
	uint64_t accept_warned_ms;
};

static void worker_accept_one(struct worker_listener *wl, int fd,
			      const struct sockaddr_storage *peer,
			      socklen_t peer_len)
{
	struct worker *w = wl->worker;
	struct conn *c;

	if (wl->conf.proxy_protocol &&
	    !proxyproto_source_allowed(w->gen->cfg->proxy_from,
				       w->gen->cfg->n_proxy_from,
				       (const struct sockaddr *)peer)) {
		listener_refuse_untrusted(fd, (const struct sockaddr *)peer,
					  wl->conf.addr.text);
		return;
	}
	c = conn_new(&w->hs.conns, fd, w->gen, peer, peer_len);
	if (!c) {
		if (errno == EBUSY) {
			static struct log_ratelimit rl;

			metrics_inc(METRICS_CONNS_REFUSED_MAX);
			log_ratelimited(&rl, LOG_LVL_WARN,
					"max_connections (%u) reached: "
					"refusing a connection",
					w->shared->max_connections);
		}
		return;
	}
	handshake_start(&w->hs, c, wl->conf.proxy_protocol);
}

static void worker_resume_listener(struct worker_listener *wl)
{
	if (!wl->paused)
		return;
	wl->paused = false;
	loop_timer_cancel(wl->worker->loop, &wl->resume);
	if (wl->watch.fd >= 0)
		loop_watch_set(wl->worker->loop, &wl->watch, EPOLLIN);
}

static void worker_on_accept_resume(struct loop_timer *t)
{
	worker_resume_listener(container_of(t, struct worker_listener, resume));
}

/* A connection (or a lingering socket) was closed: a descriptor is free. */
static void worker_on_conn_released(struct conn_list *l)
{
	struct worker *w = container_of(l, struct worker, hs.conns);
	size_t i;

	for (i = 0; i < w->n_listeners; i++)
		worker_resume_listener(&w->listeners[i]);
}

static void worker_pause_listener(struct worker_listener *wl, int err)
{
	struct worker *w = wl->worker;
	uint64_t now = loop_now_ms();

	w->accept_failures++;
	wl->paused = true;
	loop_watch_set(w->loop, &wl->watch, 0);
	loop_timer_arm(w->loop, &wl->resume, WORKER_ACCEPT_PAUSE_MS,
		       worker_on_accept_resume);
	if (w->accept_warned_ms &&
	    now - w->accept_warned_ms < WORKER_ACCEPT_WARN_MS)
		return;
	log_warn("accept on %s: %s: not accepting for up to %u ms (%u "
		 "failure(s) since the last warning)",
		 wl->conf.addr.text, strerror(err), WORKER_ACCEPT_PAUSE_MS,
		 w->accept_failures);
	w->accept_failures = 0;
	w->accept_warned_ms = now;
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
			/* EMFILE and friends: back off rather than spin. */
			worker_pause_listener(wl, errno);
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
		loop_timer_cancel(w->loop, &w->listeners[i].resume);
		loop_watch_del(w->loop, lw);
		close(lw->fd);
		lw->fd = -1;
	}
}

/* Close what is not serving a request: handshakes, idle keep-alives. */
static void worker_close_idle(struct worker *w)
{
	struct conn *c, *next;

	for (c = LIST_FIRST(&w->hs.conns.head); c; c = next) {
		next = LIST_NEXT(c, link);
		if (handshake_cancel(c))
			continue;
		if (c->state == CONN_HTTP && c->active_requests == 0) {
			/* Never cut bytes MHD already wrote: make MHD see EOF
			 * and close; what is queued still goes out. */
			if (c->relay)
				relay_drain(c->relay);
			else if (c->mhd_fd >= 0)
				/* kTLS: MHD closes on the EOF, close_notify
				 * first (http_notify_connection). */
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
		http_server_reload(w->hs.http, g);
		log_debug("worker %u: now on configuration %u", w->index,
			  g->id);
	}
	if (atomic_load(&w->stop_requested))
		w->stopping = true;
	if (atomic_load(&w->drain_requested) && !w->draining) {
		w->draining = true;
		w->drain_deadline = loop_now_ms() + atomic_load(&w->drain_ms);
		worker_close_listeners(w);
		http_server_drain(w->hs.http);
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
	struct conn *c, *next;
	char name[16];

	snprintf(name, sizeof(name), "mtlsgw-w%u", w->index);
	pthread_setname_np(pthread_self(), name);
	ocsp_thread_set(w->ocsp);
	while (!w->stopping) {
		int wait = -1;

		if (w->draining) {
			worker_close_idle(w);
			if (w->hs.conns.n == 0)
				break;
			if (loop_now_ms() >= w->drain_deadline) {
				log_warn("worker %u: drain deadline: closing "
					 "%u connections",
					 w->index, w->hs.conns.n);
				break;
			}
			wait = WORKER_DRAIN_POLL_MS;
		}
		if (loop_run_once(w->loop, wait) < 0)
			break;
	}
	/* A handshake paused on OCSP holds an ASYNC job of this thread:
	 * end them all here, not on the thread that frees the worker. */
	for (c = LIST_FIRST(&w->hs.conns.head); c; c = next) {
		next = LIST_NEXT(c, link);
		if (c->state == CONN_HANDSHAKE)
			handshake_cancel(c);
	}
	ASYNC_cleanup_thread();
	files_thread_cleanup();
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
	LIST_INIT(&w->hs.conns.head);
	LIST_INIT(&w->hs.conns.lingering);
	w->hs.conns.released = worker_on_conn_released;
	w->hs.conns.loop = w->loop;
	w->hs.conns.limits = shared->limits;
	w->hs.conns.fleet = shared->fleet;
	w->hs.conns.open_conns = &shared->connections;
	w->hs.conns.max_conns = shared->max_connections;
	w->hs.ktls_usable = shared->ktls_usable;
	w->hs.no_ktls_reason = shared->no_ktls_reason;
	w->listeners = calloc(n ? n : 1, sizeof(*w->listeners));
	if (!w->loop || !w->listeners)
		goto bad;
	w->n_listeners = n;
	for (i = 0; i < n; i++)
		w->listeners[i].watch.fd = listen_fds[i];
	for (i = 0; i < n; i++) {
		w->listeners[i].worker = w;
		w->listeners[i].conf = g->cfg->listen[i];
		if (loop_watch_add(w->loop, &w->listeners[i].watch,
				   listen_fds[i], EPOLLIN,
				   worker_on_accept) < 0)
			goto bad;
	}
	w->cmd_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->cmd_fd < 0 || loop_watch_add(w->loop, &w->cmd_watch, w->cmd_fd,
					    EPOLLIN, worker_on_command) < 0)
		goto bad;
	w->hs.http = http_server_new(w->loop, g, shared->limits,
				     &shared->connections);
	w->ocsp = ocsp_new(w->loop);
	if (!w->hs.http || !w->ocsp)
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
	http_server_free(w->hs.http);
	for (c = LIST_FIRST(&w->hs.conns.head); c; c = next) {
		next = LIST_NEXT(c, link);
		if (c->relay)
			relay_close(c->relay);
		else
			handshake_cancel(c);
	}
	conn_list_close_lingering(&w->hs.conns);
	g = atomic_exchange(&w->pending_gen, NULL);
	gen_unref(g);
	gen_unref(w->gen);
	if (w->cmd_fd >= 0)
		close(w->cmd_fd);
	ocsp_free(w->ocsp);
	loop_free(w->loop);
	free(w->listeners);
	free(w);
}

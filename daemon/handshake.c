// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handshake.h"
#include "http.h"
#include "ktls.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "ocsp.h"
#include "proxyproto.h"
#include "relay.h"
#include "tls.h"

#define HANDSHAKE_PROXY_REPEEK_MS 20 /* partial PROXY header: look again */

static struct handshake_ctx *handshake_ctx_of(struct conn *c)
{
	return container_of(c->list, struct handshake_ctx, conns);
}

/* Drop the handshake's reference: closes C unless MHD or the relay hold
 * it. */
static void handshake_abort(struct conn *c)
{
	conn_unref(c);
}

bool handshake_cancel(struct conn *c)
{
	if (c->state != CONN_HANDSHAKE && c->state != CONN_PROXY_HEADER)
		return false;
	handshake_abort(c);
	return true;
}

/*
 * The hand-off: the one place that decides the data path and gives MHD a
 * plaintext socket. With kTLS in both directions that socket is the TCP
 * socket itself; otherwise one end of a socketpair served by the relay.
 */
static int handshake_handoff(struct handshake_ctx *h, struct conn *c)
{
	const char *reason = h->no_ktls_reason;
	int sp[2];

	if (h->ktls_usable &&
	    ktls_after_handshake(c->ssl, c->fd, &reason) == 1) {
		/* The socket now carries plaintext both ways; OpenSSL must
		 * not touch it again (no close_notify through it either). */
		c->path = CONN_PATH_KTLS;
		c->path_reason = NULL;
		tls_free(c->ssl);
		c->ssl = NULL;
		metrics_inc(METRICS_CONNS_KTLS);
		conn_mhd_attach(c, c->fd, true);
		return http_server_add(h->http, c, c->fd);
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
	if (relay_start(c, c->list->loop, sp[0],
			c->gen->cfg->request_timeout_ms) < 0) {
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	conn_mhd_attach(c, sp[1], false);
	/* MHD owns sp[1] from here, even if adding fails. */
	return http_server_add(h->http, c, sp[1]);
}

static void handshake_done(struct conn *c)
{
	SSL *ssl = c->ssl;

	loop_timer_cancel(c->list->loop, &c->timer);
	loop_watch_del(c->list->loop, &c->watch);
	c->tls_version = SSL_get_version(ssl);
	c->tls_cipher = SSL_get_cipher_name(ssl);
	c->tls_resumed = SSL_session_reused(ssl);
	c->verify_reason = ocsp_handshake_reason(ssl);
	/* The async mode was for OCSP in the handshake only. */
	SSL_clear_mode(ssl, SSL_MODE_ASYNC);
	if (c->tls_resumed && ocsp_resumed_revoked(ssl)) {
		/* Its next attempt makes a full handshake, refused with
		 * the alert. */
		SSL_CTX_remove_session(SSL_get_SSL_CTX(ssl),
				       SSL_get_session(ssl));
		ocsp_log_refused(ssl, c->peer_text, ocsp_handshake_reason(ssl));
		metrics_inc(METRICS_HANDSHAKES_FAILED);
		handshake_abort(c);
		return;
	}
	if (identity_from_ssl(ssl, &c->id) < 0) {
		log_error("client %s: cannot read identity (out of memory)",
			  c->peer_text);
		handshake_abort(c);
		return;
	}
	log_debug("client %s: handshake done: %s %s%s, cert %s", c->peer_text,
		  c->tls_version, c->tls_cipher,
		  c->tls_resumed ? " (resumed)" : "",
		  c->id.verified ? c->id.subject : "none");
	conn_admit(c);
	c->state = CONN_HTTP;
	/* MHD and the relay took their own references (a failed hand-off
	 * dropped what it took): the handshake's goes either way. */
	handshake_handoff(handshake_ctx_of(c), c);
	conn_unref(c);
}

static void handshake_step(struct conn *c)
{
	const char *reason;

	switch (tls_accept_step(c->ssl, c->peer_text)) {
	case TLS_STEP_DONE:
		metrics_inc(METRICS_HANDSHAKES_OK);
		handshake_done(c);
		return;
	case TLS_STEP_WANT_OCSP:
		/* Quiet until ocsp.c resumes it; the deadline still runs. */
		if (loop_watch_set(c->list->loop, &c->watch, 0) < 0)
			handshake_abort(c);
		return;
	case TLS_STEP_WANT_READ:
		if (loop_watch_set(c->list->loop, &c->watch, EPOLLIN) < 0)
			handshake_abort(c);
		return;
	case TLS_STEP_WANT_WRITE:
		if (loop_watch_set(c->list->loop, &c->watch, EPOLLOUT) < 0)
			handshake_abort(c);
		return;
	case TLS_STEP_FAILED:
		metrics_inc(METRICS_HANDSHAKES_FAILED);
		/* A reason with a verified chain was ocsp_fail = open's:
		 * this failure is another one. */
		reason = ocsp_handshake_reason(c->ssl);
		if (reason && SSL_get_verify_result(c->ssl) != X509_V_OK)
			ocsp_log_refused(c->ssl, c->peer_text, reason);
		handshake_abort(c);
		return;
	}
}

/* ocsp.c: the answer a paused handshake waited for is in. */
static void handshake_on_ocsp_answer(void *arg)
{
	struct conn *c = arg;

	if (c->state == CONN_HANDSHAKE)
		handshake_step(c);
}

static void handshake_on_timeout(struct loop_timer *t);
static void handshake_on_proxy_repeek(struct loop_timer *t);

/* The PROXY header names the real client: from here on it is the peer
 * for logs, policy, limits and MHD. */
static void handshake_proxy_header_step(struct conn *c)
{
	struct loop *l = c->list->loop;
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
		loop_timer_arm(l, &c->timer, HANDSHAKE_PROXY_REPEEK_MS,
			       handshake_on_proxy_repeek);
		return;
	case PROXYPROTO_INVALID:
		log_info("client %s: %s: closing", c->peer_text, why);
		handshake_abort(c);
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
		       handshake_on_timeout);
	loop_watch_set(l, &c->watch, EPOLLIN);
	handshake_step(c);
}

static void handshake_on_proxy_repeek(struct loop_timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);

	if (c->state != CONN_PROXY_HEADER)
		return;
	if (loop_now_ms() >= c->deadline_ms) {
		log_info("client %s: PROXY header timed out", c->peer_text);
		handshake_abort(c);
		return;
	}
	handshake_proxy_header_step(c);
}

static void handshake_on_event(struct loop_watch *lw, uint32_t events)
{
	struct conn *c = container_of(lw, struct conn, watch);

	(void)events;
	if (c->state == CONN_PROXY_HEADER)
		handshake_proxy_header_step(c);
	else if (c->state == CONN_HANDSHAKE)
		handshake_step(c);
}

static void handshake_on_timeout(struct loop_timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);

	if (c->state != CONN_HANDSHAKE && c->state != CONN_PROXY_HEADER)
		return;
	log_info("client %s: %s timed out", c->peer_text,
		 c->state == CONN_PROXY_HEADER ? "PROXY header" : "handshake");
	metrics_inc(METRICS_HANDSHAKES_TIMEOUT);
	handshake_abort(c);
}

void handshake_start(struct handshake_ctx *h, struct conn *c,
		     bool proxy_protocol)
{
	struct loop *l = h->conns.loop;
	const struct config *cfg = c->gen->cfg;

	c->ssl = SSL_new(c->gen->ssl_ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		log_ssl_errors(LOG_LVL_ERROR, "SSL_new");
		handshake_abort(c);
		return;
	}
	SSL_set_app_data(c->ssl, c->peer_text);
	if ((SSL_get_mode(c->ssl) & SSL_MODE_ASYNC) &&
	    ocsp_handshake_bind(c->ssl, handshake_on_ocsp_answer, c) < 0) {
		handshake_abort(c);
		return;
	}
	c->state = proxy_protocol ? CONN_PROXY_HEADER : CONN_HANDSHAKE;
	if (loop_watch_add(l, &c->watch, c->fd, EPOLLIN, handshake_on_event) <
	    0) {
		handshake_abort(c);
		return;
	}
	/* One deadline covers the PROXY header and the handshake. */
	c->deadline_ms = loop_now_ms() + cfg->handshake_timeout_ms;
	loop_timer_arm(l, &c->timer, cfg->handshake_timeout_ms,
		       handshake_on_timeout);
}

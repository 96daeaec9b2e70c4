// SPDX-License-Identifier: MIT
/*
 * Reverse proxy (see proxy.h), the MHD side: the request's lifetime,
 * suspend/resume, the bodies both ways and the WebSocket tunnel. The
 * upstream connections are in proxy_upstream.c, the request head in
 * proxy_headers.c (see proxy_private.h).
 *
 * One struct proxy_req per proxied request:
 *
 *   headers call  -> build the upstream request head, connect (or take an
 *                    idle pooled connection), start sending
 *   body calls    -> append to the bounded out buffer (chunk-framed when
 *                    the client sent chunked: MHD has dechunked it);
 *                    when full, suspend the client until the upstream reads
 *   final call    -> queue the response built from the upstream's head, or
 *                    suspend until the head arrives (then MHD calls again)
 *   body reader   -> MHD_create_response_from_callback: reads the upstream
 *                    straight into MHD's buffer; with nothing to read it
 *                    suspends and returns 0 (in external polling MHD calls
 *                    again once resumed), and the upstream's readiness
 *                    resumes it
 *
 * libmicrohttpd 0.9.75 rules this follows (from its source):
 * - never suspend in the headers call: MHD stays in HEADERS_PROCESSED and
 *   would repeat that call after the resume;
 * - a response may be queued only in HEADERS_PROCESSED or
 *   FULL_REQ_RECEIVED, so errors met while the body streams are answered
 *   at the final call (the rest of the body is read and dropped);
 * - a content reader returning 0 without a suspend makes MHD spin;
 * - MHD_stop_daemon panics on a suspended connection: proxy_pool_stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hex.h"
#include "http_respond.h"
#include "log.h"
#include "loop.h"
#include "proxy.h"
#include "proxy_private.h"

/* Room kept free in the out buffer for a chunk header and trailer. */
#define PROXY_CHUNK_RESERVE  32
#define PROXY_MAX_CHUNK_LINE 1024
#define PROXY_TUNNEL_BATCH   16 /* reads/writes per event, for fairness */

/* A WebSocket tunnel: side 0 is the client (MHD's socket), side 1 the
 * upstream. Each side's buffer holds what was read from it. */
struct proxy_side {
	struct proxy_tunnel *t;
	int fd;
	struct loop_watch watch;
	char *buf;
	size_t len, off, cap;
	bool eof;  /* read side closed */
	bool shut; /* we shut down writing to it */
};

struct proxy_tunnel {
	struct proxy_req *pr;
	struct MHD_UpgradeResponseHandle *urh;
	struct proxy_side side[2];
	struct loop_timer timer;
	bool closed;
};

static size_t proxy_min(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* ---- request lifetime ---- */

/* A resumed connection waits for the next MHD_run: ask for one. */
static void proxy_wake(struct proxy_pool *p)
{
	p->wake(p->wake_arg);
}

static void proxy_unref(struct proxy_req *pr)
{
	struct proxy_pool *p = pr->pool;

	if (--pr->refs > 0)
		return;
	loop_timer_cancel(p->loop, &pr->timer);
	loop_watch_del(p->loop, &pr->watch);
	if (pr->fd >= 0)
		close(pr->fd);
	pr->fd = -1;
	LIST_REMOVE(pr, link);
	free(pr->obuf);
	free(pr->ibuf);
	gen_unref(pr->gen);
	/* An event later in this epoll batch may still name pr->watch. */
	loop_defer_free(p->loop, pr);
}

static void proxy_suspend(struct proxy_req *pr, enum proxy_wait wait)
{
	pr->wait = wait;
	if (!pr->suspended) {
		pr->suspended = true;
		MHD_suspend_connection(pr->mc);
	}
}

/* From loop events (inside an MHD callback for this connection it is not
 * suspended anyway). */
void proxy_resume(struct proxy_req *pr)
{
	pr->wait = PROXY_WAIT_NONE;
	if (pr->suspended) {
		pr->suspended = false;
		MHD_resume_connection(pr->mc);
		proxy_wake(pr->pool);
	}
}

/* ---- the response body (MHD's content reader) ---- */

/* Suspend until the upstream is readable; MHD calls again after. */
static ssize_t proxy_body_wait(struct proxy_req *pr)
{
	proxy_suspend(pr, PROXY_WAIT_BODY);
	proxy_update_watch(pr);
	return 0;
}

static ssize_t proxy_body_error(struct proxy_req *pr, const char *detail)
{
	proxy_fail(pr, 502, "upstream broke mid-body", detail);
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* Decode chunked bytes from ibuf into BUF. Returns bytes produced (0:
 * needs input, or the end was reached: see body_complete) or -1. */
static ssize_t proxy_dechunk(struct proxy_req *pr, char *buf, size_t max)
{
	size_t out = 0;

	while (out < max && !pr->body_complete) {
		char *p = pr->ibuf + pr->ioff, *eol, *line;
		size_t avail = pr->ilen - pr->ioff, n;

		if (pr->chunk_state == PROXY_CH_DATA) {
			if (!pr->remaining) {
				pr->chunk_state = PROXY_CH_DATA_END;
				continue;
			}
			if (!avail)
				break;
			n = proxy_min(proxy_min(avail, max - out),
				      pr->remaining > SIZE_MAX
					      ? SIZE_MAX
					      : (size_t)pr->remaining);
			memcpy(buf + out, p, n);
			out += n;
			pr->ioff += n;
			pr->remaining -= n;
			continue;
		}
		eol = memchr(p, '\n', avail);
		if (!eol) {
			if (avail >= PROXY_MAX_CHUNK_LINE)
				return -1;
			break;
		}
		line = p;
		*eol = '\0';
		if (eol > line && eol[-1] == '\r')
			eol[-1] = '\0';
		pr->ioff += (size_t)(eol - p) + 1;
		switch (pr->chunk_state) {
		case PROXY_CH_SIZE: {
			uint64_t size = 0;
			int digits = 0;

			for (; *line; line++, digits++) {
				int v = hex_value(*line);

				if (v < 0)
					break;
				if (digits == 15)
					return -1;
				size = size * 16 + (uint64_t)v;
			}
			if (!digits || (*line && *line != ';' && *line != ' ' &&
					*line != '\t'))
				return -1;
			if (size) {
				pr->remaining = size;
				pr->chunk_state = PROXY_CH_DATA;
			} else {
				pr->chunk_state = PROXY_CH_TRAILER;
			}
			break;
		}
		case PROXY_CH_DATA_END:
			if (*line)
				return -1;
			pr->chunk_state = PROXY_CH_SIZE;
			break;
		case PROXY_CH_TRAILER:
			/* Trailer fields are dropped; the empty line ends. */
			if (!*line)
				pr->body_complete = true;
			break;
		case PROXY_CH_DATA:
			break;
		}
	}
	return (ssize_t)out;
}

static ssize_t proxy_body_chunked(struct proxy_req *pr, char *buf, size_t max)
{
	ssize_t n;

	for (;;) {
		n = proxy_dechunk(pr, buf, max);
		if (n < 0)
			return proxy_body_error(pr, "bad chunked encoding");
		if (n > 0 || pr->body_complete)
			break;
		if (pr->ioff) {
			memmove(pr->ibuf, pr->ibuf + pr->ioff,
				pr->ilen - pr->ioff);
			pr->ilen -= pr->ioff;
			pr->ioff = 0;
		}
		if (pr->chunk_state == PROXY_CH_DATA && !pr->ilen) {
			/* Inside a chunk: straight into MHD's buffer. */
			size_t want =
				proxy_min(max, pr->remaining > SIZE_MAX
						       ? SIZE_MAX
						       : (size_t)pr->remaining);

			n = recv(pr->fd, buf, want, 0);
			if (n > 0) {
				pr->remaining -= (uint64_t)n;
				break;
			}
		} else {
			n = recv(pr->fd, pr->ibuf + pr->ilen,
				 PROXY_BUF_SIZE - pr->ilen, 0);
			if (n > 0) {
				pr->ilen += (size_t)n;
				continue;
			}
		}
		if (n == 0)
			return proxy_body_error(
				pr, "closed the connection mid-body (chunked "
				    "response not finished)");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			return proxy_body_wait(pr);
		return proxy_body_error(pr, strerror(errno));
	}
	if (n == 0) {
		proxy_upstream_done(pr);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	return n;
}

static ssize_t proxy_body_plain(struct proxy_req *pr, char *buf, size_t max)
{
	size_t want = max;
	ssize_t n;

	if (pr->framing == PROXY_FRAME_LENGTH) {
		if (pr->remaining < want)
			want = (size_t)pr->remaining;
		if (!want) {
			pr->body_complete = true;
			proxy_upstream_done(pr);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
	}
	if (pr->ioff < pr->ilen) {
		n = (ssize_t)proxy_min(want, pr->ilen - pr->ioff);
		memcpy(buf, pr->ibuf + pr->ioff, (size_t)n);
		pr->ioff += (size_t)n;
	} else {
		do
			n = recv(pr->fd, buf, want, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno == EAGAIN)
			return proxy_body_wait(pr);
		if (n < 0)
			return proxy_body_error(pr, strerror(errno));
		if (n == 0) {
			char detail[96];

			if (pr->framing == PROXY_FRAME_CLOSE) {
				pr->body_complete = true;
				proxy_upstream_done(pr);
				return MHD_CONTENT_READER_END_OF_STREAM;
			}
			snprintf(detail, sizeof(detail),
				 "closed the connection mid-body, %" PRIu64
				 " bytes short",
				 pr->remaining);
			return proxy_body_error(pr, detail);
		}
	}
	if (pr->framing == PROXY_FRAME_LENGTH) {
		pr->remaining -= (uint64_t)n;
		if (!pr->remaining) {
			pr->body_complete = true;
			proxy_upstream_done(pr);
		}
	}
	return n;
}

ssize_t proxy_body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct proxy_req *pr = cls;
	ssize_t n;

	(void)pos;
	if (pr->phase == PROXY_FAILED)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (pr->framing == PROXY_FRAME_NONE ||
	    (pr->body_complete && pr->framing != PROXY_FRAME_LENGTH))
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (pr->fd < 0 && pr->ioff == pr->ilen && !pr->body_complete)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (pr->framing == PROXY_FRAME_CHUNKED)
		n = proxy_body_chunked(pr, buf, max);
	else
		n = proxy_body_plain(pr, buf, max);
	if (n > 0 && pr->rq)
		pr->rq->bytes_out += (uint64_t)n;
	return n;
}

void proxy_body_reader_free(void *cls)
{
	proxy_unref(cls);
}

/* ---- WebSocket tunnel ---- */

static void proxy_tunnel_close(struct proxy_tunnel *t)
{
	struct proxy_req *pr = t->pr;
	struct loop *l = pr->pool->loop;

	if (t->closed)
		return;
	t->closed = true;
	loop_timer_cancel(l, &t->timer);
	for (int i = 0; i < 2; i++) {
		loop_watch_del(l, &t->side[i].watch);
		free(t->side[i].buf);
	}
	/* The upstream socket is ours; MHD closes the client's. */
	close(t->side[1].fd);
	MHD_upgrade_action(t->urh, MHD_UPGRADE_ACTION_CLOSE);
	proxy_wake(pr->pool);
	pr->tunnel = NULL;
	loop_defer_free(l, t);
	proxy_unref(pr);
}

static void proxy_tunnel_on_timer(struct loop_timer *tm)
{
	struct proxy_tunnel *t = container_of(tm, struct proxy_tunnel, timer);

	log_info("proxy: client %s: websocket to upstream %s (%s) idle for "
		 "%u ms: closing",
		 t->pr->client, t->pr->up->name, proxy_server_text(t->pr),
		 t->pr->up->read_timeout_ms);
	proxy_tunnel_close(t);
}

/* Move bytes read from SRC to DST. Returns true on progress; an I/O
 * error sets *BAD. */
static bool proxy_tunnel_move(struct proxy_side *src, struct proxy_side *dst,
			      bool *bad)
{
	bool progress = false;
	ssize_t n;

	for (int i = 0; i < PROXY_TUNNEL_BATCH; i++) {
		if (src->off < src->len) {
			n = send(dst->fd, src->buf + src->off,
				 src->len - src->off, MSG_NOSIGNAL);
			if (n > 0) {
				src->off += (size_t)n;
				if (src->off == src->len)
					src->off = src->len = 0;
				progress = true;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			*bad = true;
			break;
		}
		if (src->eof) {
			if (!dst->shut) {
				shutdown(dst->fd, SHUT_WR);
				dst->shut = true;
			}
			break;
		}
		n = recv(src->fd, src->buf, src->cap, 0);
		if (n > 0) {
			src->len = (size_t)n;
			progress = true;
			continue;
		}
		if (n == 0) {
			src->eof = true;
			progress = true;
			continue;
		}
		if (errno == EAGAIN || errno == EINTR)
			break;
		*bad = true;
		break;
	}
	return progress;
}

static void proxy_tunnel_pump(struct proxy_tunnel *t)
{
	struct loop *l = t->pr->pool->loop;
	bool bad = false, progress;

	progress = proxy_tunnel_move(&t->side[0], &t->side[1], &bad);
	if (!bad)
		progress |= proxy_tunnel_move(&t->side[1], &t->side[0], &bad);
	if (bad || (t->side[0].eof && t->side[1].eof &&
		    t->side[0].off == t->side[0].len &&
		    t->side[1].off == t->side[1].len)) {
		proxy_tunnel_close(t);
		return;
	}
	for (int i = 0; i < 2; i++) {
		struct proxy_side *s = &t->side[i], *o = &t->side[1 - i];
		uint32_t ev = 0;

		if (!s->eof && s->off == s->len)
			ev |= EPOLLIN;
		if (o->off < o->len)
			ev |= EPOLLOUT;
		loop_watch_set(l, &s->watch, ev);
	}
	if (progress)
		loop_timer_arm(l, &t->timer, t->pr->up->read_timeout_ms,
			       proxy_tunnel_on_timer);
}

static void proxy_tunnel_on_event(struct loop_watch *w, uint32_t events)
{
	struct proxy_side *s = container_of(w, struct proxy_side, watch);

	(void)events;
	if (!s->t->closed)
		proxy_tunnel_pump(s->t);
}

static int proxy_side_init(struct proxy_side *s, struct proxy_tunnel *t, int fd,
			   const char *data, size_t len)
{
	s->t = t;
	s->fd = fd;
	s->cap = len > PROXY_TUNNEL_BUF_SIZE ? len : PROXY_TUNNEL_BUF_SIZE;
	s->buf = malloc(s->cap);
	if (!s->buf)
		return -1;
	memcpy(s->buf, data, len);
	s->len = len;
	return 0;
}

/* MHD sent "101 Switching Protocols" and hands over the client socket. */
void proxy_upgrade_cb(void *cls, struct MHD_Connection *mc, void *req_cls,
		      const char *extra_in, size_t extra_in_size,
		      MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct proxy_req *pr = cls;
	struct loop *l = pr->pool->loop;
	struct proxy_tunnel *t = calloc(1, sizeof(*t));
	int ufd = pr->fd;

	(void)mc;
	(void)req_cls;
	loop_timer_cancel(l, &pr->timer);
	loop_watch_del(l, &pr->watch);
	pr->fd = -1;
	pr->phase = PROXY_TUNNEL;
	if (!t ||
	    proxy_side_init(&t->side[0], t, sock, extra_in, extra_in_size) <
		    0 ||
	    proxy_side_init(&t->side[1], t, ufd, pr->ibuf + pr->ioff,
			    pr->ilen - pr->ioff) < 0)
		goto bad;
	t->pr = pr;
	t->urh = urh;
	if (loop_watch_add(l, &t->side[0].watch, sock, 0,
			   proxy_tunnel_on_event) < 0 ||
	    loop_watch_add(l, &t->side[1].watch, ufd, 0,
			   proxy_tunnel_on_event) < 0)
		goto bad;
	pr->tunnel = t;
	pr->refs++;
	loop_timer_arm(l, &t->timer, pr->up->read_timeout_ms,
		       proxy_tunnel_on_timer);
	proxy_tunnel_pump(t);
	return;
bad:
	log_error("proxy: websocket tunnel: out of memory");
	if (t) {
		for (int i = 0; i < 2; i++) {
			loop_watch_del(l, &t->side[i].watch);
			free(t->side[i].buf);
		}
		free(t);
	}
	close(ufd);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	proxy_wake(pr->pool);
}

/* ---- MHD calls ---- */

static void proxy_request_free(struct http_request *rq)
{
	struct proxy_req *pr = rq->handler_ctx;

	rq->handler_ctx = NULL;
	pr->rq = NULL;
	if (pr->resp) {
		/* Built but never queued (the client went away). */
		struct MHD_Response *resp = pr->resp;

		pr->resp = NULL;
		MHD_destroy_response(resp);
	}
	/* Still held: the response did not complete (a pooled or tunnelled
	 * connection is no longer pr->fd). */
	proxy_close_upstream(pr);
	proxy_unref(pr);
}

/* An upgrade request: an Upgrade header named by Connection (RFC 9110
 * 7.8). *PROTO gets the protocol asked for. */
static bool proxy_wants_upgrade(struct MHD_Connection *mc, const char **proto)
{
	const char *c = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_CONNECTION);

	*proto = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
					     MHD_HTTP_HEADER_UPGRADE);
	return *proto && c && proxy_has_token(c, "upgrade");
}

static enum MHD_Result proxy_start(struct http_request *rq)
{
	struct proxy_pool *pool = rq->proxy;
	const struct config_upstream *up;
	struct proxy_req *pr;
	const char *te, *cl, *proto;
	bool upgrade;

	up = config_find_upstream(rq->cfg, rq->loc->proxy_upstream);
	if (!up || !up->n_servers) {
		log_error("proxy: location %s: no upstream '%s'",
			  rq->loc->prefix, rq->loc->proxy_upstream);
		rq->note = "no upstream";
		return http_respond_text(rq, MHD_HTTP_BAD_GATEWAY,
					 "502 Bad Gateway\n");
	}
	upgrade = proxy_wants_upgrade(rq->mc, &proto);
	if (upgrade && (!rq->loc->websocket || strcasecmp(proto, "websocket") ||
			strcmp(rq->version, MHD_HTTP_VERSION_1_1))) {
		rq->note = "upgrade refused";
		return http_respond_text(rq, MHD_HTTP_BAD_REQUEST,
					 "400 Bad Request: upgrade is not "
					 "allowed here\n");
	}
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return MHD_NO;
	pr->pool = pool;
	pr->rq = rq;
	pr->mc = rq->mc;
	pr->gen = rq->gen;
	gen_ref(pr->gen);
	pr->loc = rq->loc;
	pr->up = up;
	pr->refs = 1;
	pr->fd = -1;
	pr->replayable = true;
	pr->head_request = !strcmp(rq->method, MHD_HTTP_METHOD_HEAD);
	pr->upgrade = upgrade;
	snprintf(pr->client, sizeof(pr->client), "%s", rq->conn->peer_text);
	LIST_INSERT_HEAD(&pool->reqs, pr, link);
	rq->handler_ctx = pr;
	rq->handler_free = proxy_request_free;

	/* MHD dechunks a chunked body: frame it again toward the upstream. */
	te = MHD_lookup_connection_value(rq->mc, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_TRANSFER_ENCODING);
	cl = MHD_lookup_connection_value(rq->mc, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (te && proxy_has_token(te, "chunked"))
		pr->req_framing = PROXY_FRAME_CHUNKED;
	else if (cl)
		pr->req_framing = PROXY_FRAME_LENGTH;
	pr->ibuf = malloc(PROXY_BUF_SIZE);
	if (!pr->ibuf || proxy_build_head(pr) < 0) {
		log_error("proxy: out of memory");
		return MHD_NO;
	}
	pr->first_server = pool->rr++ % up->n_servers;
	proxy_connect(pr, true);
	return MHD_YES;
}

/* Move unsent bytes to the front of the out buffer. */
static void proxy_compact(struct proxy_req *pr)
{
	memmove(pr->obuf, pr->obuf + pr->osent, pr->olen - pr->osent);
	pr->olen -= pr->osent;
	pr->osent = 0;
	pr->replayable = false;
}

static enum MHD_Result proxy_body(struct proxy_req *pr, const char *data,
				  size_t *size)
{
	size_t n, room;
	char hdr[24];
	int hl;

	while (*size && pr->phase != PROXY_FAILED && !pr->discard_body) {
		room = pr->ocap - pr->olen;
		if (pr->osent &&
		    (pr->osent == pr->olen || room < pr->ocap / 4)) {
			proxy_compact(pr);
			room = pr->ocap - pr->olen;
		}
		/* Full of unsent bytes: the upstream's EPOLLOUT resumes. */
		if (room <= PROXY_CHUNK_RESERVE) {
			proxy_suspend(pr, PROXY_WAIT_SEND);
			break;
		}
		n = proxy_min(*size, room - PROXY_CHUNK_RESERVE);
		if (pr->req_framing == PROXY_FRAME_CHUNKED) {
			hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
			memcpy(pr->obuf + pr->olen, hdr, (size_t)hl);
			pr->olen += (size_t)hl;
		}
		memcpy(pr->obuf + pr->olen, data, n);
		pr->olen += n;
		if (pr->req_framing == PROXY_FRAME_CHUNKED) {
			memcpy(pr->obuf + pr->olen, "\r\n", 2);
			pr->olen += 2;
		}
		pr->rq->bytes_in += n;
		data += n;
		*size -= n;
		if (pr->phase != PROXY_REQUEST)
			continue; /* still connecting: it fills the buffer */
		proxy_send(pr);
		if (pr->fd >= 0 && pr->phase == PROXY_REQUEST)
			proxy_progress(pr);
	}
	if (pr->phase == PROXY_FAILED || pr->discard_body) {
		/* Answered at the final call; the rest of the body is dropped.
		 */
		pr->rq->bytes_in += *size;
		*size = 0;
	}
	proxy_update_watch(pr);
	return MHD_YES;
}

static enum MHD_Result proxy_final(struct proxy_req *pr)
{
	struct http_request *rq = pr->rq;
	struct MHD_Response *resp;

	if (!pr->req_done) {
		pr->req_done = true;
		if (pr->req_framing == PROXY_FRAME_CHUNKED &&
		    pr->phase != PROXY_FAILED && !pr->discard_body) {
			/* Fits: proxy_body leaves PROXY_CHUNK_RESERVE
			 * minus one chunk's framing free. */
			memcpy(pr->obuf + pr->olen, "0\r\n\r\n", 5);
			pr->olen += 5;
			if (pr->phase == PROXY_REQUEST)
				proxy_send(pr);
		}
	}
	if (pr->phase == PROXY_FAILED)
		return pr->fail_status == 504
			       ? http_respond_text(rq, MHD_HTTP_GATEWAY_TIMEOUT,
						   "504 Gateway Timeout\n")
			       : http_respond_text(rq, MHD_HTTP_BAD_GATEWAY,
						   "502 Bad Gateway\n");
	if (pr->head_done) {
		resp = pr->resp;
		pr->resp = NULL;
		pr->phase = PROXY_RESPONSE;
		if (pr->body_complete && !pr->upgrade)
			proxy_upstream_done(pr);
		proxy_update_watch(pr);
		return http_respond(rq, pr->status, resp);
	}
	proxy_suspend(pr, PROXY_WAIT_HEAD);
	proxy_update_watch(pr);
	return MHD_YES;
}

enum MHD_Result proxy_handle(struct http_request *rq, const char *upload_data,
			     size_t *upload_data_size)
{
	struct proxy_req *pr = rq->handler_ctx;

	if (!pr)
		return proxy_start(rq);
	if (*upload_data_size)
		return proxy_body(pr, upload_data, upload_data_size);
	return proxy_final(pr);
}

/* ---- the pool ---- */

struct proxy_pool *proxy_pool_new(struct loop *l, void (*wake)(void *arg),
				  void *wake_arg)
{
	struct proxy_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->loop = l;
	LIST_INIT(&p->idle);
	LIST_INIT(&p->reqs);
	p->wake = wake;
	p->wake_arg = wake_arg;
	return p;
}

void proxy_pool_stop(struct proxy_pool *p)
{
	struct proxy_req *pr, *next;

	if (!p)
		return;
	p->stopping = true;
	for (pr = LIST_FIRST(&p->reqs); pr; pr = next) {
		next = LIST_NEXT(pr, link);
		if (pr->tunnel) {
			proxy_tunnel_close(pr->tunnel);
			continue;
		}
		if (pr->suspended)
			proxy_fail(pr, 502, "gateway stopping",
				   "gateway stopping");
	}
}

void proxy_pool_free(struct proxy_pool *p)
{
	if (!p)
		return;
	proxy_idle_free_all(p);
	free(p);
}

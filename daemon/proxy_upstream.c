// SPDX-License-Identifier: MIT
/*
 * Upstream connections (see proxy_private.h): a per-worker pool of idle
 * keep-alive connections, non-blocking connect with round robin and
 * failover, connect and read timeouts, sending the request from the out
 * buffer, and reading and parsing the response head into an MHD response
 * (whose body proxy.c streams). Failures are logged here, once, with the
 * upstream's address and why.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "proxy_private.h"

/* ---- the idle pool ---- */

/* An idle keep-alive connection, on its pool's list. */
struct proxy_idle {
	struct proxy_pool *pool;
	int fd;
	struct loop_watch watch;
	struct loop_timer timer;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char upstream[80]; /* name: keepalive is counted per upstream */
	LIST_ENTRY(proxy_idle) link; /* pool->idle */
};

/* Take IC out of the pool and free it; returns its socket, still open,
 * and still registered with the loop if TO is given: then TO watches it,
 * for IN (no delete and add per request). -1 if that failed (closed). */
static int proxy_idle_take_fd(struct proxy_idle *ic, struct loop_watch *to,
			      loop_watch_fn fn)
{
	struct proxy_pool *p = ic->pool;
	int fd = ic->fd;

	ic->fd = -1;
	if (!to) {
		loop_watch_del(p->loop, &ic->watch);
	} else if (loop_watch_move(p->loop, &ic->watch, to, EPOLLIN, fn) < 0) {
		close(fd);
		fd = -1;
	}
	loop_timer_cancel(p->loop, &ic->timer);
	LIST_REMOVE(ic, link);
	loop_defer_free(p->loop, ic);
	return fd;
}

static void proxy_idle_close(struct proxy_idle *ic)
{
	close(proxy_idle_take_fd(ic, NULL, NULL));
}

/* An idle connection that becomes readable was closed by the upstream
 * (or sent something unasked): either way it cannot be reused. */
static void proxy_idle_on_event(struct loop_watch *w, uint32_t events)
{
	struct proxy_idle *ic = container_of(w, struct proxy_idle, watch);

	(void)events;
	if (ic->fd >= 0)
		proxy_idle_close(ic);
}

static void proxy_idle_on_timer(struct loop_timer *t)
{
	proxy_idle_close(container_of(t, struct proxy_idle, timer));
}

/* Pool pr's upstream socket, whose registration pr->watch holds (else
 * close it); either way pr has no upstream socket after this. */
static void proxy_idle_put(struct proxy_req *pr)
{
	struct proxy_pool *p = pr->pool;
	const struct config_addr *a = &pr->up->servers[pr->srv];
	struct proxy_idle *ic;
	unsigned n = 0;

	LIST_FOREACH(ic, &p->idle, link)
	if (!strcmp(ic->upstream, pr->up->name))
		n++;
	if (p->stopping || n >= pr->up->keepalive ||
	    strlen(pr->up->name) >= sizeof(ic->upstream) ||
	    !(ic = calloc(1, sizeof(*ic)))) {
		proxy_close_upstream(pr);
		return;
	}
	ic->pool = p;
	ic->fd = pr->fd;
	memcpy(&ic->addr, &a->ss, a->len);
	ic->addr_len = a->len;
	strcpy(ic->upstream, pr->up->name);
	if (loop_watch_move(p->loop, &pr->watch, &ic->watch,
			    EPOLLIN | EPOLLRDHUP, proxy_idle_on_event) < 0) {
		proxy_close_upstream(pr);
		free(ic);
		return;
	}
	pr->fd = -1;
	loop_timer_arm(p->loop, &ic->timer, PROXY_IDLE_TIMEOUT_MS,
		       proxy_idle_on_timer);
	LIST_INSERT_HEAD(&p->idle, ic, link);
}

/* The most recently used idle connection to one of UP's servers, or -1;
 * *server gets that server's index, TO watches it (proxy_idle_take_fd). */
static int proxy_idle_take(struct proxy_pool *p,
			   const struct config_upstream *up, size_t *server,
			   struct loop_watch *to, loop_watch_fn fn)
{
	struct proxy_idle *ic;

	LIST_FOREACH(ic, &p->idle, link)
	{
		if (strcmp(ic->upstream, up->name))
			continue;
		for (size_t i = 0; i < up->n_servers; i++) {
			if (up->servers[i].len != ic->addr_len ||
			    memcmp(&up->servers[i].ss, &ic->addr, ic->addr_len))
				continue;
			*server = i;
			return proxy_idle_take_fd(ic, to, fn);
		}
	}
	return -1;
}

/* From proxy_pool_free: the loop is done, nothing can name them. */
void proxy_idle_free_all(struct proxy_pool *p)
{
	struct proxy_idle *ic;

	while ((ic = LIST_FIRST(&p->idle))) {
		loop_watch_del(p->loop, &ic->watch);
		loop_timer_cancel(p->loop, &ic->timer);
		close(ic->fd);
		LIST_REMOVE(ic, link);
		free(ic);
	}
}

/* ---- the upstream connection ---- */

void proxy_close_upstream(struct proxy_req *pr)
{
	loop_timer_cancel(pr->pool->loop, &pr->timer);
	loop_watch_del(pr->pool->loop, &pr->watch);
	if (pr->fd >= 0)
		close(pr->fd);
	pr->fd = -1;
}

/* The response is complete: pool the connection if HTTP allows. */
void proxy_upstream_done(struct proxy_req *pr)
{
	bool reuse = pr->keepalive && pr->req_done && pr->osent == pr->olen &&
		     !pr->discard_body && pr->ioff == pr->ilen;

	if (pr->fd < 0)
		return;
	if (!reuse) {
		proxy_close_upstream(pr);
		return;
	}
	loop_timer_cancel(pr->pool->loop, &pr->timer);
	proxy_idle_put(pr);
}

/*
 * Give up on the upstream: log once, with the upstream's address and why,
 * at info (an upstream failing is not the gateway's error). STATUS is what
 * the client gets if no response has been queued yet; once one has, the
 * body reader ends with an error and MHD closes the client connection.
 */
void proxy_fail(struct proxy_req *pr, unsigned status, const char *note,
		const char *detail)
{
	struct http_request *rq = pr->rq;

	log_info("proxy: client %s %s %s: upstream %s (%s): %s%s", pr->client,
		 rq ? rq->method : "", rq && rq->path ? rq->path : "",
		 pr->up->name, proxy_server_text(pr), detail,
		 pr->phase == PROXY_RESPONSE ? ": closing the client connection"
		 : status == 504	     ? ": 504"
					     : ": 502");
	if (rq && pr->phase != PROXY_RESPONSE)
		rq->note = note;
	proxy_close_upstream(pr);
	pr->phase = PROXY_FAILED;
	pr->fail_status = status;
	proxy_resume(pr);
}

static bool proxy_can_retry(const struct proxy_req *pr)
{
	return pr->reused && pr->replayable && pr->ilen == 0 &&
	       !pr->head_done && pr->phase == PROXY_REQUEST;
}

/* A pooled connection the upstream had closed: send again on a fresh one
 * (everything sent is still in the out buffer). */
static void proxy_retry(struct proxy_req *pr)
{
	log_debug("proxy: upstream %s (%s): pooled connection was closed, "
		  "retrying on a new one",
		  pr->up->name, proxy_server_text(pr));
	proxy_close_upstream(pr);
	pr->reused = false;
	pr->osent = 0;
	pr->tries = 0;
	pr->first_server = pr->srv;
	proxy_connect(pr, false);
}

static void proxy_on_timer(struct loop_timer *t);

void proxy_update_watch(struct proxy_req *pr)
{
	struct loop *l = pr->pool->loop;
	uint32_t ev = 0;

	if (pr->fd < 0) {
		loop_timer_cancel(l, &pr->timer);
		return;
	}
	if (pr->phase == PROXY_CONNECTING) {
		loop_watch_set(l, &pr->watch, EPOLLOUT);
		return;
	}
	if (pr->osent < pr->olen && !pr->discard_body)
		ev |= EPOLLOUT;
	if (pr->phase == PROXY_REQUEST && !pr->head_done &&
	    pr->ilen < PROXY_BUF_SIZE)
		ev |= EPOLLIN;
	if (pr->phase == PROXY_RESPONSE && pr->wait == PROXY_WAIT_BODY)
		ev |= EPOLLIN;
	loop_watch_set(l, &pr->watch, ev);
	/* Waiting on the upstream: read_timeout without progress. Waiting
	 * on the client: MHD's own timeout applies. */
	if (!ev)
		loop_timer_cancel(l, &pr->timer);
	else if (!pr->timer.heap_index)
		loop_timer_arm(l, &pr->timer, pr->up->read_timeout_ms,
			       proxy_on_timer);
}

void proxy_progress(struct proxy_req *pr)
{
	loop_timer_arm(pr->pool->loop, &pr->timer, pr->up->read_timeout_ms,
		       proxy_on_timer);
}

/* ---- the response head ---- */

/* End of the head in BUF (after the empty line), or NULL. */
char *proxy_head_end(char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return buf + i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return buf + i + 3;
	}
	return NULL;
}

static bool proxy_token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

/* The line at *LINE, NUL-terminated in place (without CR LF); *LINE
 * moves past it. HEAD_END bounds the search: the head ends in "\n". */
static char *proxy_next_line(char **line, char *head_end)
{
	char *l = *line, *nl = memchr(l, '\n', (size_t)(head_end - l));

	if (!nl)
		return NULL;
	*line = nl + 1;
	*nl = '\0';
	if (nl > l && nl[-1] == '\r')
		nl[-1] = '\0';
	return l;
}

/* Split the head [HEAD, END) in place into the status and header lines.
 * Returns the number of headers or -1. */
int proxy_split_head(char *head, char *end, unsigned *status, bool *http10,
		     struct proxy_hdr *h, int max, const char **why)
{
	char *cur = head, *line = proxy_next_line(&cur, end);
	int n = 0;

	*why = "malformed status line";
	if (!line || strlen(line) < 12 || strncmp(line, "HTTP/1.", 7) ||
	    (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
	    line[9] < '1' || line[9] > '9' || line[10] < '0' ||
	    line[10] > '9' || line[11] < '0' || line[11] > '9' ||
	    (line[12] != ' ' && line[12] != '\0'))
		return -1;
	*http10 = line[7] == '0';
	*status = (unsigned)((line[9] - '0') * 100 + (line[10] - '0') * 10 +
			     (line[11] - '0'));
	*why = "malformed header line";
	while ((line = proxy_next_line(&cur, end))) {
		char *colon, *v, *e;

		if (!*line)
			break;
		colon = strchr(line, ':');
		if (!colon || colon == line)
			return -1;
		for (char *c = line; c < colon; c++)
			if (!proxy_token_char(*c))
				return -1;
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		e = v + strlen(v);
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (n == max) {
			*why = "too many header lines";
			return -1;
		}
		h[n].name = line;
		h[n].value = v;
		n++;
	}
	return n;
}

int proxy_parse_length(const char *v, uint64_t *out)
{
	uint64_t n = 0;

	if (!*v)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*out = n;
	return 0;
}

/* What the response head says about the body and the connection. */
struct proxy_head_facts {
	char conn[512]; /* Connection tokens (proxy_conn_tokens_add) */
	uint64_t length;
	bool has_length, te, chunked;
};

/* Read the framing headers of H[0..N) into F. -1 on a bad or conflicting
 * Content-Length (*why set). */
static int proxy_head_scan(const struct proxy_hdr *h, int n,
			   struct proxy_head_facts *f, const char **why)
{
	char norm[128];

	for (int i = 0; i < n; i++) {
		proxy_name_norm(h[i].name, norm, sizeof(norm));
		if (!strcmp(norm, "connection")) {
			proxy_conn_tokens_add(f->conn, sizeof(f->conn),
					      h[i].value);
		} else if (!strcmp(norm, "content-length")) {
			uint64_t v;

			if (proxy_parse_length(h[i].value, &v) < 0 ||
			    (f->has_length && v != f->length)) {
				*why = "bad Content-Length";
				return -1;
			}
			f->length = v;
			f->has_length = true;
		} else if (!strcmp(norm, "transfer-encoding")) {
			const char *last = strrchr(h[i].value, ',');

			f->te = true;
			last = last ? last + 1 : h[i].value;
			while (*last == ' ' || *last == '\t')
				last++;
			f->chunked = !strncasecmp(last, "chunked", 7) &&
				     (last[7] == '\0' || last[7] == ' ' ||
				      last[7] == '\t');
		}
	}
	return 0;
}

/* How the response body ends, and whether the upstream connection can be
 * reused after it. */
static void proxy_head_framing(struct proxy_req *pr, unsigned status,
			       bool http10, bool upgrading,
			       const struct proxy_head_facts *f)
{
	pr->keepalive = !http10 && !proxy_has_token(f->conn, "close");
	if (upgrading || pr->head_request || status == 204 || status == 304) {
		pr->framing = PROXY_FRAME_NONE;
	} else if (f->te) {
		/* RFC 9112 6.3: Transfer-Encoding overrides Content-Length;
		 * a final coding other than chunked runs until close. */
		pr->framing =
			f->chunked ? PROXY_FRAME_CHUNKED : PROXY_FRAME_CLOSE;
		pr->chunk_state = PROXY_CH_SIZE;
	} else if (f->has_length) {
		pr->framing = PROXY_FRAME_LENGTH;
		pr->remaining = f->length;
		if (pr->ilen - pr->ioff > f->length)
			pr->keepalive = false; /* more than it announced */
	} else {
		pr->framing = PROXY_FRAME_CLOSE;
	}
	if (pr->framing == PROXY_FRAME_CLOSE || upgrading)
		pr->keepalive = false;
}

/* The MHD response for the client: an upgrade, or a body read from the
 * upstream by proxy_body_reader; with the end-to-end headers of H. */
static struct MHD_Response *
proxy_head_response(struct proxy_req *pr, bool upgrading,
		    const struct proxy_head_facts *f, const struct proxy_hdr *h,
		    int n)
{
	struct MHD_Response *resp;
	uint64_t size;
	char norm[128];

	if (upgrading) {
		resp = MHD_create_response_for_upgrade(proxy_upgrade_cb, pr);
	} else if (pr->framing == PROXY_FRAME_LENGTH && f->length &&
		   pr->ilen - pr->ioff == f->length) {
		/* The whole body came with the head (a small response): MHD
		 * sends head and body in one write, so the relay reads and
		 * encrypts one record instead of two, and the upstream
		 * connection goes back to the pool at once. */
		resp = MHD_create_response_from_buffer((size_t)f->length,
						       pr->ibuf + pr->ioff,
						       MHD_RESPMEM_MUST_COPY);
		if (resp) {
			pr->ioff = pr->ilen;
			pr->remaining = 0;
			if (pr->rq)
				pr->rq->bytes_out += f->length;
		}
	} else {
		if (pr->framing == PROXY_FRAME_LENGTH)
			size = f->length;
		else if (pr->framing == PROXY_FRAME_NONE)
			size = pr->head_request && f->has_length ? f->length
								 : 0;
		else
			size = MHD_SIZE_UNKNOWN;
		/* MHD callocs the block with the response: no more than a
		 * short body needs. */
		resp = MHD_create_response_from_callback(
			size,
			size && size < PROXY_BLOCK_SIZE ? (size_t)size
							: PROXY_BLOCK_SIZE,
			proxy_body_reader, pr, proxy_body_reader_free);
		if (resp)
			pr->refs++;
	}
	if (!resp)
		return NULL;
	for (int i = 0; i < n; i++) {
		proxy_name_norm(h[i].name, norm, sizeof(norm));
		/* MHD writes Content-Length itself. */
		if (!strcmp(norm, "content-length"))
			continue;
		/* An upgrade keeps Upgrade; MHD adds Connection: Upgrade. */
		if (!(upgrading && !strcmp(norm, "upgrade")) &&
		    (proxy_is_hop_by_hop(norm) ||
		     proxy_has_token(f->conn, norm)))
			continue;
		/* MHD refuses empty values: nothing a client needs. */
		MHD_add_response_header(resp, h[i].name, h[i].value);
	}
	return resp;
}

/*
 * One complete head is at ibuf[ioff..end). Returns 1 when the final head
 * was taken (pr->resp built), 0 for an interim (1xx) head that was
 * skipped, -1 when it is malformed (*why set).
 */
static int proxy_take_head(struct proxy_req *pr, char *end, const char **why)
{
	struct proxy_hdr h[PROXY_MAX_RESPONSE_HEADERS];
	struct proxy_head_facts f = {.conn = ""};
	char *head = pr->ibuf + pr->ioff;
	bool upgrading, http10 = false;
	unsigned status;
	int n;

	n = proxy_split_head(head, end, &status, &http10, h,
			     PROXY_MAX_RESPONSE_HEADERS, why);
	pr->ioff = (size_t)(end - pr->ibuf);
	if (n < 0)
		return -1;
	if (status < 200 && status != 101)
		return 0; /* 100 Continue, 103 Early Hints: not forwarded */
	upgrading = status == 101;
	if (upgrading && !pr->upgrade) {
		*why = "101 Switching Protocols to a request without Upgrade";
		return -1;
	}
	if (proxy_head_scan(h, n, &f, why) < 0)
		return -1;
	pr->status = status;
	proxy_head_framing(pr, status, http10, upgrading, &f);
	pr->resp = proxy_head_response(pr, upgrading, &f, h, n);
	if (!pr->resp) {
		*why = "out of memory";
		return -1;
	}
	pr->head_done = true;
	if ((pr->framing == PROXY_FRAME_NONE && !upgrading) ||
	    (pr->framing == PROXY_FRAME_LENGTH && pr->remaining == 0)) {
		pr->body_complete = true;
		proxy_upstream_done(pr);
	}
	return 1;
}

/* Read what the upstream sent while no head is complete yet. */
static void proxy_read_head(struct proxy_req *pr)
{
	const char *why;
	char *end;
	ssize_t n;
	int r;

	if (pr->ioff) {
		memmove(pr->ibuf, pr->ibuf + pr->ioff, pr->ilen - pr->ioff);
		pr->ilen -= pr->ioff;
		pr->ioff = 0;
	}
	n = recv(pr->fd, pr->ibuf + pr->ilen, PROXY_BUF_SIZE - pr->ilen, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (proxy_can_retry(pr)) {
			proxy_retry(pr);
			return;
		}
		proxy_fail(pr, 502, "upstream error", strerror(errno));
		return;
	}
	if (n == 0) {
		if (proxy_can_retry(pr)) {
			proxy_retry(pr);
			return;
		}
		proxy_fail(pr, 502, "upstream closed early",
			   pr->ilen ? "closed the connection inside the "
				      "response header"
				    : "closed the connection without a "
				      "response");
		return;
	}
	pr->ilen += (size_t)n;
	pr->replayable = false; /* it answered: never send twice */
	proxy_progress(pr);
	while ((end = proxy_head_end(pr->ibuf + pr->ioff,
				     pr->ilen - pr->ioff))) {
		r = proxy_take_head(pr, end, &why);
		if (r < 0) {
			proxy_fail(pr, 502, "bad upstream response", why);
			return;
		}
		if (r > 0)
			break;
	}
	if (!pr->head_done && pr->ilen == PROXY_BUF_SIZE && !pr->ioff) {
		proxy_fail(pr, 502, "bad upstream response",
			   "response header too large");
		return;
	}
	if (pr->head_done && pr->wait == PROXY_WAIT_HEAD)
		proxy_resume(pr);
}

/* ---- sending the request ---- */

void proxy_send(struct proxy_req *pr)
{
	size_t before = pr->osent;
	ssize_t n;

	while (pr->fd >= 0 && pr->osent < pr->olen && !pr->discard_body) {
		n = send(pr->fd, pr->obuf + pr->osent, pr->olen - pr->osent,
			 MSG_NOSIGNAL);
		if (n > 0) {
			pr->osent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (proxy_can_retry(pr)) {
			proxy_retry(pr);
			return;
		}
		/* It stopped reading: it may still have answered (413 and
		 * close, say). The read side decides what the client gets. */
		log_debug("proxy: upstream %s (%s): send: %s", pr->up->name,
			  proxy_server_text(pr), strerror(errno));
		pr->discard_body = true;
		pr->keepalive = false;
		break;
	}
	if (pr->osent != before && pr->fd >= 0)
		proxy_progress(pr);
	if (pr->wait == PROXY_WAIT_SEND &&
	    (pr->discard_body || pr->olen - pr->osent <= pr->ocap / 2))
		proxy_resume(pr);
}

/* ---- connecting ---- */

static void proxy_on_upstream(struct loop_watch *w, uint32_t events);

static void proxy_connected(struct proxy_req *pr)
{
	loop_timer_cancel(pr->pool->loop, &pr->timer);
	pr->phase = PROXY_REQUEST;
	proxy_send(pr);
	proxy_update_watch(pr);
}

/* Connect to the next server of the upstream (round robin start, then
 * failover on a connect error). */
void proxy_connect(struct proxy_req *pr, bool allow_pool)
{
	const struct config_upstream *up = pr->up;
	struct loop *l = pr->pool->loop;
	int fd, one = 1, err = 0;

	if (allow_pool) {
		fd = proxy_idle_take(pr->pool, up, &pr->srv, &pr->watch,
				     proxy_on_upstream);
		if (fd >= 0) {
			pr->fd = fd;
			pr->reused = true;
			proxy_connected(pr);
			return;
		}
	}
	while (pr->tries < up->n_servers) {
		const struct config_addr *a;

		pr->srv = (pr->first_server + pr->tries) % up->n_servers;
		pr->tries++;
		a = &up->servers[pr->srv];
		fd = socket(a->ss.ss_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			log_error("proxy: socket: %s", strerror(err));
			break;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 &&
		    errno != EINPROGRESS) {
			err = errno;
			close(fd);
			if (pr->tries < up->n_servers)
				log_info("proxy: upstream %s (%s): connect: "
					 "%s, trying the next server",
					 up->name, a->text, strerror(err));
			continue;
		}
		pr->fd = fd;
		pr->phase = PROXY_CONNECTING;
		if (loop_watch_add(l, &pr->watch, fd, EPOLLOUT,
				   proxy_on_upstream) < 0) {
			err = errno;
			break;
		}
		loop_timer_arm(l, &pr->timer, up->connect_timeout_ms,
			       proxy_on_timer);
		return;
	}
	proxy_fail(pr, 502, "upstream refused",
		   err ? strerror(err) : "no server to connect to");
}

static void proxy_on_connect_event(struct proxy_req *pr)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (!err) {
		proxy_connected(pr);
		return;
	}
	proxy_close_upstream(pr);
	if (pr->tries < pr->up->n_servers) {
		log_info("proxy: upstream %s (%s): connect: %s, trying the "
			 "next server",
			 pr->up->name, proxy_server_text(pr), strerror(err));
		proxy_connect(pr, false);
		return;
	}
	proxy_fail(pr, 502, "upstream refused", strerror(err));
}

static void proxy_on_timer(struct loop_timer *t)
{
	struct proxy_req *pr = container_of(t, struct proxy_req, timer);

	if (pr->fd < 0)
		return;
	if (pr->phase == PROXY_CONNECTING) {
		proxy_close_upstream(pr);
		if (pr->tries < pr->up->n_servers) {
			log_info("proxy: upstream %s (%s): connect timed out "
				 "after %u ms, trying the next server",
				 pr->up->name, proxy_server_text(pr),
				 pr->up->connect_timeout_ms);
			proxy_connect(pr, false);
			return;
		}
		proxy_fail(pr, 504, "upstream connect timeout",
			   "connect timed out");
		return;
	}
	proxy_fail(pr, 504, "upstream timeout",
		   pr->head_done ? "timed out reading the response body"
				 : "timed out waiting for the response");
}

static void proxy_on_upstream(struct loop_watch *w, uint32_t events)
{
	struct proxy_req *pr = container_of(w, struct proxy_req, watch);

	if (pr->fd < 0)
		return;
	if (pr->phase == PROXY_CONNECTING) {
		proxy_on_connect_event(pr);
		return;
	}
	if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && pr->osent < pr->olen)
		proxy_send(pr);
	if (pr->fd < 0)
		return;
	if (pr->phase == PROXY_REQUEST && !pr->head_done &&
	    (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		proxy_read_head(pr);
	else if (pr->phase == PROXY_RESPONSE && pr->wait == PROXY_WAIT_BODY &&
		 (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		proxy_resume(pr); /* the body reader does the reading */
	proxy_update_watch(pr);
}

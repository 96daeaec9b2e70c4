// SPDX-License-Identifier: MIT
/*
 * Reverse proxy (see proxy.h). One struct proxy_req per proxied request:
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "http.h"
#include "log.h"
#include "loop.h"
#include "proxy.h"
#include "worker.h"

/* Room kept free in the out buffer for a chunk header and trailer. */
#define PROXY_CHUNK_RESERVE  32
#define PROXY_MAX_CHUNK_LINE 1024
#define PROXY_TUNNEL_BATCH   16 /* reads/writes per event, for fairness */

enum proxy_phase {
	PROXY_CONNECTING,
	PROXY_REQUEST,	/* connected: sending the request, reading the head */
	PROXY_RESPONSE, /* response queued to MHD: body streaming */
	PROXY_FAILED,
	PROXY_TUNNEL,
};

/* What a suspended client connection waits for. */
enum proxy_wait {
	PROXY_WAIT_NONE,
	PROXY_WAIT_SEND, /* room in the out buffer */
	PROXY_WAIT_HEAD, /* the response head */
	PROXY_WAIT_BODY, /* response body bytes */
};

enum proxy_framing {
	PROXY_FRAME_NONE,
	PROXY_FRAME_LENGTH,
	PROXY_FRAME_CHUNKED,
	PROXY_FRAME_CLOSE, /* response body ends when the upstream closes */
};

enum proxy_chunk_state {
	PROXY_CH_SIZE,
	PROXY_CH_DATA,
	PROXY_CH_DATA_END,
	PROXY_CH_TRAILER,
};

struct proxy_idle {
	struct proxy_pool *pool;
	int fd;
	struct loop_watch watch;
	struct loop_timer timer;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char upstream[80]; /* name: keepalive is counted per upstream */
	struct proxy_idle *prev, *next;
};

struct proxy_tunnel;

struct proxy_req {
	struct proxy_pool *pool;
	struct http_server *server;
	struct http_request *rq; /* NULL once MHD is done with the request */
	struct MHD_Connection *mc;
	struct gen *gen; /* keeps loc and up alive across a reload */
	const struct config_location *loc;
	const struct config_upstream *up;
	unsigned refs; /* the request; the response's body reader */
	struct proxy_req *prev, *next;
	char client[64];
	bool head_request;
	bool upgrade;

	enum proxy_phase phase;
	enum proxy_wait wait;
	bool suspended;

	/* The upstream connection. */
	int fd;
	struct loop_watch watch;
	struct loop_timer timer;
	size_t first_server, srv, tries;
	bool reused; /* came from the pool: may have been closed under us */

	/* Toward the upstream: the request head, then the body. */
	char *obuf;
	size_t olen, osent, ocap;
	bool replayable; /* everything sent so far is still in obuf */
	enum proxy_framing req_framing;
	bool req_done;	   /* final call seen: the body is all in obuf */
	bool discard_body; /* the upstream stopped reading: drop the rest */

	/* From the upstream. */
	char *ibuf;
	size_t ilen, ioff;
	bool head_done, body_complete, keepalive;
	unsigned status;
	struct MHD_Response *resp; /* built from the head, not yet queued */
	enum proxy_framing framing;
	uint64_t remaining; /* LENGTH: body left; CHUNKED: chunk left */
	enum proxy_chunk_state chunk_state;

	unsigned fail_status;
	struct proxy_tunnel *tunnel;
};

struct proxy_pool {
	struct loop *loop;
	struct proxy_idle *idle; /* most recently used first */
	struct proxy_req *reqs;	 /* live requests */
	unsigned rr;
	bool stopping;
};

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

static void proxy_update_watch(struct proxy_req *pr);
static void proxy_connect(struct proxy_req *pr, bool allow_pool);
static void proxy_send(struct proxy_req *pr);

/* ---- small helpers ---- */

static size_t proxy_min(size_t a, size_t b)
{
	return a < b ? a : b;
}

static const char *proxy_server_text(const struct proxy_req *pr)
{
	return pr->up->servers[pr->srv].text;
}

/* Header name in canonical form for comparisons: lowercase, '_' as '-',
 * blanks dropped (some upstreams normalise names that way, so a client
 * could otherwise smuggle "X_Client_Verify"). */
static void proxy_name_norm(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	for (; *in && n + 1 < cap; in++) {
		char ch = *in;

		if (ch == ' ' || ch == '\t')
			continue;
		if (ch == '_')
			ch = '-';
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		out[n++] = ch;
	}
	out[n] = '\0';
}

/* True if the comma-separated list VALUE holds TOKEN (any case). */
static bool proxy_has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;

	while (p && *p) {
		const char *end;
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		end = strchr(p, ',');
		len = end ? (size_t)(end - p) : strlen(p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == tl && !strncasecmp(p, token, tl))
			return true;
		p = end;
	}
	return false;
}

static bool proxy_is_hop_by_hop(const char *norm)
{
	static const char *const names[] = {
		"connection",	    "keep-alive",	 "te",
		"trailer",	    "transfer-encoding", "upgrade",
		"proxy-connection",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(norm, names[i]))
			return true;
	return !strncmp(norm, "proxy-", 6);
}

/* ---- a growable string for the request head ---- */

struct proxy_str {
	char *p;
	size_t len, cap;
	bool failed;
};

static void proxy_str_add(struct proxy_str *s, const char *data, size_t n)
{
	if (s->failed)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 1024;
		char *p;

		while (cap < s->len + n + 1)
			cap *= 2;
		p = realloc(s->p, cap);
		if (!p) {
			s->failed = true;
			return;
		}
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, data, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void proxy_str_cat(struct proxy_str *s, const char *str)
{
	proxy_str_add(s, str, strlen(str));
}

/* A header value with control characters replaced: a certificate field
 * must never break the request head. */
static void proxy_str_value(struct proxy_str *s, const char *v)
{
	for (; *v; v++) {
		char ch = *v;

		if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f)
			ch = '?';
		proxy_str_add(s, &ch, 1);
	}
}

static void proxy_str_header(struct proxy_str *s, const char *prefix,
			     const char *name, const char *value)
{
	proxy_str_cat(s, prefix);
	proxy_str_cat(s, name);
	proxy_str_cat(s, ": ");
	proxy_str_value(s, value);
	proxy_str_cat(s, "\r\n");
}

static bool proxy_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

static void proxy_str_pct(struct proxy_str *s, unsigned char c)
{
	char esc[4];

	snprintf(esc, sizeof(esc), "%%%02X", c);
	proxy_str_add(s, esc, 3);
}

/* A decoded path, percent-encoded again for the request line: only
 * unreserved characters, sub-delims, ':', '@' and '/' stay as they are. */
static void proxy_str_path(struct proxy_str *s, const char *path)
{
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (proxy_unreserved(*p) || strchr("!$&'()*+,;=:@/", *p))
			proxy_str_add(s, (const char *)p, 1);
		else
			proxy_str_pct(s, *p);
	}
}

/* ---- identity headers ---- */

/* Base64 of DER, no line breaks; NULL on allocation failure. */
static char *proxy_base64(const unsigned char *der, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, der, (int)len);
	return out;
}

/* STR URL-encoded as a URI component: all but unreserved escaped. */
static void proxy_str_component(struct proxy_str *s, const char *str)
{
	for (const char *p = str; *p; p++) {
		if (proxy_unreserved((unsigned char)*p))
			proxy_str_add(s, p, 1);
		else
			proxy_str_pct(s, (unsigned char)*p);
	}
}

/* The leaf as PEM (64-column lines), URL-encoded, as nginx's
 * $ssl_client_escaped_cert. */
static void proxy_str_escaped_pem(struct proxy_str *s, const char *b64)
{
	size_t n = strlen(b64);
	char line[65];

	proxy_str_component(s, "-----BEGIN CERTIFICATE-----\n");
	for (size_t i = 0; i < n; i += 64) {
		snprintf(line, sizeof(line), "%.64s", b64 + i);
		proxy_str_component(s, line);
		proxy_str_pct(s, '\n');
	}
	proxy_str_component(s, "-----END CERTIFICATE-----\n");
}

/* RFC 9440 Client-Cert-Chain: each PEM block of CHAIN as ":base64:". */
static void proxy_str_chain(struct proxy_str *s, const char *chain)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *p = chain;
	bool first = true;

	while ((p = strstr(p, begin))) {
		const char *e = strstr(p, end);

		if (!e)
			break;
		proxy_str_cat(s, first ? ":" : ", :");
		for (p += sizeof(begin) - 1; p < e; p++)
			if (proxy_unreserved((unsigned char)*p) || *p == '+' ||
			    *p == '/' || *p == '=')
				proxy_str_add(s, p, 1);
		proxy_str_cat(s, ":");
		first = false;
		p = e + sizeof(end) - 1;
	}
}

static void proxy_str_list(struct proxy_str *s, const char *prefix,
			   const char *name, char *const *items, size_t n)
{
	if (!n)
		return;
	proxy_str_cat(s, prefix);
	proxy_str_cat(s, name);
	proxy_str_cat(s, ": ");
	for (size_t i = 0; i < n; i++) {
		if (i)
			proxy_str_cat(s, ", ");
		proxy_str_value(s, items[i]);
	}
	proxy_str_cat(s, "\r\n");
}

static void proxy_str_identity(struct proxy_str *s,
			       const struct config_location *loc,
			       const struct identity *id)
{
	const char *pfx = loc->header_prefix ? loc->header_prefix
					     : CONFIG_DEFAULT_HEADER_PREFIX;
	char *b64;

	if (!id->verified) {
		proxy_str_header(s, pfx, "Verify", "NONE");
		return;
	}
	proxy_str_header(s, pfx, "Verify", "SUCCESS");
	proxy_str_header(s, pfx, "Cert-Fingerprint", id->fingerprint);
	proxy_str_header(s, pfx, "Subject", id->subject ? id->subject : "");
	proxy_str_header(s, pfx, "Issuer", id->issuer ? id->issuer : "");
	proxy_str_header(s, pfx, "Serial", id->serial ? id->serial : "");
	proxy_str_list(s, pfx, "SAN-URI", id->san_uri, id->n_san_uri);
	proxy_str_list(s, pfx, "SAN-DNS", id->san_dns, id->n_san_dns);
	if (!loc->forward_cert || !id->der)
		return;
	b64 = proxy_base64(id->der, id->der_len);
	if (!b64) {
		s->failed = true;
		return;
	}
	proxy_str_cat(s, pfx);
	proxy_str_cat(s, "Cert: ");
	proxy_str_escaped_pem(s, b64);
	proxy_str_cat(s, "\r\nClient-Cert: :");
	proxy_str_cat(s, b64);
	proxy_str_cat(s, ":\r\n");
	free(b64);
	if (id->chain_pem && strstr(id->chain_pem, "-----BEGIN")) {
		proxy_str_cat(s, "Client-Cert-Chain: ");
		proxy_str_chain(s, id->chain_pem);
		proxy_str_cat(s, "\r\n");
	}
}

/* ---- the request head ---- */

struct proxy_head_ctx {
	struct proxy_str *s;
	const char *prefix_norm; /* header prefix, canonical form */
	char conn_tokens[512];	 /* Connection header tokens, canonical */
	struct proxy_str xff;	 /* incoming X-Forwarded-For values */
};

static bool proxy_named_by_connection(const struct proxy_head_ctx *hc,
				      const char *norm)
{
	return proxy_has_token(hc->conn_tokens, norm);
}

/* Incoming headers the gateway owns: never forwarded as sent. */
static bool proxy_is_identity(const struct proxy_head_ctx *hc, const char *norm)
{
	size_t pl = strlen(hc->prefix_norm);

	if (pl && !strncmp(norm, hc->prefix_norm, pl))
		return true;
	return !strcmp(norm, "client-cert") ||
	       !strcmp(norm, "client-cert-chain");
}

static enum MHD_Result proxy_collect_connection(void *cls,
						enum MHD_ValueKind kind,
						const char *key,
						const char *value)
{
	struct proxy_head_ctx *hc = cls;
	char norm[64];
	size_t len = strlen(hc->conn_tokens);

	(void)kind;
	proxy_name_norm(key, norm, sizeof(norm));
	if (strcmp(norm, "connection") || !value)
		return MHD_YES;
	proxy_name_norm(value, hc->conn_tokens + len,
			sizeof(hc->conn_tokens) - len);
	len = strlen(hc->conn_tokens);
	if (len + 1 < sizeof(hc->conn_tokens)) {
		hc->conn_tokens[len] = ',';
		hc->conn_tokens[len + 1] = '\0';
	}
	return MHD_YES;
}

static enum MHD_Result proxy_copy_header(void *cls, enum MHD_ValueKind kind,
					 const char *key, const char *value)
{
	struct proxy_head_ctx *hc = cls;
	char norm[128];

	(void)kind;
	if (!key || !value)
		return MHD_YES;
	proxy_name_norm(key, norm, sizeof(norm));
	if (!strcmp(norm, "x-forwarded-for")) {
		if (hc->xff.len)
			proxy_str_cat(&hc->xff, ", ");
		proxy_str_cat(&hc->xff, value);
		return MHD_YES;
	}
	if (proxy_is_hop_by_hop(norm) || proxy_named_by_connection(hc, norm) ||
	    proxy_is_identity(hc, norm) || !strcmp(norm, "host") ||
	    !strcmp(norm, "content-length") || !strcmp(norm, "expect") ||
	    !strcmp(norm, "x-forwarded-proto") ||
	    !strcmp(norm, "x-forwarded-host"))
		return MHD_YES;
	proxy_str_header(hc->s, "", key, value);
	return MHD_YES;
}

struct proxy_args {
	struct proxy_str *s;
	unsigned n;
};

/* MHD splits the query into arguments (raw: http.c disables its
 * unescaping, but '+' has become ' '); put it back together. */
static enum MHD_Result proxy_copy_arg(void *cls, enum MHD_ValueKind kind,
				      const char *key, const char *value)
{
	struct proxy_args *a = cls;
	struct proxy_str *s = a->s;

	(void)kind;
	proxy_str_cat(s, a->n++ ? "&" : "?");
	for (const char *p = key; *p; p++)
		proxy_str_add(s, *p == ' ' ? "+" : p, 1);
	if (value) {
		proxy_str_cat(s, "=");
		for (const char *p = value; *p; p++)
			proxy_str_add(s, *p == ' ' ? "+" : p, 1);
	}
	return MHD_YES;
}

/* The client address without its port, for X-Forwarded-For. */
static void proxy_client_ip(const char *peer, char *out, size_t cap)
{
	const char *colon;
	size_t n;

	if (peer[0] == '[') {
		const char *close = strchr(peer, ']');

		n = close ? (size_t)(close - peer - 1) : strlen(peer);
		snprintf(out, cap, "%.*s", (int)n, peer + 1);
		return;
	}
	colon = strrchr(peer, ':');
	n = colon ? (size_t)(colon - peer) : strlen(peer);
	snprintf(out, cap, "%.*s", (int)n, peer);
}

/* The upstream path: the location prefix replaced by proxy_path. */
static void proxy_str_target(struct proxy_str *s, const struct http_request *rq,
			     const struct config_location *loc)
{
	const char *rest = rq->path, *pp = loc->proxy_path;
	size_t pl = strlen(loc->prefix);

	if (!pp || !*pp) {
		proxy_str_path(s, rq->path);
		return;
	}
	if (strcmp(loc->prefix, "/") && !strncmp(rq->path, loc->prefix, pl))
		rest = rq->path + pl;
	proxy_str_path(s, pp);
	if (pp[strlen(pp) - 1] == '/' && rest[0] == '/')
		rest++;
	proxy_str_path(s, rest);
}

static int proxy_build_head(struct proxy_req *pr)
{
	struct http_request *rq = pr->rq;
	const struct config_location *loc = pr->loc;
	struct proxy_head_ctx hc = {0};
	struct proxy_str s = {0};
	struct proxy_args args = {&s, 0};
	const char *host, *cl, *pfx;
	char prefix_norm[80], ip[64], num[32];

	pfx = loc->header_prefix ? loc->header_prefix
				 : CONFIG_DEFAULT_HEADER_PREFIX;
	proxy_name_norm(pfx, prefix_norm, sizeof(prefix_norm));
	hc.s = &s;
	hc.prefix_norm = prefix_norm;
	MHD_get_connection_values(pr->mc, MHD_HEADER_KIND,
				  proxy_collect_connection, &hc);

	proxy_str_cat(&s, rq->method);
	proxy_str_cat(&s, " ");
	proxy_str_target(&s, rq, loc);
	MHD_get_connection_values(pr->mc, MHD_GET_ARGUMENT_KIND, proxy_copy_arg,
				  &args);
	proxy_str_cat(&s, " HTTP/1.1\r\n");
	host = MHD_lookup_connection_value(pr->mc, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_HOST);
	proxy_str_header(&s, "", "Host", host ? host : proxy_server_text(pr));
	MHD_get_connection_values(pr->mc, MHD_HEADER_KIND, proxy_copy_header,
				  &hc);

	if (pr->req_framing == PROXY_FRAME_CHUNKED) {
		proxy_str_cat(&s, "Transfer-Encoding: chunked\r\n");
	} else if (pr->req_framing == PROXY_FRAME_LENGTH) {
		cl = MHD_lookup_connection_value(
			pr->mc, MHD_HEADER_KIND,
			MHD_HTTP_HEADER_CONTENT_LENGTH);
		snprintf(num, sizeof(num), "%llu",
			 cl ? strtoull(cl, NULL, 10) : 0ULL);
		proxy_str_header(&s, "", "Content-Length", num);
	}
	if (pr->upgrade)
		proxy_str_cat(&s,
			      "Connection: Upgrade\r\nUpgrade: websocket\r\n");

	proxy_client_ip(rq->conn->peer_text, ip, sizeof(ip));
	if (hc.xff.len)
		proxy_str_cat(&hc.xff, ", ");
	proxy_str_cat(&hc.xff, ip);
	if (hc.xff.failed)
		s.failed = true;
	else
		proxy_str_header(&s, "", "X-Forwarded-For", hc.xff.p);
	free(hc.xff.p);
	proxy_str_cat(&s, "X-Forwarded-Proto: https\r\n");
	if (host)
		proxy_str_header(&s, "", "X-Forwarded-Host", host);
	proxy_str_identity(&s, loc, &rq->conn->id);
	proxy_str_cat(&s, "\r\n");
	if (s.failed) {
		free(s.p);
		return -1;
	}
	/* The head plus room for body: the out buffer never grows later. */
	pr->ocap = s.len + PROXY_BUF_SIZE;
	pr->obuf = realloc(s.p, pr->ocap);
	if (!pr->obuf) {
		free(s.p);
		return -1;
	}
	pr->olen = s.len;
	return 0;
}

/* ---- request lifetime ---- */

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
	if (pr->prev)
		pr->prev->next = pr->next;
	else
		p->reqs = pr->next;
	if (pr->next)
		pr->next->prev = pr->prev;
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
static void proxy_resume(struct proxy_req *pr)
{
	pr->wait = PROXY_WAIT_NONE;
	if (pr->suspended) {
		pr->suspended = false;
		MHD_resume_connection(pr->mc);
		http_server_wake(pr->server);
	}
}

/* ---- the idle pool ---- */

static void proxy_idle_close(struct proxy_idle *ic)
{
	struct proxy_pool *p = ic->pool;

	loop_watch_del(p->loop, &ic->watch);
	loop_timer_cancel(p->loop, &ic->timer);
	close(ic->fd);
	ic->fd = -1;
	if (ic->prev)
		ic->prev->next = ic->next;
	else
		p->idle = ic->next;
	if (ic->next)
		ic->next->prev = ic->prev;
	loop_defer_free(p->loop, ic);
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

static void proxy_idle_put(struct proxy_req *pr, int fd)
{
	struct proxy_pool *p = pr->pool;
	const struct config_addr *a = &pr->up->servers[pr->srv];
	struct proxy_idle *ic;
	unsigned n = 0;

	for (ic = p->idle; ic; ic = ic->next)
		if (!strcmp(ic->upstream, pr->up->name))
			n++;
	if (p->stopping || n >= pr->up->keepalive ||
	    strlen(pr->up->name) >= sizeof(ic->upstream) ||
	    !(ic = calloc(1, sizeof(*ic)))) {
		close(fd);
		return;
	}
	ic->pool = p;
	ic->fd = fd;
	memcpy(&ic->addr, &a->ss, a->len);
	ic->addr_len = a->len;
	strcpy(ic->upstream, pr->up->name);
	if (loop_watch_add(p->loop, &ic->watch, fd, EPOLLIN | EPOLLRDHUP,
			   proxy_idle_on_event) < 0) {
		close(fd);
		free(ic);
		return;
	}
	loop_timer_arm(p->loop, &ic->timer, PROXY_IDLE_TIMEOUT_MS,
		       proxy_idle_on_timer);
	ic->next = p->idle;
	if (p->idle)
		p->idle->prev = ic;
	p->idle = ic;
}

/* The most recently used idle connection to one of UP's servers, or -1;
 * *server gets that server's index. */
static int proxy_idle_take(struct proxy_pool *p,
			   const struct config_upstream *up, size_t *server)
{
	for (struct proxy_idle *ic = p->idle; ic; ic = ic->next) {
		if (strcmp(ic->upstream, up->name))
			continue;
		for (size_t i = 0; i < up->n_servers; i++) {
			int fd;

			if (up->servers[i].len != ic->addr_len ||
			    memcmp(&up->servers[i].ss, &ic->addr, ic->addr_len))
				continue;
			fd = ic->fd;
			ic->fd = -1;
			loop_watch_del(p->loop, &ic->watch);
			loop_timer_cancel(p->loop, &ic->timer);
			if (ic->prev)
				ic->prev->next = ic->next;
			else
				p->idle = ic->next;
			if (ic->next)
				ic->next->prev = ic->prev;
			loop_defer_free(p->loop, ic);
			*server = i;
			return fd;
		}
	}
	return -1;
}

/* ---- the upstream connection ---- */

static void proxy_close_upstream(struct proxy_req *pr)
{
	loop_timer_cancel(pr->pool->loop, &pr->timer);
	loop_watch_del(pr->pool->loop, &pr->watch);
	if (pr->fd >= 0)
		close(pr->fd);
	pr->fd = -1;
}

/* The response is complete: pool the connection if HTTP allows. */
static void proxy_upstream_done(struct proxy_req *pr)
{
	int fd = pr->fd;
	bool reuse = pr->keepalive && pr->req_done && pr->osent == pr->olen &&
		     !pr->discard_body && pr->ioff == pr->ilen;

	if (fd < 0)
		return;
	loop_timer_cancel(pr->pool->loop, &pr->timer);
	loop_watch_del(pr->pool->loop, &pr->watch);
	pr->fd = -1;
	if (reuse)
		proxy_idle_put(pr, fd);
	else
		close(fd);
}

/*
 * Give up on the upstream: log once, with the upstream's address and why,
 * at info (an upstream failing is not the gateway's error). STATUS is what
 * the client gets if no response has been queued yet; once one has, the
 * body reader ends with an error and MHD closes the client connection.
 */
static void proxy_fail(struct proxy_req *pr, unsigned status, const char *note,
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

static void proxy_update_watch(struct proxy_req *pr)
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

static void proxy_progress(struct proxy_req *pr)
{
	loop_timer_arm(pr->pool->loop, &pr->timer, pr->up->read_timeout_ms,
		       proxy_on_timer);
}

/* ---- the response head ---- */

/* End of the head in BUF (after the empty line), or NULL. */
static char *proxy_head_end(char *buf, size_t len)
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

struct proxy_hdr {
	char *name, *value;
};

static void proxy_upgrade_cb(void *cls, struct MHD_Connection *mc,
			     void *req_cls, const char *extra_in,
			     size_t extra_in_size, MHD_socket sock,
			     struct MHD_UpgradeResponseHandle *urh);
static ssize_t proxy_body_reader(void *cls, uint64_t pos, char *buf,
				 size_t max);
static void proxy_body_reader_free(void *cls);

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
static int proxy_split_head(char *head, char *end, unsigned *status,
			    bool *http10, struct proxy_hdr *h, int max,
			    const char **why)
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

static int proxy_parse_length(const char *v, uint64_t *out)
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

/*
 * One complete head is at ibuf[ioff..end). Returns 1 when the final head
 * was taken (pr->resp built), 0 for an interim (1xx) head that was
 * skipped, -1 when it is malformed (*why set).
 */
static int proxy_take_head(struct proxy_req *pr, char *end, const char **why)
{
	struct proxy_hdr h[PROXY_MAX_RESPONSE_HEADERS];
	char *head = pr->ibuf + pr->ioff, conn[512] = "", norm[128];
	uint64_t length = 0, size;
	bool has_length = false, te = false, chunked = false, http10 = false;
	bool upgrading;
	struct MHD_Response *resp;
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

	for (int i = 0; i < n; i++) {
		proxy_name_norm(h[i].name, norm, sizeof(norm));
		if (!strcmp(norm, "connection")) {
			size_t cl = strlen(conn);

			if (cl + 2 >= sizeof(conn))
				continue;
			proxy_name_norm(h[i].value, conn + cl,
					sizeof(conn) - cl - 1);
			strcat(conn, ",");
		} else if (!strcmp(norm, "content-length")) {
			uint64_t v;

			if (proxy_parse_length(h[i].value, &v) < 0 ||
			    (has_length && v != length)) {
				*why = "bad Content-Length";
				return -1;
			}
			length = v;
			has_length = true;
		} else if (!strcmp(norm, "transfer-encoding")) {
			const char *last = strrchr(h[i].value, ',');

			te = true;
			last = last ? last + 1 : h[i].value;
			while (*last == ' ' || *last == '\t')
				last++;
			chunked = !strncasecmp(last, "chunked", 7) &&
				  (last[7] == '\0' || last[7] == ' ' ||
				   last[7] == '\t');
		}
	}

	pr->status = status;
	pr->keepalive = !http10 && !proxy_has_token(conn, "close");
	if (upgrading || pr->head_request || status == 204 || status == 304) {
		pr->framing = PROXY_FRAME_NONE;
	} else if (te) {
		/* RFC 9112 6.3: Transfer-Encoding overrides Content-Length;
		 * a final coding other than chunked runs until close. */
		pr->framing = chunked ? PROXY_FRAME_CHUNKED : PROXY_FRAME_CLOSE;
		pr->chunk_state = PROXY_CH_SIZE;
	} else if (has_length) {
		pr->framing = PROXY_FRAME_LENGTH;
		pr->remaining = length;
		if (pr->ilen - pr->ioff > length)
			pr->keepalive = false; /* more than it announced */
	} else {
		pr->framing = PROXY_FRAME_CLOSE;
	}
	if (pr->framing == PROXY_FRAME_CLOSE || upgrading)
		pr->keepalive = false;

	if (upgrading) {
		resp = MHD_create_response_for_upgrade(proxy_upgrade_cb, pr);
	} else {
		if (pr->framing == PROXY_FRAME_LENGTH)
			size = length;
		else if (pr->framing == PROXY_FRAME_NONE)
			size = pr->head_request && has_length ? length : 0;
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
	if (!resp) {
		*why = "out of memory";
		return -1;
	}
	for (int i = 0; i < n; i++) {
		proxy_name_norm(h[i].name, norm, sizeof(norm));
		/* MHD writes Content-Length itself. */
		if (!strcmp(norm, "content-length"))
			continue;
		/* An upgrade keeps Upgrade; MHD adds Connection: Upgrade. */
		if (!(upgrading && !strcmp(norm, "upgrade")) &&
		    (proxy_is_hop_by_hop(norm) || proxy_has_token(conn, norm)))
			continue;
		/* MHD refuses empty values: nothing a client needs. */
		MHD_add_response_header(resp, h[i].name, h[i].value);
	}
	pr->resp = resp;
	pr->head_done = true;
	if (pr->framing == PROXY_FRAME_NONE && !upgrading) {
		pr->body_complete = true;
		proxy_upstream_done(pr);
	} else if (pr->framing == PROXY_FRAME_LENGTH && length == 0) {
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

static void proxy_send(struct proxy_req *pr)
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
static void proxy_connect(struct proxy_req *pr, bool allow_pool)
{
	const struct config_upstream *up = pr->up;
	struct loop *l = pr->pool->loop;
	int fd, one = 1, err = 0;

	if (allow_pool) {
		fd = proxy_idle_take(pr->pool, up, &pr->srv);
		if (fd >= 0) {
			pr->fd = fd;
			pr->reused = true;
			if (loop_watch_add(l, &pr->watch, fd, 0,
					   proxy_on_upstream) < 0) {
				proxy_fail(pr, 502, "upstream error",
					   "cannot watch the socket");
				return;
			}
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
				int v;

				if (*line >= '0' && *line <= '9')
					v = *line - '0';
				else if (*line >= 'a' && *line <= 'f')
					v = *line - 'a' + 10;
				else if (*line >= 'A' && *line <= 'F')
					v = *line - 'A' + 10;
				else
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

static ssize_t proxy_body_reader(void *cls, uint64_t pos, char *buf, size_t max)
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

static void proxy_body_reader_free(void *cls)
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
	http_server_wake(pr->server);
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
static void proxy_upgrade_cb(void *cls, struct MHD_Connection *mc,
			     void *req_cls, const char *extra_in,
			     size_t extra_in_size, MHD_socket sock,
			     struct MHD_UpgradeResponseHandle *urh)
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
	http_server_wake(pr->server);
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
	struct proxy_pool *pool = http_server_proxy(rq->server);
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
	pr->server = rq->server;
	pr->rq = rq;
	pr->mc = rq->mc;
	pr->gen = worker_gen(rq->conn->worker);
	gen_ref(pr->gen);
	pr->loc = rq->loc;
	pr->up = up;
	pr->refs = 1;
	pr->fd = -1;
	pr->replayable = true;
	pr->head_request = !strcmp(rq->method, MHD_HTTP_METHOD_HEAD);
	pr->upgrade = upgrade;
	snprintf(pr->client, sizeof(pr->client), "%s", rq->conn->peer_text);
	pr->next = pool->reqs;
	if (pool->reqs)
		pool->reqs->prev = pr;
	pool->reqs = pr;
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

struct proxy_pool *proxy_pool_new(struct loop *l)
{
	struct proxy_pool *p = calloc(1, sizeof(*p));

	if (p)
		p->loop = l;
	return p;
}

void proxy_pool_stop(struct proxy_pool *p)
{
	struct proxy_req *pr, *next;

	if (!p)
		return;
	p->stopping = true;
	for (pr = p->reqs; pr; pr = next) {
		next = pr->next;
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
	while (p->idle) {
		struct proxy_idle *ic = p->idle;

		loop_watch_del(p->loop, &ic->watch);
		loop_timer_cancel(p->loop, &ic->timer);
		close(ic->fd);
		p->idle = ic->next;
		free(ic);
	}
	free(p);
}

// SPDX-License-Identifier: MIT
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "files.h"
#include "fleet.h"
#include "http.h"
#include "ktls.h"
#include "limits.h"
#include "http_framing.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "policy.h"
#include "proxy.h"
#include "ready.h"

#define HTTP_MIN_CONN_MEMORY (8 * 1024)
#define HTTP_PATH_MAX	     4096

struct http_server {
	struct loop *loop;
	struct gen *gen; /* the worker's newest: new requests start on it */
	struct limits *limits;
	const atomic_uint *open_conns; /* for /metrics */
	struct MHD_Daemon *mhd;
	struct loop_watch watch; /* MHD's epoll fd */
	struct loop_timer timer; /* MHD's next timeout */
	struct conn *adding;	 /* set around MHD_add_connection */
	bool draining;
	bool running;
	bool wake;		  /* http_server_wake() during MHD_run */
	struct proxy_pool *proxy; /* idle upstream connections (proxy.c) */
};

/* ---- driving MHD from the worker's loop ---- */

static void http_run(struct http_server *s);

static void http_on_timer(struct loop_timer *t)
{
	http_run(container_of(t, struct http_server, timer));
}

static void http_on_ready(struct loop_watch *w, uint32_t events)
{
	(void)events;
	http_run(container_of(w, struct http_server, watch));
}

static void http_run(struct http_server *s)
{
	MHD_UNSIGNED_LONG_LONG timeout;

	/* MHD_run may call back into code that adds connections or resumes
	 * one: never re-enter it. */
	if (s->running)
		return;
	s->running = true;
	s->wake = false;
	MHD_run(s->mhd);
	s->running = false;
	if (s->wake)
		loop_timer_arm(s->loop, &s->timer, 0, http_on_timer);
	else if (MHD_get_timeout(s->mhd, &timeout) == MHD_YES)
		loop_timer_arm(s->loop, &s->timer, timeout, http_on_timer);
	else
		loop_timer_cancel(s->loop, &s->timer);
}

/*
 * In external polling MHD 0.9.75 has no ITC (it drops MHD_USE_ITC without
 * an internal thread), so MHD_resume_connection wakes nothing: the resumed
 * connection waits for the next MHD_run. Run it once this loop pass is
 * over (MHD_run itself processes pending resumes).
 */
void http_server_wake(struct http_server *s)
{
	s->wake = true;
	if (!s->running)
		loop_timer_arm(s->loop, &s->timer, 0, http_on_timer);
}

/* ---- connection lifetime ---- */

/*
 * MHD only sees a failed recv() when the client sends a TLS record that is
 * not application data. Name what it was: a KeyUpdate (TLS 1.3) ends a
 * kTLS connection, since the kernel cannot follow a key change on its own.
 */
static void http_ktls_closed(struct conn *c)
{
	const char *why = c->fd >= 0 ? ktls_close_reason(c->fd) : NULL;

	static struct log_ratelimit rl;

	if (!why)
		return;
	if (strcmp(why, "key update") == 0) {
		/* Once per connection (it ends here), rate-limited: any
		 * client can send one. */
		metrics_inc(METRICS_KTLS_KEY_UPDATE_CLOSES);
		log_ratelimited(&rl, LOG_LVL_WARN,
				"client %s: sent a TLS 1.3 KeyUpdate; kTLS "
				"receive cannot follow a key change: "
				"connection closed",
				c->peer_text);
	} else
		log_debug("client %s: %s: connection closed", c->peer_text,
			  why);
}

static void http_notify_connection(void *cls, struct MHD_Connection *mc,
				   void **socket_context,
				   enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;
	struct conn *c;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		/* The relay times out idle connections itself (with 408 where
		 * due); MHD's timer stays as a backstop, later. */
		if (s->adding && s->adding->path == CONN_PATH_USERSPACE)
			MHD_set_connection_option(
				mc, MHD_CONNECTION_OPTION_TIMEOUT,
				2 * (unsigned)((s->gen->cfg
							->request_timeout_ms +
						999) /
					       1000));
		*socket_context = s->adding;
		s->adding = NULL;
		return;
	}
	c = *socket_context;
	if (!c)
		return;
	*socket_context = NULL;
	/* MHD closes the fd it was given (the TCP socket on kTLS) right
	 * after this notification, without a shutdown before it (TURBO, see
	 * http_server_new): the close_notify goes out here, ahead of the FIN
	 * that conn.c's lingering close sends, whoever decided the close. */
	if (c->path == CONN_PATH_KTLS) {
		http_ktls_closed(c);
		if (!c->close_unclean)
			conn_close_notify(c);
	}
	conn_mhd_detach(c, true);
	conn_unref(c);
}

int http_server_add(struct http_server *s, struct conn *c, int fd)
{
	enum MHD_Result r;

	struct sockaddr_un local = {.sun_family = AF_UNIX};
	const struct sockaddr *addr = (const struct sockaddr *)&c->peer;
	socklen_t addr_len = c->peer_len;

	/* MHD takes the address family as the socket's: a socketpair given
	 * the client's IP address gets TCP options that fail on it. The real
	 * address lives in the conn. */
	if (c->path != CONN_PATH_KTLS) {
		addr = (const struct sockaddr *)&local;
		addr_len = sizeof(local);
	}
	conn_ref(c);
	s->adding = c;
	r = MHD_add_connection(s->mhd, fd, addr, addr_len);
	if (s->adding) {
		/* MHD did not take it (it closed FD already); on kTLS that
		 * was the TCP socket: release what is keyed by it. */
		s->adding = NULL;
		conn_mhd_detach(c, false);
		static struct log_ratelimit rl;

		log_ratelimited(&rl, LOG_LVL_WARN,
				"client %s: HTTP engine refused the "
				"connection%s",
				c->peer_text, r == MHD_YES ? "" : " (limit?)");
		conn_unref(c);
		return -1;
	}
	http_run(s);
	return 0;
}

void http_server_drain(struct http_server *s)
{
	s->draining = true;
}

/* ---- handlers ---- */

static enum MHD_Result http_handle_return(struct http_request *rq)
{
	const struct config_location *loc = rq->loc;
	char body[512];

	/* Like files: a fixed answer is no reason to accept any method. */
	if (strcmp(rq->method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(rq->method, MHD_HTTP_METHOD_HEAD) != 0) {
		rq->note = "method not allowed";
		return http_framing_refuse(rq, MHD_HTTP_METHOD_NOT_ALLOWED,
					   MHD_HTTP_HEADER_ALLOW, "GET, HEAD",
					   false);
	}
	snprintf(body, sizeof(body), "%s\n",
		 loc->return_body ? loc->return_body : "");
	return http_respond_text(rq, (unsigned)loc->return_status, body);
}

static enum MHD_Result http_handle_metrics(struct http_request *rq)
{
	struct MHD_Response *resp;
	size_t len;
	char *text;

	text = metrics_render(atomic_load(rq->server->open_conns), &len);
	if (!text)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(len, text,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4");
	rq->bytes_out = len;
	return http_respond(rq, MHD_HTTP_OK, resp);
}

/* `ready = yes`: 200 "ready", or 503 "not ready: REASONS". */
static enum MHD_Result http_handle_ready(struct http_request *rq)
{
	unsigned mask = ready_blockers();
	char body[96];

	if (!mask)
		return http_respond_text(rq, MHD_HTTP_OK, "ready\n");
	ready_describe(mask, body, sizeof(body));
	rq->note = "not ready";
	return http_respond_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result http_dispatch(struct http_request *rq)
{
	const struct config_location *loc = rq->loc;

	if (loc->metrics)
		return http_handle_metrics(rq);
	if (loc->ready)
		return http_handle_ready(rq);
	if (loc->return_status)
		return http_handle_return(rq);
	if (loc->root)
		return files_handle(rq);
	rq->note = "no handler";
	return http_respond_text(rq, MHD_HTTP_NOT_IMPLEMENTED,
				 "501 Not Implemented\n");
}

static enum MHD_Result http_too_many(struct http_request *rq, const char *why)
{
	static const char body[] = "429 Too Many Requests\n";
	struct MHD_Response *resp;
	char secs[16];

	rq->note = why;
	resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	snprintf(secs, sizeof(secs), "%u",
		 rq->retry_after_s ? rq->retry_after_s : 1);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	/* A connection over its limit is not kept. */
	if (rq->conn->limits_refused)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	rq->bytes_out = sizeof(body) - 1;
	return http_respond(rq, MHD_HTTP_TOO_MANY_REQUESTS, resp);
}

static bool http_over_request_limit(struct http_request *rq)
{
	struct limits *l = rq->server->limits;
	unsigned retry = 1;

	if (!l || !rq->conn->limits_bound || rq->conn->fd < 0)
		return false;
	if (limits_request(l, rq->conn->fd, &retry) != 1)
		return false;
	metrics_inc(METRICS_REQUESTS_LIMITED);
	rq->retry_after_s = retry;
	return true;
}

/* Fleet-wide request rate (fleet.h), after the local one. */
static int http_fleet_request(struct http_request *rq)
{
	struct fleet *f = rq->conn->list->fleet;
	unsigned retry = 1;
	int v;

	if (!f || !rq->conn->fleet_bound || rq->conn->fd < 0)
		return FLEET_OK;
	v = fleet_request(f, rq->conn->fd, &retry);
	if (v == FLEET_LIMITED) {
		metrics_inc(METRICS_REQUESTS_LIMITED);
		rq->retry_after_s = retry;
	}
	return v;
}

/* A certificate on the fleet block list: 403 to every request, and the
 * connection is not kept. */
static enum MHD_Result http_blocked(struct http_request *rq)
{
	static const char body[] =
		"403 Forbidden: this client certificate is blocked\n";
	struct MHD_Response *resp;

	rq->note = "fleet block list";
	resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	rq->bytes_out = strcmp(rq->method, "HEAD") ? sizeof(body) - 1 : 0;
	return http_respond(rq, MHD_HTTP_FORBIDDEN, resp);
}

static bool http_is_blocked(struct http_request *rq)
{
	struct conn *c = rq->conn;

	return c->fleet_blocked ||
	       (c->fleet_bound && fleet_fd_blocked(c->list->fleet, c->fd));
}

static enum MHD_Result http_count_header(void *cls, enum MHD_ValueKind kind,
					 const char *key, const char *value)
{
	size_t *total = cls;

	(void)kind;
	/* "Key: value\r\n" */
	*total += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

/* MHD's connection memory pool is only a ceiling (it also holds buffers):
 * max_header_size is checked here, on what the client actually sent. */
static size_t http_header_size(struct http_request *rq)
{
	size_t total = strlen(rq->method) + strlen(rq->raw_url) +
		       strlen(rq->version) + 4;

	MHD_get_connection_values(rq->mc, MHD_HEADER_KIND, http_count_header,
				  &total);
	MHD_get_connection_values(rq->mc, MHD_GET_ARGUMENT_KIND,
				  http_count_header, &total);
	return total;
}

/* Does the request carry a body MHD would have to read first? */
static bool http_has_body(struct http_request *rq)
{
	const char *cl = MHD_lookup_connection_value(
		rq->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (MHD_lookup_connection_value(rq->mc, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return true;
	return cl && strtoull(cl, NULL, 10) > 0;
}

/*
 * Refuse on the headers alone. MHD closes the connection when a response
 * is queued before the request is complete, so a request without a body
 * gets its answer on the final call instead (keep-alive survives a 403 or
 * a 429); one with a body is answered now, so the body is never read.
 */
static enum MHD_Result http_refuse(struct http_request *rq, unsigned status,
				   const char *body, const char *note)
{
	rq->note = note;
	if (!http_has_body(rq)) {
		rq->refuse_status = status;
		rq->refuse_body = body;
		return MHD_YES;
	}
	if (status == MHD_HTTP_TOO_MANY_REQUESTS)
		return http_too_many(rq, note);
	return http_respond_text(rq, status, body);
}

static enum MHD_Result http_answer_refusal(struct http_request *rq)
{
	if (rq->refuse_status == MHD_HTTP_TOO_MANY_REQUESTS)
		return http_too_many(rq, rq->note);
	return http_respond_text(rq, rq->refuse_status, rq->refuse_body);
}

/* First call for a request: route and check everything that does not need
 * the body. Returns MHD_YES with rq->status still 0 to go on. */
static enum MHD_Result http_admit(struct http_request *rq)
{
	const char *why = NULL, *cl;
	char *path;
	enum policy_verdict v;

	if (http_is_blocked(rq))
		return http_blocked(rq);
	if (rq->conn->limits_refused) {
		rq->retry_after_s = rq->conn->retry_after_s;
		return http_too_many(rq, "connection limit");
	}
	if (http_header_size(rq) > rq->cfg->max_header_size)
		return http_refuse(rq, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
				   "431 Request Header Fields Too Large\n",
				   "headers too large");
	path = malloc(HTTP_PATH_MAX);
	if (!path)
		return MHD_NO;
	if (path_normalise(rq->raw_url, path, HTTP_PATH_MAX, &why) < 0) {
		free(path);
		return http_refuse(rq, MHD_HTTP_BAD_REQUEST,
				   "400 Bad Request\n", why);
	}
	rq->path = path;
	rq->loc = policy_match_location(rq->cfg, path);
	if (!rq->loc)
		return http_refuse(rq, MHD_HTTP_NOT_FOUND, "404 Not Found\n",
				   "no location");
	v = policy_check(rq->loc, &rq->conn->id);
	if (v == POLICY_DENY_NO_CERT)
		return http_refuse(rq, MHD_HTTP_FORBIDDEN,
				   "403 Forbidden: a valid client certificate "
				   "is required\n",
				   policy_verdict_text(v));
	if (v != POLICY_ALLOW)
		return http_refuse(rq, MHD_HTTP_FORBIDDEN,
				   "403 Forbidden: this client certificate is "
				   "not allowed here\n",
				   policy_verdict_text(v));
	if (http_over_request_limit(rq))
		return http_refuse(rq, MHD_HTTP_TOO_MANY_REQUESTS, NULL,
				   "request rate limit");
	switch (http_fleet_request(rq)) {
	case FLEET_LIMITED:
		return http_refuse(rq, MHD_HTTP_TOO_MANY_REQUESTS, NULL,
				   "fleet request rate limit");
	case FLEET_BLOCKED:
		return http_blocked(rq);
	}
	if (!rq->loc->proxy_upstream) {
		cl = MHD_lookup_connection_value(
			rq->mc, MHD_HEADER_KIND,
			MHD_HTTP_HEADER_CONTENT_LENGTH);
		why = NULL;
		if (cl && strtoull(cl, NULL, 10) > rq->cfg->max_body_size)
			why = "body too large";
		/* No 413 can be sent once a body is being read (MHD 0.9.75),
		 * and these locations never use one: a chunked body, whose
		 * size is unknown here, is refused before it is read. */
		else if (MHD_lookup_connection_value(
				 rq->mc, MHD_HEADER_KIND,
				 MHD_HTTP_HEADER_TRANSFER_ENCODING))
			why = "chunked body on a location without body";
		if (why) {
			rq->note = why;
			return http_framing_refuse(rq,
						   MHD_HTTP_CONTENT_TOO_LARGE,
						   NULL, NULL, true);
		}
	}
	return MHD_YES;
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *mc,
				   const char *url, const char *method,
				   const char *version, const char *upload_data,
				   size_t *upload_data_size, void **req_cls)
{
	struct http_server *s = cls;
	struct http_request *rq = *req_cls;
	const union MHD_ConnectionInfo *ci;

	(void)upload_data;
	if (!rq) {
		ci = MHD_get_connection_info(
			mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (!ci || !ci->socket_context)
			return MHD_NO;
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->server = s;
		rq->conn = ci->socket_context;
		rq->mc = mc;
		/* A reload must not free the config under a running
		 * request: the request holds its generation. */
		rq->gen = s->gen;
		gen_ref(rq->gen);
		rq->cfg = rq->gen->cfg;
		rq->draining = &s->draining;
		rq->proxy = s->proxy;
		rq->method = method;
		rq->raw_url = url;
		rq->version = version;
		rq->start_ms = loop_now_ms();
		conn_request_begin(rq->conn);
		*req_cls = rq;
		switch (http_framing_admit(rq)) {
		case 0:
			break;
		case 1:
			return MHD_YES;
		default:
			return MHD_NO;
		}
		if (http_admit(rq) == MHD_NO)
			return MHD_NO;
		if (!rq->status && !rq->refuse_status &&
		    rq->loc->proxy_upstream)
			return proxy_handle(rq, upload_data, upload_data_size);
		return MHD_YES;
	}
	if (rq->refuse_status && !rq->status) {
		if (*upload_data_size) {
			/* A body after all (no length announced): drop it. */
			rq->bytes_in += *upload_data_size;
			*upload_data_size = 0;
			return MHD_YES;
		}
		return http_answer_refusal(rq);
	}
	if (!rq->status && rq->loc->proxy_upstream)
		return proxy_handle(rq, upload_data, upload_data_size);
	if (rq->status) {
		/* Answered already (refused early): discard any body. */
		rq->bytes_in += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		rq->bytes_in += *upload_data_size;
		*upload_data_size = 0;
		if (rq->bytes_in > rq->cfg->max_body_size) {
			rq->note = "body too large";
			return http_respond_text(rq, MHD_HTTP_CONTENT_TOO_LARGE,
						 "413 Content Too Large\n");
		}
		return MHD_YES;
	}
	return http_dispatch(rq);
}

static const char *http_verify_text(const struct conn *c)
{
	if (c->id.verified)
		return c->verify_reason ? c->verify_reason : "SUCCESS";
	return c->id.fingerprint[0] ? "FAILED" : "NONE";
}

static void http_log_access(struct http_request *rq,
			    enum MHD_RequestTerminationCode toe)
{
	struct conn *c = rq->conn;
	struct json_buf j;
	char when[40];

	log_timestamp(when, sizeof(when));
	json_begin(&j);
	json_str(&j, "time", when);
	json_str(&j, "client", c->peer_text);
	json_str(&j, "method", rq->method);
	json_str(&j, "path", rq->path ? rq->path : rq->raw_url);
	json_u64(&j, "status", rq->status);
	if (rq->status_not_delivered)
		json_u64(&j, "status_not_delivered", rq->status_not_delivered);
	json_u64(&j, "bytes", rq->bytes_out);
	json_u64(&j, "bytes_in", rq->bytes_in);
	json_u64(&j, "duration_ms", loop_now_ms() - rq->start_ms);
	json_str(&j, "tls_version", c->tls_version);
	json_str(&j, "cipher", c->tls_cipher);
	json_bool(&j, "tls_resumed", c->tls_resumed);
	json_str(&j, "verify", http_verify_text(c));
	json_str(&j, "fingerprint", c->id.verified ? c->id.fingerprint : "");
	json_str(&j, "subject", c->id.subject ? c->id.subject : "");
	json_str(&j, "data_path",
		 c->path == CONN_PATH_KTLS ? "ktls" : "userspace");
	if (c->path != CONN_PATH_KTLS && c->path_reason)
		json_str(&j, "data_path_reason", c->path_reason);
	json_str(&j, "location", rq->loc ? rq->loc->prefix : "");
	if (rq->note)
		json_str(&j, "note", rq->note);
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		json_str(&j, "completion",
			 toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED
				 ? "timeout"
			 : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT
				 ? "client aborted"
				 : "error");
	json_end(&j);
	log_access_line(j.buf, j.len);
}

static void http_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
			   enum MHD_RequestTerminationCode toe)
{
	struct http_request *rq = *req_cls;

	(void)cls;
	(void)mc;
	if (!rq)
		return;
	*req_cls = NULL;
	/* A KeyUpdate ended a request in progress on kTLS: say so. */
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !rq->note &&
	    rq->conn->path == CONN_PATH_KTLS && rq->conn->fd >= 0) {
		const char *why = ktls_close_reason(rq->conn->fd);

		if (why && !strcmp(why, "key update"))
			rq->note = "client key update";
	}
	/* An error ends the connection; once a response was under way it may
	 * be cut short, and a close_notify must never make that look like a
	 * clean end (http_notify_connection). */
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		conn_mhd_error_end(rq->conn, rq->status != 0);
	metrics_count_status(rq->status);
	metrics_add(METRICS_RESPONSE_BYTES, rq->bytes_out);
	if (log_access_enabled())
		http_log_access(rq, toe);
	if (rq->handler_free)
		rq->handler_free(rq);
	conn_request_end(rq->conn);
	free(rq->path);
	gen_unref(rq->gen);
	free(rq);
}

/* MHD's own decoding would turn "%2e%2e" and "%00" into path bytes before
 * we see them; path_normalise decodes strictly instead. */
static size_t http_unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	/* MHD says these on every response over the socketpair: decide on
	 * the format, before paying for vsnprintf. */
	if (!log_enabled(LOG_LVL_DEBUG) &&
	    (strstr(fmt, "option to %s state failed") ||
	     strstr(fmt, "Failed to push the data")))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	/* On the relay's socketpair MHD's TCP_NODELAY/TCP_CORK calls fail
	 * harmlessly (it is not TCP): that is noise, not news. */
	if (strstr(msg, "TCP_NODELAY") || strstr(msg, "TCP_CORK") ||
	    strstr(msg, "Failed to push the data")) {
		log_debug("http: %s", msg);
		return;
	}
	/* MHD reports client misbehaviour here too: keep it at info. */
	log_info("http: %s", msg);
}

static void http_on_proxy_resume(void *arg)
{
	http_server_wake(arg);
}

struct http_server *http_server_new(struct loop *l, struct gen *g,
				    struct limits *limits,
				    const atomic_uint *open_conns)
{
	struct http_server *s = calloc(1, sizeof(*s));
	const struct config *cfg = g->cfg;
	const union MHD_DaemonInfo *info;
	/* MHD's per-connection pool holds the request head (read buffer and
	 * header list), then the response head. It is zeroed whole after
	 * every request (MHD 0.9.75), so all of it stays resident on an idle
	 * keep-alive connection: size it to what max_header_size needs (half
	 * again for the header list and the response head), not twice. */
	size_t mem = cfg->max_header_size + cfg->max_header_size / 2;

	if (!s)
		return NULL;
	if (mem < HTTP_MIN_CONN_MEMORY)
		mem = HTTP_MIN_CONN_MEMORY;
	s->loop = l;
	s->gen = g;
	gen_ref(g);
	s->limits = limits;
	s->open_conns = open_conns;
	s->proxy = proxy_pool_new(l, http_on_proxy_resume, s);
	if (!s->proxy) {
		free(s);
		return NULL;
	}
	/*
	 * MHD_USE_TURBO, for the kTLS close_notify: without it MHD 0.9.75
	 * shuts the socket down (SHUT_WR) the moment it decides to close
	 * (MHD_connection_mark_closed_), before any callback when the close
	 * is its own on an idle connection (its timeout; recv failing on a
	 * KeyUpdate or renegotiation record), so a close_notify could only
	 * follow the FIN. With it MHD sends no shutdown and only closes its
	 * descriptor after the CLOSED notification, where the gateway sends
	 * close_notify and closes lingering (conn_mhd_detach). Its other
	 * effects in 0.9.75: a new connection is read/written at once and
	 * joins MHD's epoll set only when it would block, and client sockets
	 * get FD_CLOEXEC (ours have it). Mimicking MHD's idle timeout and
	 * peeking for control records would race MHD instead.
	 */
	s->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_NO_LISTEN_SOCKET |
			MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, http_access, s, MHD_OPTION_EXTERNAL_LOGGER,
		http_mhd_log, s, MHD_OPTION_NOTIFY_CONNECTION,
		http_notify_connection, s, MHD_OPTION_NOTIFY_COMPLETED,
		http_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)((cfg->request_timeout_ms + 999) / 1000),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem,
		MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
		MHD_OPTION_UNESCAPE_CALLBACK, http_unescape_none, s,
		MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_END);
	if (!s->mhd) {
		log_error("cannot start the HTTP engine");
		proxy_pool_free(s->proxy);
		gen_unref(s->gen);
		free(s);
		return NULL;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || loop_watch_add(l, &s->watch, info->epoll_fd, EPOLLIN,
				    http_on_ready) < 0) {
		MHD_stop_daemon(s->mhd);
		proxy_pool_free(s->proxy);
		gen_unref(s->gen);
		free(s);
		return NULL;
	}
	return s;
}

void http_server_reload(struct http_server *s, struct gen *g)
{
	gen_ref(g);
	gen_unref(s->gen);
	s->gen = g;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	loop_watch_del(s->loop, &s->watch);
	/* MHD refuses to stop with suspended connections. */
	proxy_pool_stop(s->proxy);
	MHD_stop_daemon(s->mhd);
	proxy_pool_free(s->proxy);
	loop_timer_cancel(s->loop, &s->timer);
	gen_unref(s->gen);
	free(s);
}

/*
 * libmicrohttpd 0.9.75 sets TCP_NODELAY and TCP_CORK around every send and
 * learns that a socket is not TCP only from EINVAL, ENOPROTOOPT or
 * ENOTSOCK (MHD_add_connection ignores the address family it is given).
 * Linux answers EOPNOTSUPP for an AF_UNIX socket, so on the relay's
 * socketpair MHD never learns: four failing system calls per response.
 * This definition in the executable takes the place of libc's for MHD
 * too; it only rewords that one answer, so MHD stops asking after the
 * first try on each connection. Every other call is passed through as is.
 */
int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	long r = syscall(SYS_setsockopt, fd, level, name, val, len);

	if (r < 0 && errno == EOPNOTSUPP && level == IPPROTO_TCP)
		errno = EINVAL;
	return (int)r;
}

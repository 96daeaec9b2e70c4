/* SPDX-License-Identifier: MIT */
/*
 * HTTP on top of libmicrohttpd: one MHD daemon per worker (external epoll,
 * no listen socket), fed plaintext sockets by conn hand-off. Routes each
 * request to its location, applies the certificate policy, and calls the
 * location's handler (files, return, proxy). Writes the access log.
 */
#ifndef MTLSGW_HTTP_H
#define MTLSGW_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <microhttpd.h>

#include "config.h"
#include "conn.h"

struct http_server;
struct proxy_pool;

/* One request under way. Lives from the first access-handler call to MHD's
 * request-completed callback. Handlers keep their state in handler_ctx. */
struct http_request {
	struct http_server *server;
	struct conn *conn;
	struct MHD_Connection *mc;
	const struct config *cfg; /* of gen, held for the request */
	struct gen *gen;
	const struct config_location *loc; /* NULL: no location matched */
	const char *method;
	const char *raw_url; /* as sent, not decoded */
	char *path;	     /* decoded, normalised (path_normalise) */
	const char *version;
	uint64_t start_ms;
	unsigned status; /* set by http_respond, once MHD took it */
	/* A status decided but refused by MHD (mid-body): never sent. */
	unsigned status_not_delivered;
	uint64_t bytes_out; /* response body size */
	uint64_t bytes_in;  /* request body bytes seen */
	const char *note;   /* short reason for the access log, static */
	/* A refusal decided on the headers, answered on MHD's final call so
	 * the connection stays usable (see http_refuse). */
	unsigned refuse_status;
	const char *refuse_body;
	void *handler_ctx;
	void (*handler_free)(struct http_request *rq);
};

struct http_server *http_server_new(struct worker *w, struct loop *l,
				    const struct config *cfg);
void http_server_free(struct http_server *s);

/* Hand a plaintext socket to MHD. MHD owns FD afterwards, even on failure
 * (then -1 is returned and the connection reference MHD would hold is
 * dropped). */
int http_server_add(struct http_server *s, struct conn *c, int fd);

/* Number of connections MHD currently holds. */
unsigned http_server_connections(struct http_server *s);
/* Graceful stop: every later response says "Connection: close". */
void http_server_drain(struct http_server *s);
/* Run MHD soon (after MHD_resume_connection: external polling has no
 * ITC to do it). */
void http_server_wake(struct http_server *s);
/* The worker's reverse-proxy state: pooled upstream connections. */
struct proxy_pool *http_server_proxy(struct http_server *s);

/* Queue RESP with STATUS and record both for the access log. Consumes
 * RESP's reference. */
enum MHD_Result http_respond(struct http_request *rq, unsigned status,
			     struct MHD_Response *resp);
/* A short text/plain answer ("403 Forbidden: client certificate
 * required\n" style). */
enum MHD_Result http_respond_text(struct http_request *rq, unsigned status,
				  const char *body);

#endif

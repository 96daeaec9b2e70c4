/* SPDX-License-Identifier: MIT */
/*
 * One HTTP request as its handlers (files, proxy, ...) see it, and the two
 * ways to answer it. Below http.c, which creates requests and routes them,
 * so that handlers never call back up into the HTTP server.
 */
#ifndef MTLSGW_HTTP_RESPOND_H
#define MTLSGW_HTTP_RESPOND_H

#include <stdbool.h>
#include <stdint.h>
#include <microhttpd.h>

#include "config.h"
#include "conn.h"
#include "gen.h"

struct http_server;
struct proxy_pool;

/* One request under way. Lives from the first access-handler call to MHD's
 * request-completed callback. Handlers keep their state in handler_ctx. */
struct http_request {
	struct http_server *server; /* opaque here: http.c's */
	struct conn *conn;
	struct MHD_Connection *mc;
	struct gen *gen;	  /* held for the request, never re-fetched */
	const struct config *cfg; /* gen's */
	const struct config_location *loc; /* NULL: no location matched */
	const bool *draining;	  /* the server's: answer "Connection: close" */
	struct proxy_pool *proxy; /* the worker's, for proxy_handle */
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
	unsigned retry_after_s; /* for a 429 */
	void *handler_ctx;
	void (*handler_free)(struct http_request *rq);
};

/* Queue RESP with STATUS and record both for the access log. Consumes
 * RESP's reference. */
enum MHD_Result http_respond(struct http_request *rq, unsigned status,
			     struct MHD_Response *resp);
/* A short text/plain answer ("403 Forbidden: client certificate
 * required\n" style). */
enum MHD_Result http_respond_text(struct http_request *rq, unsigned status,
				  const char *body);

#endif

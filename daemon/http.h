/* SPDX-License-Identifier: MIT */
/*
 * HTTP on top of libmicrohttpd: one MHD daemon per worker (external epoll,
 * no listen socket), fed plaintext sockets by conn hand-off. Routes each
 * request to its location, applies the certificate policy, and calls the
 * location's handler (files, return, proxy). Writes the access log.
 */
#ifndef MTLSGW_HTTP_H
#define MTLSGW_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <microhttpd.h>

#include "conn.h"
#include "gen.h"
#include "http_respond.h"
#include "limits.h"
#include "loop.h"

struct http_server;

/* G: the generation new requests start on (http_server_reload changes
 * it); LIMITS for the request rate (NULL: off); OPEN_CONNS for /metrics. */
struct http_server *http_server_new(struct loop *l, struct gen *g,
				    struct limits *limits,
				    const atomic_uint *open_conns);
void http_server_reload(struct http_server *s, struct gen *g);
void http_server_free(struct http_server *s);

/* Hand a plaintext socket to MHD. MHD owns FD afterwards, even on failure
 * (then -1 is returned and the connection reference MHD would hold is
 * dropped). */
int http_server_add(struct http_server *s, struct conn *c, int fd);

/* Graceful stop: every later response says "Connection: close". */
void http_server_drain(struct http_server *s);
/* Run MHD soon (after MHD_resume_connection: external polling has no
 * ITC to do it). */
void http_server_wake(struct http_server *s);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * A connection's way from accept to HTTP: the PROXY protocol header (when
 * the listener expects one), the non-blocking TLS handshake, both under one
 * deadline; then the client's identity, its admission against the limits,
 * and the hand-off that picks the data path (kTLS: MHD gets the TCP socket;
 * otherwise a socketpair whose other end relay.c serves).
 */
#ifndef MTLSGW_HANDSHAKE_H
#define MTLSGW_HANDSHAKE_H

#include <stdbool.h>

#include "conn.h"

struct http_server;

/* What a worker's handshakes share (embedded in the worker). */
struct handshake_ctx {
	struct conn_list conns; /* every connection of the worker */
	struct http_server *http;
	bool ktls_usable;
	const char *no_ktls_reason; /* static, when !ktls_usable */
};

/* Take over C, just accepted on H's list (with a PROXY header first when
 * PROXY_PROTOCOL). C is closed on any failure, logged here. */
void handshake_start(struct handshake_ctx *h, struct conn *c,
		     bool proxy_protocol);

/* Close C if it has not reached HTTP yet (drain, stop); true if it was
 * closed. */
bool handshake_cancel(struct conn *c);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * One client connection, from accept to close. Owned by the worker that
 * accepted it; never touched by another thread. MHD's socket context points
 * at it, so HTTP handlers (files, proxy, limits) reach the identity and the
 * TLS facts of the connection that carries a request.
 */
#ifndef MTLSGW_CONN_H
#define MTLSGW_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "identity.h"
#include "loop.h"

struct worker;
struct relay;
struct gen;

enum conn_path {
	CONN_PATH_NONE,	     /* still in the handshake */
	CONN_PATH_KTLS,	     /* TX+RX in the kernel: MHD has the TCP socket */
	CONN_PATH_USERSPACE, /* socketpair + userspace OpenSSL relay */
};

enum conn_state {
	CONN_PROXY_HEADER, /* waiting for a PROXY protocol header */
	CONN_HANDSHAKE,
	CONN_HTTP, /* handed to libmicrohttpd */
	CONN_CLOSED,
};

struct conn {
	struct worker *worker;
	struct gen *gen; /* config generation this connection started on */
	enum conn_state state;
	int fd;	    /* client TCP socket; -1 once MHD owns it or after close */
	int mhd_fd; /* the fd given to MHD (== TCP fd on kTLS, socketpair end)
		     */
	SSL *ssl;
	struct loop_watch watch; /* on fd, during PROXY header and handshake */
	struct loop_timer timer; /* handshake deadline, PROXY header re-peek */
	uint64_t deadline_ms;	 /* PROXY header + handshake must end by */

	struct sockaddr_storage peer; /* real client (after PROXY protocol) */
	socklen_t peer_len;
	char peer_text[64]; /* "1.2.3.4:5678" / "[::1]:5678" */
	struct sockaddr_storage local;
	socklen_t local_len;
	bool proxy_protocol;

	/* TLS facts, valid from CONN_HTTP on. */
	const char *tls_version; /* static strings from OpenSSL */
	const char *tls_cipher;
	bool tls_resumed;
	long verify_result; /* X509_V_OK when verified */
	struct identity id;

	enum conn_path path;
	const char *path_reason; /* why userspace, static string, or NULL */
	struct relay *relay;	 /* CONN_PATH_USERSPACE only */

	/* Requests under way on this connection (for graceful drain). */
	unsigned active_requests;
	uint64_t requests;
	/* Client bytes forwarded since the last request began: non-zero with
	 * no active request means a request started but is not complete. */
	uint64_t pending_request_bytes;
	/* Owners still holding this conn: MHD, the relay. Freed at 0. */
	unsigned refs;
	bool limits_bound;	  /* limits_admit() accepted it */
	bool limits_refused;	  /* over a connection limit: 429, then close */
	bool fleet_bound;	  /* fleet_conn_open() counted it */
	bool fleet_blocked;	  /* on the fleet block list: 403, then close */
	unsigned retry_after_s;	  /* for that 429 */
	struct conn *prev, *next; /* worker's list of live connections */
};

/* Drop one reference; frees the connection at zero. */
void conn_unref(struct conn *c);
/* The TCP socket is about to be closed (by us or by MHD): release what is
 * keyed by it (userspace limiter). Idempotent. */
void conn_tcp_closing(struct conn *c);

#endif

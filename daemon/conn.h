/* SPDX-License-Identifier: MIT */
/*
 * One client connection, from accept to free. conn.c owns its lifetime:
 * the references, the client's TCP socket (closed in one function,
 * conn_close_socket, on every path), and everything keyed by that socket
 * (the limiter's count, the connection gauge), each released exactly once.
 * Owned by the worker that accepted it; never touched by another thread.
 *
 * Who writes what: the fields under "conn.c" only through the functions
 * below; the handshake fields by handshake.c before the hand-off; relay by
 * relay.c. Everything else (http, files, proxy, policy) only reads.
 */
#ifndef MTLSGW_CONN_H
#define MTLSGW_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "gen.h"
#include "identity.h"
#include "limits.h"
#include "loop.h"

struct fleet;
struct relay;
struct conn_linger;

/*
 * Lingering close (as Apache and nginx do): a socket the gateway closes on
 * its own initiative is shut down for sending, then what the client still
 * sends is read and dropped until it closes too, for at most
 * CONN_LINGER_MS and CONN_LINGER_BYTES. Closing with unread data makes the
 * kernel send a reset, which destroys what was sent last (a TLS 1.3
 * client's alert arrives after it has sent its Finished and its request).
 * More than CONN_LINGER_MAX lingering sockets per worker close at once.
 */
#define CONN_LINGER_MS	  2000
#define CONN_LINGER_BYTES (64 * 1024)
#define CONN_LINGER_MAX	  1024

enum conn_path {
	CONN_PATH_NONE,	     /* still in the handshake */
	CONN_PATH_KTLS,	     /* TX+RX in the kernel: MHD has the TCP socket */
	CONN_PATH_USERSPACE, /* socketpair + userspace OpenSSL relay */
};

enum conn_state {
	CONN_PROXY_HEADER, /* waiting for a PROXY protocol header */
	CONN_HANDSHAKE,
	CONN_HTTP,   /* handed to libmicrohttpd */
	CONN_CLOSED, /* set by conn.c when the last reference goes */
};

/* A worker's connections and what they share with it. */
struct conn_list {
	LIST_HEAD(, conn) head;
	unsigned n;
	struct loop *loop;
	struct limits *limits;	 /* NULL: limits off */
	struct fleet *fleet;	 /* NULL: no [fleet] */
	atomic_uint *open_conns; /* process-wide: accepted, not yet freed */
	LIST_HEAD(, conn_linger) lingering;
	unsigned n_lingering;
	/* Called when a connection or a lingering socket has been closed (a
	 * descriptor is free again); NULL: nothing to tell. */
	void (*released)(struct conn_list *l);
	unsigned max_conns; /* ceiling of *open_conns */
};

struct conn {
	/* conn.c */
	struct conn_list *list;
	LIST_ENTRY(conn) link;
	unsigned refs;	   /* the handshake, MHD, the relay; freed at 0 */
	struct gen *gen;   /* config generation it was accepted under */
	int fd;		   /* client TCP socket; -1 once closed */
	bool fd_mhd;	   /* MHD owns fd (kTLS hand-off): it closes it */
	int mhd_fd;	   /* the fd MHD serves (fd on kTLS, socketpair end) */
	bool limits_bound; /* limits_admit() counted it: release once */
	bool limits_refused;	/* over a connection limit: 429, then close */
	bool fleet_bound;	/* fleet_conn_open() counted it: release once */
	bool fleet_blocked;	/* on the fleet block list: 403, then close */
	unsigned retry_after_s; /* for that 429 */
	unsigned active_requests; /* requests under way (graceful drain) */
	/* Client bytes forwarded since the last request began: non-zero with
	 * no active request means a request started but is not complete. */
	uint64_t pending_request_bytes;
	bool close_notify_sent; /* kTLS: conn_close_notify() did, once */
	bool close_unclean;	/* kTLS: a response was cut, no close_notify */
	bool mhd_closing;	/* MHD closes fd after this detach (dup it) */

	/* handshake.c, until the hand-off (state: conn.c sets CLOSED) */
	enum conn_state state;
	SSL *ssl; /* freed by conn.c; NULL after a kTLS hand-off */
	struct loop_watch watch; /* on fd, during PROXY header and handshake */
	struct loop_timer timer; /* handshake deadline, PROXY header re-peek */
	uint64_t deadline_ms;	 /* PROXY header + handshake must end by */
	struct sockaddr_storage peer; /* real client (after PROXY protocol) */
	socklen_t peer_len;
	char peer_text[64];	 /* "1.2.3.4:5678" / "[::1]:5678" */
	const char *tls_version; /* static strings from OpenSSL */
	const char *tls_cipher;
	bool tls_resumed;
	const char *verify_reason; /* "ocsp unavailable" (ocsp_fail = open) */
	struct identity id;
	enum conn_path path;
	const char *path_reason; /* why userspace, static string, or NULL */

	/* relay.c */
	struct relay *relay; /* CONN_PATH_USERSPACE, while the relay runs */
};

/* An accepted socket FD from PEER becomes a connection with one reference
 * (the handshake's) on L, under generation G. NULL with FD closed when
 * max_conns are open (errno EBUSY) or out of memory (ENOMEM). */
struct conn *conn_new(struct conn_list *l, int fd, struct gen *g,
		      const struct sockaddr_storage *peer, socklen_t peer_len);
void conn_ref(struct conn *c);
/* Drop one reference; at zero close the socket (conn_close_socket) and
 * free the connection. */
void conn_unref(struct conn *c);

/*
 * The one place the client's TCP socket goes away: release what is keyed
 * by it (the limiter's count, once), then close it (lingering). When MHD
 * owns it (fd_mhd), MHD closes its descriptor itself right after telling
 * us (or already has, when it refused the socket); in the first case a
 * duplicate of it is closed lingering here. Idempotent.
 */
void conn_close_socket(struct conn *c);

/* Close the sockets still lingering (worker stop). */
void conn_list_close_lingering(struct conn_list *l);

/* The client's identity is known: count the connection against its
 * limits (sets limits_bound or limits_refused / retry_after_s). */
void conn_admit(struct conn *c);
/* The plaintext socket MHD serves from now on; TCP says whether it is the
 * client's TCP socket itself (kTLS), which MHD then closes. */
void conn_mhd_attach(struct conn *c, int fd, bool tcp);
/* MHD has let go of its socket: closed it already (refused it), or
 * (STILL_OPEN) closes it right after this call. On kTLS the gateway then
 * closes the socket lingering through a duplicate descriptor of its own;
 * MHD's close only drops MHD's descriptor. */
void conn_mhd_detach(struct conn *c, bool still_open);

/*
 * A kTLS connection is about to close (MHD's connection-closed
 * notification, drain): send the client a close_notify through the
 * kernel, before the FIN. At most once per connection; only on
 * CONN_PATH_KTLS (the relay's OpenSSL sends its own); never blocks, and a
 * failure (full send buffer, peer gone) only costs the alert.
 */
void conn_close_notify(struct conn *c);

/*
 * MHD ended a request with an error and has marked the connection closed
 * (it sends no shutdown of its own: MHD_USE_TURBO, http.c). Say so to the
 * other side now, as MHD without TURBO did: on kTLS a close_notify first
 * unless a response was cut short (CUT), then shutdown(SHUT_WR) of MHD's
 * socket. MHD 0.9.75 leaves a connection it closed while producing a body
 * in its idle step (a content reader's error) uncleaned until its timeout,
 * so without this the client (or the relay) would wait that long.
 */
void conn_mhd_error_end(struct conn *c, bool cut);

/* An HTTP request starts / ends on this connection. */
void conn_request_begin(struct conn *c);
void conn_request_end(struct conn *c);
/* N bytes of the client's went to MHD (the userspace relay counts). */
void conn_client_bytes(struct conn *c, uint64_t n);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The userspace TLS data path: moves bytes between the client's TLS
 * connection (OpenSSL) and the plaintext socketpair end that MHD serves.
 * Non-blocking, backpressure both ways (a full side stops reading the
 * other), fixed buffers per connection, no busy loops: each direction waits
 * on exactly the readiness OpenSSL or the socket asked for.
 */
#ifndef MTLSGW_RELAY_H
#define MTLSGW_RELAY_H

#include <openssl/ssl.h>

#include "conn.h"
#include "loop.h"

#define RELAY_BUF_SIZE (16 * 1024) /* one TLS record of plaintext */

/* Start relaying C's TLS connection (c->fd, c->ssl) to APP_FD. Takes one
 * reference on C, dropped when the relay ends. Returns 0 or -1 (APP_FD is
 * then closed by the caller). No traffic either way for IDLE_TIMEOUT_MS
 * ends the connection, with "408 Request Timeout" when the client had
 * begun a request that never completed. */
int relay_start(struct conn *c, struct loop *l, int app_fd,
		unsigned idle_timeout_ms);

/* Graceful end for an idle connection (drain): stop reading from the
 * client and signal EOF to MHD; MHD then closes its end, and the relay
 * flushes what MHD already wrote before sending close_notify. Idempotent. */
void relay_drain(struct relay *r);

/* End the relay now (graceful drain of an idle connection, shutdown):
 * sends close_notify if possible, closes both sockets. */
void relay_close(struct relay *r);

#endif

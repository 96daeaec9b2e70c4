/* SPDX-License-Identifier: MIT */
/*
 * Kernel TLS: probe the kernel at start-up, switch OpenSSL's kTLS on for an
 * SSL_CTX, and after each handshake make sure both directions of the
 * connection are in the kernel, so that libmicrohttpd can be given the TCP
 * socket itself (plaintext in, plaintext out, sendfile encrypted by the
 * kernel).
 *
 * OpenSSL 3.0 puts TLS 1.2 TX and RX and TLS 1.3 TX into the kernel itself
 * (SSL_OP_ENABLE_KTLS). It never installs TLS 1.3 RX; this module does that
 * from the client application traffic secret (OpenSSL 3.2+ does it itself,
 * and then its RX is used as is).
 *
 * Threads: ktls_probe() and ktls_ctx_setup() run at start-up or reload;
 * ktls_after_handshake() runs on any worker and touches only its SSL.
 */
#ifndef MTLSGW_KTLS_H
#define MTLSGW_KTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include "config.h"

/* AEADs the kernel accepted a key for during ktls_probe(). */
#define KTLS_CIPHER_AES_128_GCM	      (1u << 0)
#define KTLS_CIPHER_AES_256_GCM	      (1u << 1)
#define KTLS_CIPHER_CHACHA20_POLY1305 (1u << 2)

/*
 * Is kTLS usable? With MODE off nothing is probed. Otherwise this sets the
 * "tls" ULP on a throw-away loopback TCP connection (which also makes a
 * kernel that has tls.ko as a module load it, given CAP_NET_ADMIN) and
 * installs a dummy TX key of each AEAD on further ones, to learn which
 * ciphers the kernel offloads.
 *
 * Returns 1 when usable; WHY then lists the ciphers ("AES-128-GCM
 * AES-256-GCM CHACHA20-POLY1305"). Returns 0 when not; WHY says why in one
 * line ("ktls = off", "kernel has no tls ULP (tcp_available_ulp: mptcp)",
 * ...). The caller logs WHY once and picks the data path; with MODE on and
 * 0 it refuses to start. Call once, before workers start.
 */
int ktls_probe(enum config_ktls mode, char *why, size_t why_len);

/* KTLS_CIPHER_* bits found by the last ktls_probe() (0 before). */
unsigned ktls_ciphers(void);

/*
 * ENABLE: set SSL_OP_ENABLE_KTLS on CTX and a keylog callback that keeps
 * each connection's TLS 1.3 client application traffic secret in the SSL's
 * ex_data (never logged; wiped when used, or when the SSL is freed).
 * !ENABLE: clear SSL_OP_ENABLE_KTLS, no callback. Returns 0 or -1.
 */
int ktls_ctx_setup(SSL_CTX *ctx, bool enable);

/*
 * After SSL_accept has succeeded on FD, before any application data was
 * read through SSL. Returns 1 when TX and RX are both in the kernel: FD
 * now carries plaintext both ways and SSL must not be used for I/O again
 * (free it without SSL_shutdown). Returns 0 otherwise, with *REASON a
 * static string for logs and metrics ("ktls off", "tx not in kernel",
 * "cipher not offloaded", "openssl buffered data", "rx setsockopt failed",
 * ...): the connection keeps working through SSL (userspace relay; TX may
 * still be in the kernel, which OpenSSL handles). Either way the captured
 * secret is wiped.
 */
int ktls_after_handshake(SSL *ssl, int fd, const char **reason);

/*
 * Why a kTLS RX socket stopped giving data. Once RX is in the kernel, a
 * record that is not application data (an alert, a TLS 1.3 KeyUpdate)
 * makes a plain recv() fail with EIO and stay queued. Call this on the
 * connection's fd when a read failed or the peer "closed" (before the fd is
 * closed): it peeks at that record without consuming it and returns a
 * static string: "close_notify", "alert", "key update" (the client changed
 * its TLS 1.3 traffic key, which the kernel cannot follow on its own),
 * "handshake message", or NULL when no such record is waiting.
 */
const char *ktls_close_reason(int fd);

/*
 * Send a TLS close_notify alert (warning) through the kernel on a socket
 * whose TX is in the kernel (RFC 8446 6.1: the side that closes says so
 * first). Never blocks (MSG_DONTWAIT). Returns 0, or -1 with errno
 * (EAGAIN: send buffer full; EPIPE: already shut down; ...).
 */
int ktls_send_close_notify(int fd);

/*
 * recv() for a socket being closed: on a kTLS RX socket it also takes a
 * record that is not application data (dropping its type), where a plain
 * recv() would fail with EIO and leave it queued for ever; elsewhere it is
 * a plain non-blocking recv(). Returns what recv() returns.
 */
ssize_t ktls_recv_discard(int fd, void *buf, size_t len);

#define KTLS_TLS13_IV_LEN 12
/*
 * TLS 1.3 traffic key and IV from a traffic SECRET (RFC 8446 7.3:
 * HKDF-Expand-Label with "key" and "iv"), computed by OpenSSL's TLS13-KDF
 * with the cipher suite's hash MD. Used for RX above; exposed for the unit
 * test (RFC 8448 vectors). Returns 0 or -1.
 */
int ktls_tls13_key_iv(const EVP_MD *md, const unsigned char *secret,
		      size_t secret_len, unsigned char *key, size_t key_len,
		      unsigned char iv[KTLS_TLS13_IV_LEN]);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * The server's TLS context (certificate, client CA, CRL, protocol and
 * cipher policy) and the non-blocking handshake step.
 */
#ifndef MTLSGW_TLS_H
#define MTLSGW_TLS_H

#include <stdio.h>
#include <openssl/ssl.h>

#include "config.h"

/* TLS 1.2 suites: ECDHE key exchange with AEAD only, in the server's order
 * of preference: AES-128-GCM (fastest with AES-NI, what every peer
 * picks), ChaCha20-Poly1305, then AES-256-GCM. OpenSSL's own sort puts
 * AES-256 first. TLS 1.3's are all AEAD. */
#define TLS_CIPHERS_TLS12                                                      \
	"ECDHE+AESGCM+AES128:ECDHE+CHACHA20:ECDHE+AESGCM+AES256:!aNULL:!eNULL"
#define TLS_CIPHERSUITES_TLS13                                                 \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                       \
	"TLS_CHACHA20_POLY1305_SHA256"
#define TLS_SESSION_ID_CONTEXT "mtlsgw"
#define TLS_NUM_TICKETS	       1
/* Sessions kept for resumption per TLS context (~1-4 KiB each, the
 * client certificate shared with live connections), and for how long
 * (nginx's ssl_session_timeout default). */
#define TLS_SESSION_CACHE_SIZE 10240
#define TLS_SESSION_TIMEOUT_S  300

/*
 * Build the SSL_CTX for CFG. Problems (unreadable files, a key that does
 * not match its certificate, a bad CRL) go to ERRORS as "FILE:LINE:
 * message" naming the config key; NULL is returned.
 */
SSL_CTX *tls_ctx_new(const struct config *cfg, FILE *errors);

enum tls_step {
	TLS_STEP_DONE,
	TLS_STEP_WANT_READ,
	TLS_STEP_WANT_WRITE,
	TLS_STEP_WANT_OCSP, /* paused on an OCSP request (ocsp.h) */
	TLS_STEP_FAILED,
};

/*
 * Advance SSL_accept. On failure the reason is logged at info (a client
 * causes it), naming PEER and, for a certificate, the verify error.
 */
enum tls_step tls_accept_step(SSL *ssl, const char *peer);

/* SSL_free, keeping a finished handshake's session resumable. */
void tls_free(SSL *ssl);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * OCSP for client certificates, without blocking a worker.
 *
 * OpenSSL 3.0 honours SSL_set_retry_verify() on the client side only (a
 * server's handshake ignores it and completes), so the pause uses
 * OpenSSL's other suspension point: the handshake runs as an ASYNC job
 * (SSL_MODE_ASYNC, set on the SSL_CTX when ocsp != off), and the verify
 * callback, on a cache miss, starts a request on the worker's event loop
 * and calls ASYNC_pause_job(). SSL_accept returns SSL_ERROR_WANT_ASYNC
 * (tls_accept_step: TLS_STEP_WANT_OCSP); when the answer or the timeout
 * arrives, the waiting handshakes are stepped again and the callback
 * resumes where it paused, with the answer. Handshakes asking about the
 * same certificate share one request. Answers are cached per worker, per
 * (issuer, serial), until their nextUpdate, in at most ocsp_cache_size
 * entries.
 */
#ifndef MTLSGW_OCSP_H
#define MTLSGW_OCSP_H

#include "url.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "config.h"

struct loop;

#define OCSP_SKEW_SEC	    300	  /* thisUpdate/nextUpdate clock skew */
#define OCSP_MAX_INFLIGHT   256	  /* requests under way per worker */
#define OCSP_MAX_RESPONSE   65536 /* bytes of HTTP response read at most */
#define OCSP_REVOKED_TTL_MS 86400000ull /* a revoked answer lives >= this */
#define OCSP_CACHE_BUCKETS  4096

/* Reasons, as the access log's `verify` field and the error log say. */
#define OCSP_REASON_REVOKED_OCSP "revoked (ocsp)"
#define OCSP_REASON_REVOKED_CRL	 "revoked (crl)"
#define OCSP_REASON_UNAVAILABLE	 "ocsp unavailable"

/*
 * The OCSP settings of one configuration generation, kept on its SSL_CTX
 * (tls_ctx_new). ocsp_responder is resolved here, on the main thread, so
 * that no worker ever waits for DNS; AIA URLs must name an address.
 */
int ocsp_ctx_setup(SSL_CTX *ctx, const struct config *cfg, FILE *errors);

/* A worker's OCSP state (cache, requests under way), on its loop. */
struct ocsp *ocsp_new(struct loop *l);
void ocsp_free(struct ocsp *o);
/* The worker thread's instance, for the verify callback. */
void ocsp_thread_set(struct ocsp *o);

/*
 * Called by the verify callback for each certificate that verified (OK =
 * 1): 1 to go on, 0 to refuse (error set on XS). May pause the handshake.
 */
int ocsp_verify_step(SSL *ssl, X509_STORE_CTX *xs);

/* Per handshake: RESUME(ARG) runs on the loop when a paused handshake can
 * be stepped again. */
int ocsp_handshake_bind(SSL *ssl, void (*resume)(void *), void *arg);
/* Before SSL_free of a handshake that may be paused: finish the job. */
void ocsp_handshake_cancel(SSL *ssl);
/* Record REASON (a static string) and LEAF's subject for this
 * handshake's access-log line. */
void ocsp_handshake_set_reason(SSL *ssl, const char *reason, X509 *leaf);
/* "revoked (ocsp)", "revoked (crl)", "ocsp unavailable" or NULL. */
const char *ocsp_handshake_reason(SSL *ssl);

/* A resumed session skipped verification: the reason its certificate (or
 * one above it) is now known revoked, or NULL. */
const char *ocsp_resumed_revoked(SSL *ssl);

/* One access-log line for a handshake refused for REASON. */
void ocsp_log_refused(SSL *ssl, const char *peer, const char *reason);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * A per-worker cache of client chain verification results. A full mTLS
 * handshake spends about 40% of its instructions in X509_verify_cert
 * (certificate and CRL signatures); a client that reconnects presents the
 * same chain, against the same CA store and CRLs, so the answer is the
 * same until one of those changes or a certificate or CRL expires.
 *
 * Only successes are cached, keyed by the SHA-256 of the presented chain
 * (leaf first) and valid within one TLS context (config generation) and
 * one CRL epoch, never past the earliest notAfter of the verified chain
 * nor the earliest nextUpdate of the store's CRLs. A miss, or anything
 * unusual, runs OpenSSL's X509_verify_cert as before. The cache replaces
 * only the chain check: OpenSSL still verifies the CertificateVerify
 * signature with the leaf's key, so possession of the key is proven on
 * every handshake.
 *
 * One table per thread (a worker runs its handshakes on one thread): no
 * locks; freed when the thread exits.
 */
#ifndef MTLSGW_VERIFYCACHE_H
#define MTLSGW_VERIFYCACHE_H

#include <openssl/ssl.h>

#define VERIFYCACHE_SLOTS 256 /* per worker, power of two */

/* Route CTX's chain verification through the cache. Call once per
 * SSL_CTX, after its store and verify parameters are final. */
void verifycache_attach(SSL_CTX *ctx);

#endif

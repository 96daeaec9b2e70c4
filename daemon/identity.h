/* SPDX-License-Identifier: MIT */
/*
 * Who the client is, as established by the TLS handshake. Filled once
 * after the handshake from the verified leaf certificate; read-only after.
 */
#ifndef MTLSGW_IDENTITY_H
#define MTLSGW_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#define IDENTITY_FP_HEX_LEN 64 /* sha256, lowercase hex, no colons */
#define IDENTITY_MAX_SANS   16

struct identity {
	bool verified; /* a client certificate was presented and verified */
	char fingerprint[IDENTITY_FP_HEX_LEN + 1]; /* "" when none */
	char *subject;	  /* RFC 2253, e.g. "CN=client1,O=mtlsgw demo" */
	char *subject_cn; /* first CN, or "" */
	char *issuer;	  /* RFC 2253 */
	char *serial;	  /* uppercase hex */
	char *san_dns[IDENTITY_MAX_SANS];
	size_t n_san_dns;
	char *san_uri[IDENTITY_MAX_SANS];
	size_t n_san_uri;
	unsigned char *der; /* leaf DER (for forward_cert), NULL if none */
	size_t der_len;
	char *chain_pem; /* intermediates as PEM, NULL if none */
};

/*
 * Fill ID from SSL's peer certificate after a finished handshake. No peer
 * certificate (or one that did not verify) leaves ID "not verified" and
 * returns 0. -1 only on allocation failure.
 */
int identity_from_ssl(SSL *ssl, struct identity *id);
/* Same fields from a certificate (unit tests, resumed sessions); leaves
 * verified false: the caller decides whether CERT was verified. */
int identity_from_x509(X509 *cert, struct identity *id);
void identity_clear(struct identity *id);

/* Lowercase hex SHA-256 of DER into out[65]. */
void identity_fingerprint_hex(const unsigned char *der, size_t len,
			      char out[IDENTITY_FP_HEX_LEN + 1]);

#endif

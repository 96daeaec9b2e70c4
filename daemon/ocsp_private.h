/* SPDX-License-Identifier: MIT */
/* Shared by ocsp.c (cache, handshakes) and ocsp_lookup.c (HTTP). */
#ifndef MTLSGW_OCSP_PRIVATE_H
#define MTLSGW_OCSP_PRIVATE_H

#include <stdint.h>
#include <openssl/ocsp.h>

#include "loop.h"
#include "ocsp.h"

#define OCSP_KEY_LEN 32 /* SHA-256 of the CertID DER, or of a cert DER */

enum ocsp_result {
	OCSP_RESULT_NONE, /* not known yet */
	OCSP_RESULT_GOOD,
	OCSP_RESULT_REVOKED,
	OCSP_RESULT_UNKNOWN,
	OCSP_RESULT_UNAVAILABLE, /* no usable answer */
	OCSP_RESULT_CANCELLED,	 /* the connection went away */
};

/* Settings of one generation (SSL_CTX ex_data). */
struct ocsp_conf {
	enum config_ocsp mode;
	bool fail_open;
	unsigned timeout_ms;
	unsigned cache_size;
	bool have_responder; /* ocsp_responder set: overrides AIA */
	struct sockaddr_storage responder;
	socklen_t responder_len;
	struct url_http url;
};

/* One handshake's state (SSL ex_data). */
struct ocsp_hs {
	struct ocsp *o;
	void (*resume)(void *);
	void *arg;
	struct ocsp_lookup *waiting; /* paused on this request */
	struct ocsp_hs *wnext;	     /* its list of waiters */
	enum ocsp_result result;
	bool paused;
	struct loop_timer timer; /* 0 ms: resume from a clean stack */
	const char *reason;
	char subject[256];
};

/* One request under way. */
struct ocsp_lookup {
	struct ocsp *o;
	unsigned char key[OCSP_KEY_LEN];
	unsigned char cert_key[OCSP_KEY_LEN];
	OCSP_REQUEST *req;
	OCSP_CERTID *id;
	X509_STORE *store; /* trust for the responder's signature */
	unsigned cache_size;
	int fd;
	struct loop_watch watch;
	struct loop_timer timer;
	unsigned char *out;
	size_t out_len, out_off;
	unsigned char *in;
	size_t in_len;
	uint64_t start_ms;
	char target[URL_HOST_MAX + 16]; /* for logs: "127.0.0.1:8888" */
	struct ocsp_hs *waiters;
	struct ocsp_lookup *prev, *next;
};

struct ocsp_entry {
	unsigned char key[OCSP_KEY_LEN];
	enum ocsp_result result;
	uint64_t expires_ms;
	struct ocsp_entry *hnext;	  /* bucket chain */
	struct ocsp_entry *older, *newer; /* insertion order, for eviction */
};

struct ocsp {
	struct loop *loop;
	struct ocsp_entry *buckets[OCSP_CACHE_BUCKETS];
	struct ocsp_entry *oldest, *newest;
	unsigned n_entries;
	struct ocsp_lookup *lookups;
	unsigned n_lookups;
};

/* ocsp.c */
void ocsp_cache_put(struct ocsp *o, const unsigned char *key,
		    enum ocsp_result r, uint64_t expires_ms, unsigned cap);
void ocsp_lookup_done(struct ocsp_lookup *lk, enum ocsp_result r);

/* ocsp_lookup.c: the settings of SSL's generation, NULL if ocsp = off. */
const struct ocsp_conf *ocsp_conf_of(SSL *ssl);
/* ocsp_lookup.c: start a request for ID (of CERT issued by ISSUER); NULL if
 * it cannot even start (logged). */
struct ocsp_lookup *ocsp_lookup_start(struct ocsp *o,
				      const struct ocsp_conf *conf,
				      X509_STORE *store, X509 *cert,
				      const OCSP_CERTID *id,
				      const unsigned char *key);
void ocsp_lookup_free(struct ocsp_lookup *lk);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * A configuration generation: the parsed config and the TLS context built
 * from it, swapped in whole on reload. Reference-counted across threads:
 * main builds one, each worker holds its newest, every connection holds the
 * one it was accepted under, every request the one it started under (and
 * never fetches another). The last reference frees both.
 */
#ifndef MTLSGW_GEN_H
#define MTLSGW_GEN_H

#include <stdatomic.h>
#include <openssl/ssl.h>

#include "config.h"

struct gen {
	struct config *cfg;
	SSL_CTX *ssl_ctx;
	unsigned id; /* 1 at start, +1 per successful reload */
	atomic_uint refs;
};

/* Takes ownership of CFG and CTX (one reference). NULL when out of memory
 * (CFG and CTX are then still the caller's). */
struct gen *gen_new(struct config *cfg, SSL_CTX *ctx, unsigned id);
void gen_ref(struct gen *g);
/* NULL is a no-op. */
void gen_unref(struct gen *g);

#endif

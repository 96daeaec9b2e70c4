// SPDX-License-Identifier: MIT
#include <stdlib.h>

#include "gen.h"

struct gen *gen_new(struct config *cfg, SSL_CTX *ctx, unsigned id)
{
	struct gen *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->cfg = cfg;
	g->ssl_ctx = ctx;
	g->id = id;
	atomic_init(&g->refs, 1);
	return g;
}

void gen_ref(struct gen *g)
{
	atomic_fetch_add(&g->refs, 1);
}

void gen_unref(struct gen *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	SSL_CTX_free(g->ssl_ctx);
	config_free(g->cfg);
	free(g);
}

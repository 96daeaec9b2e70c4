/* SPDX-License-Identifier: MIT */
/*
 * A worker thread: its own listeners (SO_REUSEPORT), event loop, TLS
 * handshakes, userspace relays and libmicrohttpd daemon. A connection lives
 * and dies on the worker that accepted it; nothing on the connection path
 * takes a lock.
 */
#ifndef MTLSGW_WORKER_H
#define MTLSGW_WORKER_H

#include <openssl/ssl.h>
#include <stdatomic.h>

#include "config.h"
#include "gen.h"

struct limits;
struct fleet;

struct worker;

/* Process-wide state shared by workers, read-only after start-up except
 * for the atomic counters. */
struct worker_shared {
	struct limits *limits;
	struct fleet *fleet; /* NULL without [fleet] */
	bool ktls_usable;
	const char
		*no_ktls_reason; /* static: "ktls off", "kernel has no ktls" */
	atomic_uint connections; /* accepted and not yet closed */
	unsigned max_connections;
};

/* LISTEN_FDS (N of them, one per config listen line, same order) become the
 * worker's. */
struct worker *worker_new(unsigned index, struct gen *g,
			  struct worker_shared *shared, const int *listen_fds,
			  size_t n);
int worker_start(struct worker *w);
/* Ask the worker (from another thread) to use generation G. */
void worker_reload(struct worker *w, struct gen *g);
/* Stop accepting, finish in-flight requests within DEADLINE_MS, exit. */
void worker_drain(struct worker *w, unsigned deadline_ms);
/* Stop now. */
void worker_stop(struct worker *w);
void worker_join(struct worker *w);
/* True once the worker's thread has left its loop (join will not block). */
bool worker_done(struct worker *w);
void worker_free(struct worker *w);

#endif

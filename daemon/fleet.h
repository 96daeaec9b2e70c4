/* SPDX-License-Identifier: MIT */
/*
 * The fleet: per-certificate limits and counters shared by every gateway
 * that names the same Redis in [fleet], and the fleet-wide block list.
 *
 * Workers never talk to Redis. They count and decide in memory
 * (fleet_conn_open, fleet_request: one hash lookup under a striped lock),
 * against the fleet totals the sync thread (fleet_sync.c) last read back.
 * Every sync_interval that thread pushes what changed since the previous
 * sync and reads the totals in one pipelined round trip per batch.
 *
 * Only verified client certificates are fleet identities; anonymous
 * clients are limited by the local [limits anonymous] only.
 *
 * fleet_new, fleet_reload and fleet_free run in the main thread; the
 * other calls from any worker thread.
 */
#ifndef MTLSGW_FLEET_H
#define MTLSGW_FLEET_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

struct fleet;
struct limits;

/* Verdicts of fleet_conn_open() and fleet_request(). */
#define FLEET_OK      0
#define FLEET_LIMITED 1 /* fleet limit reached: 429 with Retry-After */
#define FLEET_BLOCKED 2 /* on the block list: 403, then close */

/*
 * Set up the fleet CFG's [fleet] asks for and start its sync thread,
 * after one first sync (so that blocks are known before serving) bounded
 * by the Redis timeout; an unreachable Redis is logged and retried, never
 * fatal. *OUT is NULL when CFG has no [fleet]. LIM (may be NULL) gives
 * the bytes per identity (BPF mode only: fleet_bandwidth_out and the
 * fleet's byte totals need it); it must outlive the fleet. 0, or -1 with
 * the reason logged (unreadable password_file, no memory).
 */
int fleet_new(const struct config *cfg, struct limits *lim, struct fleet **out);

/*
 * A connection of the verified identity FP (64 lowercase hex digits) on
 * TCP_FD, after the local limits admitted it. FLEET_OK: counted, call
 * fleet_conn_close() before closing TCP_FD. Otherwise not counted;
 * *RETRY_AFTER_S is set for FLEET_LIMITED.
 */
int fleet_conn_open(struct fleet *f, int tcp_fd, const char *fp,
		    unsigned *retry_after_s);

/* One HTTP request on a connection fleet_conn_open() counted. */
int fleet_request(struct fleet *f, int tcp_fd, unsigned *retry_after_s);

/* Whether the identity of the connection on TCP_FD is blocked now. */
bool fleet_fd_blocked(struct fleet *f, int tcp_fd);

/* The connection on TCP_FD is about to be closed. */
void fleet_conn_close(struct fleet *f, int tcp_fd);

/* SIGHUP: new fleet limits and fleet_fail. [fleet] itself needs a
 * restart (logged when it changed). */
void fleet_reload(struct fleet *f, const struct config *cfg);

/* Prometheus lines for /metrics (process-wide; nothing if no fleet). */
void fleet_metrics_write(FILE *out);

/* Stop the sync thread and release everything. NULL is a no-op. */
void fleet_free(struct fleet *f);

#endif

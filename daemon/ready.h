/* SPDX-License-Identifier: MIT */
/*
 * Readiness for load balancers: a process-wide set of reasons not to take
 * new traffic. A location with `ready = yes` answers 200 while the set is
 * empty and 503 naming the reasons otherwise; HAProxy's `option httpchk`
 * on that path takes the gateway out of rotation before it stops.
 *
 * The `ready = yes` handler lives in http.c. Any module may hold a reason (one
 * bit each, set and cleared with atomic ops from any thread, no lock): main.c
 * sets READY_DRAINING on SIGTERM; a fleet module can set READY_FLEET while the
 * fleet is required and its store is unreachable, and clear it when it is back.
 */
#ifndef MTLSGW_READY_H
#define MTLSGW_READY_H

#include <stdbool.h>
#include <stddef.h>

enum ready_reason {
	READY_DRAINING = 1u << 0, /* SIGTERM: drain_delay, then drain */
	READY_FLEET = 1u << 1,	  /* fleet required, its store unreachable */
};

/* Hold (ON) or drop REASON; idempotent. */
void ready_set_blocker(enum ready_reason reason, bool on);
/* The reasons held now; 0 = ready. */
unsigned ready_blockers(void);

/* "not ready: REASONS\n" for MASK, the body of a `ready = yes` 503. */
void ready_describe(unsigned mask, char *buf, size_t len);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Process-wide counters, rendered in the Prometheus text format on a
 * location with `metrics = yes`. Increments are relaxed atomics: a
 * counter is one cache line touched per event, never a lock.
 */
#ifndef MTLSGW_METRICS_H
#define MTLSGW_METRICS_H

#include <stddef.h>
#include <stdio.h>

enum metrics_counter {
	METRICS_HANDSHAKES_OK,
	METRICS_HANDSHAKES_FAILED,
	METRICS_HANDSHAKES_TIMEOUT,
	METRICS_CONNS_KTLS,
	METRICS_CONNS_USERSPACE,
	METRICS_CONNS_REFUSED_MAX,	    /* max_connections */
	METRICS_CONNS_REFUSED_LIMITS,	    /* per-identity connection limits */
	METRICS_CONNS_REFUSED_LIMITS_STATE, /* no limiter state to be had */
	METRICS_REQUESTS_LIMITED,	    /* per-identity request rate: 429 */
	METRICS_REQUESTS_1XX,
	METRICS_REQUESTS_2XX,
	METRICS_REQUESTS_3XX,
	METRICS_REQUESTS_4XX,
	METRICS_REQUESTS_5XX,
	METRICS_RESPONSE_BYTES,
	METRICS_CONNS_REFUSED_PROXY_FROM, /* source not in proxy_from */
	METRICS_KTLS_KEY_UPDATE_CLOSES,	  /* TLS 1.3 KeyUpdate on kTLS RX */
	/* Revocation (ocsp.c, crl.c) */
	METRICS_OCSP_REQUESTS,	 /* requests sent to a responder */
	METRICS_OCSP_CACHE_HITS, /* answered from the worker's cache */
	METRICS_OCSP_COALESCED,	 /* joined a request already under way */
	METRICS_OCSP_GOOD,	 /* responses, by certificate status */
	METRICS_OCSP_REVOKED,
	METRICS_OCSP_UNKNOWN,
	METRICS_OCSP_ERRORS,	      /* no usable answer: refused, bad, ... */
	METRICS_OCSP_TIMEOUTS,	      /* no answer within ocsp_timeout */
	METRICS_OCSP_LATENCY_MS,      /* sum over answered requests */
	METRICS_OCSP_FAIL_OPEN,	      /* unavailable, let through (open) */
	METRICS_REFUSED_REVOKED_OCSP, /* handshakes refused, by reason */
	METRICS_REFUSED_REVOKED_CRL,
	METRICS_REFUSED_OCSP_UNAVAILABLE,
	METRICS_CRL_RELOAD_OK,
	METRICS_CRL_RELOAD_FAILED,
	METRICS_N_COUNTERS
};

void metrics_add(enum metrics_counter c, unsigned long long n);
static inline void metrics_inc(enum metrics_counter c)
{
	metrics_add(c, 1);
}
/* Count a connection that fell back to the relay, by reason (a static
 * string from ktls.c or worker.c). */
void metrics_fallback(const char *reason);
void metrics_count_status(unsigned status);
/* Gauges set at start-up. */
void metrics_set_info(int ktls_available, const char *limits_mode,
		      unsigned workers);

/* A module above this one adds its lines to /metrics by registering a
 * writer (NULL to remove it); called from any worker thread. */
typedef void (*metrics_writer)(FILE *out);
void metrics_set_extra(metrics_writer w);

/* Render everything plus ACTIVE (open connections) into a malloc'd buffer
 * (*len bytes); NULL on allocation failure. */
char *metrics_render(unsigned long long active, size_t *len);

#endif

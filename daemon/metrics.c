// SPDX-License-Identifier: MIT
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "ready.h"

#define METRICS_MAX_REASONS 16
#define METRICS_BUF_SIZE    16384

static _Atomic unsigned long long metrics_counters[METRICS_N_COUNTERS];

/* Fallback reasons: few, static strings, registered once each. */
static struct {
	const char *_Atomic reason;
	_Atomic unsigned long long count;
} metrics_reasons[METRICS_MAX_REASONS];
static pthread_mutex_t metrics_reason_lock = PTHREAD_MUTEX_INITIALIZER;

static int metrics_ktls_available;
static const char *metrics_limits_mode = "off";
static unsigned metrics_workers;

/* More lines from a higher layer (fleet.c), which registers itself. */
static _Atomic(metrics_writer) metrics_extra;

void metrics_set_extra(metrics_writer w)
{
	atomic_store(&metrics_extra, w);
}

void metrics_add(enum metrics_counter c, unsigned long long n)
{
	atomic_fetch_add_explicit(&metrics_counters[c], n,
				  memory_order_relaxed);
}

void metrics_fallback(const char *reason)
{
	size_t i;

	if (!reason)
		reason = "unknown";
	for (i = 0; i < METRICS_MAX_REASONS; i++) {
		const char *r = atomic_load(&metrics_reasons[i].reason);

		if (!r)
			break;
		if (r == reason || strcmp(r, reason) == 0)
			goto count;
	}
	pthread_mutex_lock(&metrics_reason_lock);
	for (i = 0; i < METRICS_MAX_REASONS; i++) {
		const char *r = atomic_load(&metrics_reasons[i].reason);

		if (!r) {
			atomic_store(&metrics_reasons[i].reason, reason);
			break;
		}
		if (strcmp(r, reason) == 0)
			break;
	}
	pthread_mutex_unlock(&metrics_reason_lock);
	if (i == METRICS_MAX_REASONS)
		i = METRICS_MAX_REASONS - 1; /* full: lump into the last */
count:
	atomic_fetch_add_explicit(&metrics_reasons[i].count, 1,
				  memory_order_relaxed);
}

void metrics_count_status(unsigned status)
{
	if (status >= 100 && status < 600)
		metrics_inc(METRICS_REQUESTS_1XX + (status / 100 - 1));
}

void metrics_set_info(int ktls_available, const char *limits_mode,
		      unsigned workers)
{
	metrics_ktls_available = ktls_available;
	metrics_limits_mode = limits_mode ? limits_mode : "off";
	metrics_workers = workers;
}

static unsigned long long metrics_get(enum metrics_counter c)
{
	return atomic_load_explicit(&metrics_counters[c], memory_order_relaxed);
}

static void metrics_render_revocation(FILE *f)
{
	unsigned long long ms = metrics_get(METRICS_OCSP_LATENCY_MS);
	unsigned long long answered = metrics_get(METRICS_OCSP_GOOD) +
				      metrics_get(METRICS_OCSP_REVOKED) +
				      metrics_get(METRICS_OCSP_UNKNOWN);

	fprintf(f,
		"# TYPE mtlsgw_ocsp_requests_total counter\n"
		"mtlsgw_ocsp_requests_total %llu\n"
		"# TYPE mtlsgw_ocsp_cache_hits_total counter\n"
		"mtlsgw_ocsp_cache_hits_total %llu\n"
		"# TYPE mtlsgw_ocsp_coalesced_total counter\n"
		"mtlsgw_ocsp_coalesced_total %llu\n"
		"# TYPE mtlsgw_ocsp_responses_total counter\n"
		"mtlsgw_ocsp_responses_total{status=\"good\"} %llu\n"
		"mtlsgw_ocsp_responses_total{status=\"revoked\"} %llu\n"
		"mtlsgw_ocsp_responses_total{status=\"unknown\"} %llu\n"
		"# TYPE mtlsgw_ocsp_failures_total counter\n"
		"mtlsgw_ocsp_failures_total{reason=\"error\"} %llu\n"
		"mtlsgw_ocsp_failures_total{reason=\"timeout\"} %llu\n"
		"# TYPE mtlsgw_ocsp_fail_open_total counter\n"
		"mtlsgw_ocsp_fail_open_total %llu\n"
		"# TYPE mtlsgw_ocsp_response_seconds summary\n"
		"mtlsgw_ocsp_response_seconds_sum %llu.%03llu\n"
		"mtlsgw_ocsp_response_seconds_count %llu\n",
		metrics_get(METRICS_OCSP_REQUESTS),
		metrics_get(METRICS_OCSP_CACHE_HITS),
		metrics_get(METRICS_OCSP_COALESCED),
		metrics_get(METRICS_OCSP_GOOD),
		metrics_get(METRICS_OCSP_REVOKED),
		metrics_get(METRICS_OCSP_UNKNOWN),
		metrics_get(METRICS_OCSP_ERRORS),
		metrics_get(METRICS_OCSP_TIMEOUTS),
		metrics_get(METRICS_OCSP_FAIL_OPEN), ms / 1000, ms % 1000,
		answered);
	fprintf(f,
		"# TYPE mtlsgw_handshakes_refused_total counter\n"
		"mtlsgw_handshakes_refused_total{reason=\"revoked (ocsp)\"} "
		"%llu\n"
		"mtlsgw_handshakes_refused_total{reason=\"revoked (crl)\"} "
		"%llu\n"
		"mtlsgw_handshakes_refused_total{reason=\"ocsp unavailable\"} "
		"%llu\n"
		"# TYPE mtlsgw_crl_reloads_total counter\n"
		"mtlsgw_crl_reloads_total{result=\"ok\"} %llu\n"
		"mtlsgw_crl_reloads_total{result=\"failed\"} %llu\n",
		metrics_get(METRICS_REFUSED_REVOKED_OCSP),
		metrics_get(METRICS_REFUSED_REVOKED_CRL),
		metrics_get(METRICS_REFUSED_OCSP_UNAVAILABLE),
		metrics_get(METRICS_CRL_RELOAD_OK),
		metrics_get(METRICS_CRL_RELOAD_FAILED));
}

char *metrics_render(unsigned long long active, size_t *len)
{
	char *buf = malloc(METRICS_BUF_SIZE);
	metrics_writer extra;
	FILE *f;
	size_t i;

	if (!buf)
		return NULL;
	f = fmemopen(buf, METRICS_BUF_SIZE, "w");
	if (!f) {
		free(buf);
		return NULL;
	}
	fprintf(f,
		"# TYPE mtlsgw_info gauge\n"
		"mtlsgw_info{ktls=\"%s\",limits=\"%s\"} 1\n"
		"# TYPE mtlsgw_workers gauge\nmtlsgw_workers %u\n"
		"# TYPE mtlsgw_connections_active gauge\n"
		"mtlsgw_connections_active %llu\n",
		metrics_ktls_available ? "available" : "unavailable",
		metrics_limits_mode, metrics_workers, active);
	fprintf(f,
		"# TYPE mtlsgw_handshakes_total counter\n"
		"mtlsgw_handshakes_total{result=\"ok\"} %llu\n"
		"mtlsgw_handshakes_total{result=\"failed\"} %llu\n"
		"mtlsgw_handshakes_total{result=\"timeout\"} %llu\n",
		metrics_get(METRICS_HANDSHAKES_OK),
		metrics_get(METRICS_HANDSHAKES_FAILED),
		metrics_get(METRICS_HANDSHAKES_TIMEOUT));
	fprintf(f,
		"# TYPE mtlsgw_connections_total counter\n"
		"mtlsgw_connections_total{data_path=\"ktls\"} %llu\n"
		"mtlsgw_connections_total{data_path=\"userspace\"} %llu\n"
		"# TYPE mtlsgw_connections_refused_total counter\n"
		"mtlsgw_connections_refused_total{reason=\"max_connections\"} "
		"%llu\n"
		"mtlsgw_connections_refused_total{reason=\"limits\"} %llu\n"
		"mtlsgw_connections_refused_total{reason=\"proxy_from\"} "
		"%llu\n"
		"mtlsgw_connections_refused_total{reason=\"limits_state\"} "
		"%llu\n",
		metrics_get(METRICS_CONNS_KTLS),
		metrics_get(METRICS_CONNS_USERSPACE),
		metrics_get(METRICS_CONNS_REFUSED_MAX),
		metrics_get(METRICS_CONNS_REFUSED_LIMITS),
		metrics_get(METRICS_CONNS_REFUSED_PROXY_FROM),
		metrics_get(METRICS_CONNS_REFUSED_LIMITS_STATE));
	fprintf(f,
		"# TYPE mtlsgw_ktls_key_update_closes_total counter\n"
		"mtlsgw_ktls_key_update_closes_total %llu\n",
		metrics_get(METRICS_KTLS_KEY_UPDATE_CLOSES));
	fprintf(f, "# TYPE mtlsgw_userspace_fallback_total counter\n");
	for (i = 0; i < METRICS_MAX_REASONS; i++) {
		const char *r = atomic_load(&metrics_reasons[i].reason);

		if (!r)
			break;
		fprintf(f,
			"mtlsgw_userspace_fallback_total{reason=\"%s\"} "
			"%llu\n",
			r, atomic_load(&metrics_reasons[i].count));
	}
	fprintf(f, "# TYPE mtlsgw_requests_total counter\n");
	for (i = 0; i < 5; i++)
		fprintf(f, "mtlsgw_requests_total{code=\"%zuxx\"} %llu\n",
			i + 1, metrics_get(METRICS_REQUESTS_1XX + i));
	fprintf(f,
		"# TYPE mtlsgw_requests_limited_total counter\n"
		"mtlsgw_requests_limited_total %llu\n"
		"# TYPE mtlsgw_response_body_bytes_total counter\n"
		"mtlsgw_response_body_bytes_total %llu\n",
		metrics_get(METRICS_REQUESTS_LIMITED),
		metrics_get(METRICS_RESPONSE_BYTES));
	fprintf(f, "# TYPE mtlsgw_ready gauge\nmtlsgw_ready %d\n",
		ready_blockers() == 0);
	metrics_render_revocation(f);
	extra = atomic_load(&metrics_extra);
	if (extra)
		extra(f);
	fflush(f);
	*len = (size_t)ftell(f);
	fclose(f);
	return buf;
}

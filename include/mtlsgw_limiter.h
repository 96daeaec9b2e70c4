/* SPDX-License-Identifier: MIT */
/*
 * Token-bucket math, the one implementation compiled into both the BPF
 * programs (bpf/mtlsgw.bpf.c, where it runs under the bucket's spin lock,
 * so: no calls, no loops, no floating point) and the userspace fallback
 * (daemon/limits.c). Include mtlsgw_abi.h first.
 *
 * A bucket holds credit in MTLSGW_LIMITER_UNIT per token, so that
 * rate (tokens/s) * elapsed (ns) is the exact credit earned, with no
 * division and no rounding on the hot path. Time is CLOCK_MONOTONIC in
 * nanoseconds (bpf_ktime_get_ns() on the kernel side). A bucket never
 * used (last_ns == 0) starts full.
 */
#ifndef MTLSGW_LIMITER_H
#define MTLSGW_LIMITER_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define MTLSGW_LIMITER_UNIT 1000000000LL /* credit per token */
/* Largest burst in tokens: credit, a debt of half of it and the room to
 * refill all fit in a signed 64-bit value. */
#define MTLSGW_LIMITER_MAX_BURST 4000000000ULL
#define MTLSGW_LIMITER_MAX_COST	 (1ULL << 26) /* tokens charged at once */

/*
 * Bandwidth buckets have no configured burst: a quarter second of the
 * rate, at least MTLSGW_BW_MIN_BURST so that one 64 KiB GSO packet always
 * fits. Past the burst, packets still pass but carry a congestion
 * notification until the debt reaches half the burst; then they are
 * dropped (egress: drop with congestion notification, so TCP backs off
 * and retransmits instead of failing).
 */
#define MTLSGW_BW_BURST_DIV 4
#define MTLSGW_BW_MIN_BURST (256 * 1024)

/* Retry-After when max_conns refuses: a slot frees at an unknown time. */
#define MTLSGW_RETRY_AFTER_CONNS 1

/* limiter_meter() verdicts. */
#define MTLSGW_METER_PASS 0
#define MTLSGW_METER_MARK 1 /* pass, with congestion notification */
#define MTLSGW_METER_DROP 2

/* Effective burst in tokens for RATE and configured BURST (0 = 1 s). */
static __always_inline __u64 limiter_burst(__u64 rate, __u64 burst)
{
	if (burst == 0)
		burst = rate;
	if (burst == 0)
		burst = 1;
	if (burst > MTLSGW_LIMITER_MAX_BURST)
		burst = MTLSGW_LIMITER_MAX_BURST;
	return burst;
}

/* Burst in bytes of a bandwidth bucket of RATE bytes/s. */
static __always_inline __u64 limiter_bw_burst(__u64 rate)
{
	__u64 burst = rate / MTLSGW_BW_BURST_DIV;

	if (burst < MTLSGW_BW_MIN_BURST)
		burst = MTLSGW_BW_MIN_BURST;
	return limiter_burst(rate, burst);
}

/* Add the credit earned since B->last_ns, capped at BURST tokens. */
static __always_inline void limiter_refill(struct mtlsgw_bucket *b, __u64 rate,
					   __u64 burst, __u64 now)
{
	__s64 cap = (__s64)burst * MTLSGW_LIMITER_UNIT;
	__s64 room;
	__u64 dt;

	if (b->last_ns == 0) {
		b->credit = cap;
		b->last_ns = now;
		return;
	}
	/* Another CPU may have charged with a later clock reading. */
	if (now > b->last_ns) {
		dt = now - b->last_ns;
		room = cap - b->credit;
		if (room <= 0 || dt > (__u64)room / rate)
			b->credit = cap;
		else
			b->credit += (__s64)(rate * dt);
		b->last_ns = now;
	}
	/* The burst may have been lowered since (bpftool map update). */
	if (b->credit > cap)
		b->credit = cap;
}

/*
 * Take COST tokens if the bucket holds them: 1 if taken, 0 if refused
 * (then nothing is taken). RATE 0 means unlimited.
 */
static __always_inline int limiter_take(struct mtlsgw_bucket *b, __u64 rate,
					__u64 burst, __u64 cost, __u64 now)
{
	__s64 need;

	if (rate == 0)
		return 1;
	burst = limiter_burst(rate, burst);
	if (cost > burst)
		return 0;
	limiter_refill(b, rate, burst, now);
	need = (__s64)cost * MTLSGW_LIMITER_UNIT;
	if (b->credit < need)
		return 0;
	b->credit -= need;
	return 1;
}

/*
 * Nanoseconds until limiter_take() of COST tokens would succeed, without
 * changing the bucket. 0 if it would now; ~0 if it never can (COST above
 * the burst).
 */
static __always_inline __u64 limiter_wait_ns(const struct mtlsgw_bucket *b,
					     __u64 rate, __u64 burst,
					     __u64 cost, __u64 now)
{
	struct mtlsgw_bucket copy = *b;
	__s64 need;

	if (rate == 0)
		return 0;
	burst = limiter_burst(rate, burst);
	if (cost > burst)
		return ~0ULL;
	limiter_refill(&copy, rate, burst, now);
	need = (__s64)cost * MTLSGW_LIMITER_UNIT;
	if (copy.credit >= need)
		return 0;
	return ((__u64)(need - copy.credit) + rate - 1) / rate;
}

/*
 * Meter COST bytes against a bandwidth bucket of RATE bytes/s: returns a
 * MTLSGW_METER_* verdict; bytes that pass are charged, dropped ones not.
 * RATE 0 means unlimited.
 */
static __always_inline int limiter_meter(struct mtlsgw_bucket *b, __u64 rate,
					 __u64 cost, __u64 now)
{
	__u64 burst;
	__s64 debt;

	if (rate == 0)
		return MTLSGW_METER_PASS;
	burst = limiter_bw_burst(rate);
	if (cost > MTLSGW_LIMITER_MAX_COST)
		cost = MTLSGW_LIMITER_MAX_COST;
	limiter_refill(b, rate, burst, now);
	debt = (__s64)(burst / 2) * MTLSGW_LIMITER_UNIT;
	if (b->credit >= 0) {
		b->credit -= (__s64)cost * MTLSGW_LIMITER_UNIT;
		return MTLSGW_METER_PASS;
	}
	if (b->credit > -debt) {
		b->credit -= (__s64)cost * MTLSGW_LIMITER_UNIT;
		return MTLSGW_METER_MARK;
	}
	return MTLSGW_METER_DROP;
}

/* 1 if bucket B was never used or not touched for IDLE_NS. */
static __always_inline int limiter_bucket_idle(const struct mtlsgw_bucket *b,
					       __u64 now, __u64 idle_ns)
{
	if (b->last_ns == 0)
		return 1;
	return now >= b->last_ns && now - b->last_ns >= idle_ns;
}

/*
 * 1 if the limiter state S holds nothing that a fresh one would not, so
 * that removing it (cert_buckets GC) gives no client anything: no open
 * connection, no bucket touched for IDLE_NS, and every bucket full again
 * under the limits LIM (NULL: no limits).
 */
static __always_inline int limiter_state_idle(const struct mtlsgw_state *s,
					      const struct mtlsgw_limit *lim,
					      __u64 now, __u64 idle_ns)
{
	__u64 bw;

	if (s->active)
		return 0;
	if (!limiter_bucket_idle(&s->conn, now, idle_ns) ||
	    !limiter_bucket_idle(&s->req, now, idle_ns) ||
	    !limiter_bucket_idle(&s->bw_in, now, idle_ns) ||
	    !limiter_bucket_idle(&s->bw_out, now, idle_ns))
		return 0;
	if (!lim)
		return 1;
	if (limiter_wait_ns(&s->conn, lim->conn_rate, lim->conn_burst,
			    limiter_burst(lim->conn_rate, lim->conn_burst),
			    now))
		return 0;
	if (limiter_wait_ns(&s->req, lim->req_rate, lim->req_burst,
			    limiter_burst(lim->req_rate, lim->req_burst), now))
		return 0;
	bw = limiter_bw_burst(lim->bandwidth_in);
	if (limiter_wait_ns(&s->bw_in, lim->bandwidth_in, bw, bw, now))
		return 0;
	bw = limiter_bw_burst(lim->bandwidth_out);
	if (limiter_wait_ns(&s->bw_out, lim->bandwidth_out, bw, bw, now))
		return 0;
	return 1;
}

#endif

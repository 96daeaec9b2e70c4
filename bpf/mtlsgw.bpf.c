// SPDX-License-Identifier: MIT OR GPL-2.0-only
/*
 * Per-certificate accounting and limits, in the kernel.
 *
 * The daemon attaches these programs to its own cgroup v2, so they see
 * only the gateway's sockets. After the TLS handshake the daemon calls
 * setsockopt(MTLSGW_SOL, MTLSGW_SO_BIND) with the client's identity:
 * setsockopt_bind_identity admits or refuses the connection (EPERM) and
 * tags the socket with the identity (conn_identity). From then on every
 * packet (skb_ingress_meter, skb_egress_meter) and every request
 * (MTLSGW_SO_REQUEST) is charged to that identity, and sock_release_count
 * closes the books when the socket goes away, even if the daemon was
 * killed. Sockets never bound are left alone.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "mtlsgw_abi.h"
#include "mtlsgw_limiter.h"

#define EPERM	    1
#define ENOENT	    2
#define EAGAIN	    11
#define ENOMEM	    12
#define EBUSY	    16
#define EINVAL	    22
#define ENOSPC	    28
#define ENOPROTOOPT 92

#define IPPROTO_TCP_ 6
#define SOCKOPT_PAGE 4096

#ifdef MTLSGW_BPF_DEBUG
#define dbg(fmt, ...) bpf_printk(fmt, ##__VA_ARGS__)
#else
#define dbg(fmt, ...)                                                          \
	do {                                                                   \
	} while (0)
#endif

/* Not in libbpf 1.1's helper list; the kernel has it since 6.1. */
static __u64 (*mtlsgw_ktime_get_tai_ns)(void) = (void *)
	BPF_FUNC_ktime_get_tai_ns;

/* key identity, value counters (struct mtlsgw_stats); read by operators
 * (bpftool, mtlsgw-stat); written by every program here. LRU: a flood of
 * anonymous addresses evicts idle identities instead of failing binds. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MTLSGW_MAX_IDENTITIES);
	__type(key, struct mtlsgw_id);
	__type(value, struct mtlsgw_stats);
} cert_stats SEC(".maps");

/* key "default" | "anonymous" | identity, value limits (struct
 * mtlsgw_limit; per second, bytes); written by the daemon from the config
 * and by operators (bpftool map update); read here on every decision. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MTLSGW_MAX_LIMITS);
	__type(key, struct mtlsgw_id);
	__type(value, struct mtlsgw_limit);
} cert_limits SEC(".maps");

/* key identity, value what enforcement needs (struct mtlsgw_state:
 * active count, token buckets in ns-scaled credit, owner key); written
 * here under its lock; a plain hash, never evicted behind our back: only
 * reclaim_identity removes entries (daemon GC when full); the daemon
 * reads it to compute Retry-After. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MTLSGW_MAX_IDENTITIES);
	__type(key, struct mtlsgw_id);
	__type(value, struct mtlsgw_state);
} cert_buckets SEC(".maps");

/* socket storage, value the connection's identity (struct mtlsgw_conn);
 * written once at admission; freed with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct mtlsgw_conn);
} conn_identity SEC(".maps");

const struct mtlsgw_id mtlsgw_key_default = {MTLSGW_KEY_DEFAULT};
const struct mtlsgw_id mtlsgw_key_anonymous = {MTLSGW_KEY_ANONYMOUS};

/* The identity's own entry, else "anonymous" for clients without a
 * certificate, else "default"; NULL means no limits at all. */
static __always_inline struct mtlsgw_limit *
limits_for(const struct mtlsgw_id *id, __u64 conn_flags)
{
	struct mtlsgw_limit *lim;

	lim = bpf_map_lookup_elem(&cert_limits, id);
	if (lim)
		return lim;
	if (conn_flags & MTLSGW_CONN_ANONYMOUS) {
		lim = bpf_map_lookup_elem(&cert_limits, &mtlsgw_key_anonymous);
		if (lim)
			return lim;
	}
	return bpf_map_lookup_elem(&cert_limits, &mtlsgw_key_default);
}

/* An identity key, 8-aligned so that it compares as nine words. */
union id_words {
	struct mtlsgw_id id;
	__u64 w[MTLSGW_ID_LEN / 8];
};

/* The identity's limiter state, created if missing; NULL when cert_buckets
 * is full (the caller refuses: no state, no admission). */
static __always_inline struct mtlsgw_state *state_get(const union id_words *key,
						      __u32 flags)
{
	struct mtlsgw_state init = {};
	struct mtlsgw_state *st;

	st = bpf_map_lookup_elem(&cert_buckets, &key->id);
	if (st)
		return st;
	__builtin_memcpy(&init.owner, &key->id, sizeof(init.owner));
	init.flags = flags;
	/* Losing a race to another CPU (EEXIST) is fine: look it up again. */
	bpf_map_update_elem(&cert_buckets, &key->id, &init, BPF_NOEXIST);
	return bpf_map_lookup_elem(&cert_buckets, &key->id);
}

/* Under ST's lock: 1 if ST is still KEY's live entry (not reclaimed, its
 * memory not reused for another key since it was looked up). */
static __always_inline int state_owned(const struct mtlsgw_state *st,
				       const union id_words *key)
{
	const __u64 *o = (const __u64 *)&st->owner;
	__u64 diff = 0;
	int i;

	if (st->flags & MTLSGW_STATE_DEAD)
		return 0;
#pragma unroll
	for (i = 0; i < MTLSGW_ID_LEN / 8; i++)
		diff |= o[i] ^ key->w[i];
	return diff == 0;
}

static __always_inline __u64 now_seconds(void)
{
	return mtlsgw_ktime_get_tai_ns() / 1000000000ULL;
}

/* The identity's counters, created with BIND's names if missing. */
static __always_inline struct mtlsgw_stats *
stats_get(const struct mtlsgw_id *id, const struct mtlsgw_bind *bind)
{
	struct mtlsgw_stats init = {};
	struct mtlsgw_stats *st;

	st = bpf_map_lookup_elem(&cert_stats, id);
	if (st || !bind)
		return st;
	if (!(bind->flags & MTLSGW_CONN_ANONYMOUS))
		__builtin_memcpy(init.fingerprint, bind->id.name,
				 sizeof(init.fingerprint));
	__builtin_memcpy(init.subject, bind->subject, sizeof(init.subject));
	init.fingerprint[sizeof(init.fingerprint) - 1] = 0;
	init.subject[sizeof(init.subject) - 1] = 0;
	bpf_map_update_elem(&cert_stats, id, &init, BPF_NOEXIST);
	return bpf_map_lookup_elem(&cert_stats, id);
}

static __always_inline int sockopt_fail(struct bpf_sockopt *ctx, int err)
{
	bpf_set_retval(-err);
	return 0;
}

/*
 * MTLSGW_SO_BIND: admission. max_conns first, then the connection rate;
 * a refused connection is counted and not tagged. Never admits without
 * state: ENOSPC when cert_buckets is full (the daemon reclaims idle
 * entries and retries, else refuses), EAGAIN when the entry was reclaimed
 * between lookup and lock (the daemon retries).
 */
static __always_inline int bind_identity(struct bpf_sockopt *ctx)
{
	struct mtlsgw_bind *bind = (void *)(long)ctx->optval;
	void *end = (void *)(long)ctx->optval_end;
	struct mtlsgw_conn *conn;
	struct mtlsgw_stats *stats;
	struct mtlsgw_state *state;
	struct mtlsgw_limit *lim;
	union id_words key;
	__u64 max_conns = 0, rate = 0, burst = 0, now;
	__u32 sflags = 0;
	int refused = 0, stale = 0;

	if ((void *)(bind + 1) > end || ctx->optlen < (int)sizeof(*bind))
		return sockopt_fail(ctx, EINVAL);
	if (!ctx->sk)
		return sockopt_fail(ctx, EINVAL);
	__builtin_memcpy(&key.id, &bind->id, sizeof(key.id));
	key.id.name[sizeof(key.id.name) - 1] = 0;

	conn = bpf_sk_storage_get(&conn_identity, ctx->sk, 0,
				  BPF_SK_STORAGE_GET_F_CREATE);
	if (!conn)
		return sockopt_fail(ctx, ENOMEM);
	ctx->optlen = -1; /* handled here: the kernel must not see it */
	if (conn->flags & MTLSGW_CONN_BOUND)
		return 1; /* bound already: counted once */

	lim = limits_for(&key.id, bind->flags);
	if (lim) {
		max_conns = lim->max_conns;
		rate = lim->conn_rate;
		burst = lim->conn_burst;
	}
	if (bind->flags & MTLSGW_CONN_ANONYMOUS)
		sflags = MTLSGW_STATE_ANONYMOUS;
	state = state_get(&key, sflags);
	if (!state)
		return sockopt_fail(ctx, ENOSPC);
	/* Counters are for operators: an LRU may lack them, enforcement
	 * goes on without. */
	stats = stats_get(&key.id, bind);

	now = bpf_ktime_get_ns();
	bpf_spin_lock(&state->lock);
	if (!state_owned(state, &key)) {
		stale = 1;
	} else if (max_conns && state->active >= max_conns) {
		refused = 1;
	} else if (!limiter_take(&state->conn, rate, burst, 1, now)) {
		refused = 1;
	} else {
		state->active++;
	}
	/* Mirrored under the lock: exact again as soon as the identity
	 * binds, even after the LRU evicted and recreated its counters. */
	if (!stale && stats)
		stats->conns_active = state->active;
	bpf_spin_unlock(&state->lock);
	if (stale)
		return sockopt_fail(ctx, EAGAIN);

	if (stats)
		stats->last_seen = now_seconds();
	if (refused) {
		if (stats)
			__sync_fetch_and_add(&stats->conns_rejected, 1);
		dbg("mtlsgw: refused %s", key.id.name);
		return 0; /* EPERM */
	}
	__builtin_memcpy(&conn->id, &key.id, sizeof(key.id));
	conn->flags = MTLSGW_CONN_BOUND | (bind->flags & MTLSGW_CONN_ANONYMOUS);
	if (stats)
		__sync_fetch_and_add(&stats->conns_total, 1);
	return 1;
}

/* MTLSGW_SO_REQUEST: charge requests to the socket's identity. The
 * entry exists: it has an open connection (this one), so no GC took it. */
static __always_inline int charge_request(struct bpf_sockopt *ctx)
{
	struct mtlsgw_request *req = (void *)(long)ctx->optval;
	void *end = (void *)(long)ctx->optval_end;
	struct mtlsgw_conn *conn;
	struct mtlsgw_stats *stats;
	struct mtlsgw_state *state;
	struct mtlsgw_limit *lim;
	__u64 rate = 0, burst = 0, count, now;
	int ok = 1;

	if ((void *)(req + 1) > end || ctx->optlen < (int)sizeof(*req))
		return sockopt_fail(ctx, EINVAL);
	count = req->count;
	if (count == 0 || count > 1024)
		return sockopt_fail(ctx, EINVAL);
	if (!ctx->sk)
		return sockopt_fail(ctx, EINVAL);
	conn = bpf_sk_storage_get(&conn_identity, ctx->sk, 0, 0);
	if (!conn || !(conn->flags & MTLSGW_CONN_BOUND))
		return sockopt_fail(ctx, ENOENT);
	ctx->optlen = -1;

	lim = limits_for(&conn->id, conn->flags);
	if (lim) {
		rate = lim->req_rate;
		burst = lim->req_burst;
	}
	stats = bpf_map_lookup_elem(&cert_stats, &conn->id);
	if (rate) {
		state = bpf_map_lookup_elem(&cert_buckets, &conn->id);
		if (!state)
			return sockopt_fail(ctx, ENOSPC);
		now = bpf_ktime_get_ns();
		bpf_spin_lock(&state->lock);
		ok = limiter_take(&state->req, rate, burst, count, now);
		bpf_spin_unlock(&state->lock);
	}
	if (stats) {
		stats->last_seen = now_seconds();
		if (ok)
			__sync_fetch_and_add(&stats->requests, count);
		else
			__sync_fetch_and_add(&stats->requests_rejected, count);
	}
	return ok; /* 0: EPERM */
}

/*
 * MTLSGW_SO_RECLAIM (daemon GC, cert_buckets full): remove the entry if
 * it is idle (limiter_state_idle). The decision and the DEAD mark are
 * taken under the entry's lock, so a connection admitted meanwhile is
 * never lost: it either got in first (then the entry is not idle) or
 * finds it DEAD and retries on a fresh one. EBUSY: not idle; ENOENT: gone.
 */
static __always_inline int reclaim_identity(struct bpf_sockopt *ctx)
{
	struct mtlsgw_reclaim *rc = (void *)(long)ctx->optval;
	void *end = (void *)(long)ctx->optval_end;
	struct mtlsgw_state *state;
	struct mtlsgw_limit *lim;
	union id_words key;
	__u64 idle_ns, now, cflags = 0;
	int dead = 0;

	if ((void *)(rc + 1) > end || ctx->optlen < (int)sizeof(*rc))
		return sockopt_fail(ctx, EINVAL);
	__builtin_memcpy(&key.id, &rc->id, sizeof(key.id));
	key.id.name[sizeof(key.id.name) - 1] = 0;
	idle_ns = rc->idle_ns;
	ctx->optlen = -1;

	state = bpf_map_lookup_elem(&cert_buckets, &key.id);
	if (!state)
		return sockopt_fail(ctx, ENOENT);
	if (state->flags & MTLSGW_STATE_ANONYMOUS)
		cflags = MTLSGW_CONN_ANONYMOUS;
	lim = limits_for(&key.id, cflags);
	now = bpf_ktime_get_ns();
	bpf_spin_lock(&state->lock);
	if (state_owned(state, &key) &&
	    limiter_state_idle(state, lim, now, idle_ns)) {
		state->flags |= MTLSGW_STATE_DEAD;
		dead = 1;
	}
	bpf_spin_unlock(&state->lock);
	if (!dead)
		return sockopt_fail(ctx, EBUSY);
	bpf_map_delete_elem(&cert_buckets, &key.id);
	return 1;
}

SEC("cgroup/setsockopt")
int setsockopt_bind_identity(struct bpf_sockopt *ctx)
{
	if (ctx->level != MTLSGW_SOL) {
		/* The program sees at most a page of optval; optlen 0 tells
		 * the kernel to use the caller's buffer as it is. */
		if (ctx->optlen > SOCKOPT_PAGE)
			ctx->optlen = 0;
		return 1;
	}
	switch (ctx->optname) {
	case MTLSGW_SO_BIND:
		return bind_identity(ctx);
	case MTLSGW_SO_REQUEST:
		return charge_request(ctx);
	case MTLSGW_SO_RECLAIM:
		return reclaim_identity(ctx);
	default:
		return sockopt_fail(ctx, ENOPROTOOPT);
	}
}

SEC("cgroup/sock_release")
int sock_release_count(struct bpf_sock *sk)
{
	struct mtlsgw_conn *conn;
	struct mtlsgw_stats *stats;
	struct mtlsgw_state *state;
	union id_words key;

	conn = bpf_sk_storage_get(&conn_identity, sk, 0, 0);
	if (!conn || !(conn->flags & MTLSGW_CONN_BOUND))
		return 1;
	conn->flags &= ~MTLSGW_CONN_BOUND;
	__builtin_memcpy(&key.id, &conn->id, sizeof(key.id));
	stats = bpf_map_lookup_elem(&cert_stats, &key.id);
	if (stats)
		stats->last_seen = now_seconds();
	/* An entry with an open connection is never reclaimed: it is there,
	 * and it is ours. */
	state = bpf_map_lookup_elem(&cert_buckets, &key.id);
	if (!state)
		return 1;
	bpf_spin_lock(&state->lock);
	if (state_owned(state, &key) && state->active > 0) {
		state->active--;
		if (stats)
			stats->conns_active = state->active;
	}
	bpf_spin_unlock(&state->lock);
	return 1;
}

/* Bytes of TCP payload in the packet at the start of SKB (an IP header):
 * pure ACKs are counted but never dropped, so limiting one direction does
 * not starve the other. */
static __always_inline int skb_has_payload(struct __sk_buff *skb)
{
	__u8 b[2];
	__u32 ip_hlen, tcp_off;

	if (bpf_skb_load_bytes(skb, 0, b, 1))
		return 1;
	if ((b[0] >> 4) == 4) {
		ip_hlen = (b[0] & 0x0f) * 4;
		if (bpf_skb_load_bytes(skb, 9, &b[1], 1) ||
		    b[1] != IPPROTO_TCP_)
			return 1;
	} else if ((b[0] >> 4) == 6) {
		ip_hlen = 40;
		if (bpf_skb_load_bytes(skb, 6, &b[1], 1) ||
		    b[1] != IPPROTO_TCP_)
			return 1;
	} else {
		return 1;
	}
	tcp_off = ip_hlen + 12;
	if (bpf_skb_load_bytes(skb, tcp_off, &b[1], 1))
		return 1;
	return skb->len > ip_hlen + (b[1] >> 4) * 4;
}

static __always_inline int skb_meter(struct __sk_buff *skb, int egress)
{
	struct mtlsgw_conn *conn;
	struct mtlsgw_stats *stats;
	struct mtlsgw_state *state;
	struct mtlsgw_limit *lim;
	struct bpf_sock *sk;
	__u64 rate = 0, len = skb->len, now;
	int verdict = MTLSGW_METER_PASS;

	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	conn = bpf_sk_storage_get(&conn_identity, sk, 0, 0);
	if (!conn || !(conn->flags & MTLSGW_CONN_BOUND))
		return 1;

	lim = limits_for(&conn->id, conn->flags);
	if (lim)
		rate = egress ? lim->bandwidth_out : lim->bandwidth_in;
	if (rate && skb_has_payload(skb)) {
		state = bpf_map_lookup_elem(&cert_buckets, &conn->id);
		if (state) {
			now = bpf_ktime_get_ns();
			bpf_spin_lock(&state->lock);
			if (egress)
				verdict = limiter_meter(&state->bw_out, rate,
							len, now);
			else
				verdict = limiter_meter(&state->bw_in, rate,
							len, now);
			bpf_spin_unlock(&state->lock);
		}
	}
	if (verdict == MTLSGW_METER_DROP)
		return egress ? 2 : 0; /* egress 2: drop, congestion notified */

	stats = bpf_map_lookup_elem(&cert_stats, &conn->id);
	if (stats) {
		if (egress)
			__sync_fetch_and_add(&stats->bytes_out, len);
		else
			__sync_fetch_and_add(&stats->bytes_in, len);
	}
	if (egress && verdict == MTLSGW_METER_MARK)
		return 3; /* pass, congestion notified (TCP enters CWR) */
	return 1;
}

SEC("cgroup_skb/ingress")
int skb_ingress_meter(struct __sk_buff *skb)
{
	return skb_meter(skb, 0);
}

SEC("cgroup_skb/egress")
int skb_egress_meter(struct __sk_buff *skb)
{
	return skb_meter(skb, 1);
}

/* "Dual MIT/GPL": the kernel's name for this file's licence. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

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
#define ENOMEM	    12
#define EINVAL	    22
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

/* key identity, value limiter state (struct mtlsgw_state: active count,
 * token buckets in ns-scaled credit); written here under its lock; the
 * daemon reads it to compute Retry-After. */
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

static __always_inline struct mtlsgw_state *
state_get(const struct mtlsgw_id *id)
{
	struct mtlsgw_state zero = {};
	struct mtlsgw_state *st;

	st = bpf_map_lookup_elem(&cert_buckets, id);
	if (st)
		return st;
	/* Losing a race to another CPU (EEXIST) is fine: look it up again. */
	bpf_map_update_elem(&cert_buckets, id, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&cert_buckets, id);
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

/* MTLSGW_SO_BIND: admission. max_conns first, then the connection rate;
 * a refused connection is counted and not tagged. */
static __always_inline int bind_identity(struct bpf_sockopt *ctx)
{
	struct mtlsgw_bind *bind = (void *)(long)ctx->optval;
	void *end = (void *)(long)ctx->optval_end;
	struct mtlsgw_conn *conn;
	struct mtlsgw_stats *stats;
	struct mtlsgw_state *state;
	struct mtlsgw_limit *lim;
	struct mtlsgw_id id;
	__u64 max_conns = 0, rate = 0, burst = 0, now;
	int refused = 0;

	if ((void *)(bind + 1) > end || ctx->optlen < (int)sizeof(*bind))
		return sockopt_fail(ctx, EINVAL);
	if (!ctx->sk)
		return sockopt_fail(ctx, EINVAL);
	__builtin_memcpy(&id, &bind->id, sizeof(id));
	id.name[sizeof(id.name) - 1] = 0;

	conn = bpf_sk_storage_get(&conn_identity, ctx->sk, 0,
				  BPF_SK_STORAGE_GET_F_CREATE);
	if (!conn)
		return sockopt_fail(ctx, ENOMEM);
	ctx->optlen = -1; /* handled here: the kernel must not see it */
	if (conn->flags & MTLSGW_CONN_BOUND)
		return 1; /* bound already: counted once */

	lim = limits_for(&id, bind->flags);
	if (lim) {
		max_conns = lim->max_conns;
		rate = lim->conn_rate;
		burst = lim->conn_burst;
	}
	state = state_get(&id);
	stats = stats_get(&id, bind);
	if (!state || !stats)
		return sockopt_fail(ctx, ENOMEM);

	now = bpf_ktime_get_ns();
	bpf_spin_lock(&state->lock);
	if (max_conns && state->active >= max_conns)
		refused = 1;
	else if (!limiter_take(&state->conn, rate, burst, 1, now))
		refused = 1;
	else
		state->active++;
	bpf_spin_unlock(&state->lock);

	stats->last_seen = now_seconds();
	if (refused) {
		__sync_fetch_and_add(&stats->conns_rejected, 1);
		dbg("mtlsgw: refused %s", id.name);
		return 0; /* EPERM */
	}
	__builtin_memcpy(&conn->id, &id, sizeof(id));
	conn->flags = MTLSGW_CONN_BOUND | (bind->flags & MTLSGW_CONN_ANONYMOUS);
	__sync_fetch_and_add(&stats->conns_total, 1);
	__sync_fetch_and_add(&stats->conns_active, 1);
	return 1;
}

/* MTLSGW_SO_REQUEST: charge requests to the socket's identity. */
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
		state = state_get(&conn->id);
		if (!state)
			return sockopt_fail(ctx, ENOMEM);
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
	int was_active = 0;

	conn = bpf_sk_storage_get(&conn_identity, sk, 0, 0);
	if (!conn || !(conn->flags & MTLSGW_CONN_BOUND))
		return 1;
	conn->flags &= ~MTLSGW_CONN_BOUND;
	state = bpf_map_lookup_elem(&cert_buckets, &conn->id);
	if (state) {
		bpf_spin_lock(&state->lock);
		if (state->active > 0) {
			state->active--;
			was_active = 1;
		}
		bpf_spin_unlock(&state->lock);
	}
	stats = bpf_map_lookup_elem(&cert_stats, &conn->id);
	if (stats) {
		stats->last_seen = now_seconds();
		/* Only what was counted is uncounted: never below zero, even
		 * if either entry was evicted and recreated meanwhile. */
		if (was_active && stats->conns_active > 0)
			__sync_fetch_and_add(&stats->conns_active, -1);
	}
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

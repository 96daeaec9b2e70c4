/* SPDX-License-Identifier: MIT */
/*
 * The only header shared by the daemon (daemon/limits.c, tools/) and the
 * kernel side (bpf/mtlsgw.bpf.c): map keys and values, the private socket
 * option level, map sizes. Fixed-width fields, explicit padding, no
 * pointers. It includes nothing itself: the includer provides __u32,
 * __u64, __s64 and struct bpf_spin_lock first (vmlinux.h on the BPF side,
 * <linux/bpf.h> in userspace, which also checks the sizes below).
 *
 * Text fields are char[] so that `bpftool map dump` prints them as
 * strings; counters are __u64 so that it prints them as numbers.
 */
#ifndef MTLSGW_ABI_H
#define MTLSGW_ABI_H

/* Map sizes (entries). */
#ifndef MTLSGW_MAX_IDENTITIES
#define MTLSGW_MAX_IDENTITIES 65536 /* cert_stats, cert_buckets */
#endif
#ifndef MTLSGW_MAX_LIMITS
#define MTLSGW_MAX_LIMITS 4096 /* cert_limits entries */
#endif

/* Pinned objects live in MTLSGW_PIN_ROOT/<instance>/<name>. */
#define MTLSGW_PIN_ROOT	   "/sys/fs/bpf/mtlsgw"
#define MTLSGW_MAP_STATS   "cert_stats"
#define MTLSGW_MAP_LIMITS  "cert_limits"
#define MTLSGW_MAP_BUCKETS "cert_buckets"
#define MTLSGW_MAP_CONNS   "conn_identity"

/*
 * Private setsockopt level handled by the cgroup/setsockopt program (the
 * kernel knows no such level: without the program the call fails with
 * ENOPROTOOPT). The program answers EPERM to refuse.
 */
#define MTLSGW_SOL	  0x6d74 /* 'mt' */
#define MTLSGW_SO_BIND	  1	 /* optval: struct mtlsgw_bind; admission */
#define MTLSGW_SO_REQUEST 2 /* optval: struct mtlsgw_request; one request */
#define MTLSGW_SO_RECLAIM 3 /* optval: struct mtlsgw_reclaim; GC of one key */

/* Identity text lengths (including the terminating NUL). */
#define MTLSGW_ID_LEN	   72 /* 64 hex digits, or an address */
#define MTLSGW_SUBJECT_LEN 64 /* subject CN, truncated */

/* cert_limits keys that are not an identity. */
#define MTLSGW_KEY_DEFAULT   "default"
#define MTLSGW_KEY_ANONYMOUS "anonymous"

/*
 * An identity, NUL-padded to the full length (it is a hash key): the
 * SHA-256 fingerprint of the client's leaf certificate as 64 lowercase hex
 * digits, or for a client without a certificate its address prefix as
 * text: "192.0.2.1" and "2001:db8::1" for a full-length prefix, else
 * "192.0.2.0/24", "2001:db8:1:2::/64" ([limits] anonymous_prefix_v4/_v6;
 * IPv4-mapped IPv6 counts as IPv4).
 */
struct mtlsgw_id {
	char name[MTLSGW_ID_LEN];
};

/* cert_stats value: per identity; written by the BPF programs (or, in
 * userspace mode, kept in memory by daemon/limits.c in the same layout). */
struct mtlsgw_stats {
	char fingerprint[MTLSGW_ID_LEN];  /* lowercase hex; "" if anonymous */
	char subject[MTLSGW_SUBJECT_LEN]; /* subject CN; "" if anonymous */
	__u64 conns_total;		  /* admitted connections */
	__u64 conns_active;		  /* admitted and not yet closed */
	__u64 conns_rejected;		  /* refused at admission */
	__u64 requests;			  /* admitted HTTP requests */
	__u64 requests_rejected;	  /* refused by req_rate */
	__u64 bytes_in;	 /* IP bytes received, after admission */
	__u64 bytes_out; /* IP bytes sent, after admission */
	__u64 last_seen; /* seconds since the epoch (CLOCK_TAI) */
};

/*
 * cert_limits value: key "default", "anonymous", a fingerprint or an
 * address. Written by the daemon from the config (start, SIGHUP) and by
 * operators with `bpftool map update`. 0 = unlimited. Rates are per
 * second; a zero burst means one second's worth of the rate; bandwidth
 * bursts are a quarter second's worth, at least 256 KiB.
 */
struct mtlsgw_limit {
	__u64 max_conns;     /* concurrent connections */
	__u64 conn_rate;     /* new connections per second */
	__u64 conn_burst;    /* connections */
	__u64 req_rate;	     /* requests per second */
	__u64 req_burst;     /* requests */
	__u64 bandwidth_out; /* bytes per second, gateway to client */
	__u64 bandwidth_in;  /* bytes per second, client to gateway */
	__u64 from_config;   /* 1: written from the config; 0: by an operator */
};

/* One token bucket. credit is in MTLSGW_LIMITER_UNIT per token and may go
 * negative (bandwidth debt); last_ns is CLOCK_MONOTONIC, 0 = never used. */
struct mtlsgw_bucket {
	__s64 credit;
	__u64 last_ns;
};

/*
 * cert_buckets value: per identity, everything enforcement needs (the open
 * connection count and the token buckets). A plain hash, never evicted by
 * the kernel: an entry goes only through MTLSGW_SO_RECLAIM, which the
 * daemon calls when the map is full and which removes it only if it has
 * no open connection and is back to its initial state. Written by the BPF
 * programs under lock; read by the daemon for Retry-After and GC.
 */
struct mtlsgw_state {
	struct bpf_spin_lock lock;
	__u32 active; /* admitted connections open now (enforces max_conns) */
	struct mtlsgw_bucket conn;
	struct mtlsgw_bucket req;
	struct mtlsgw_bucket bw_in;
	struct mtlsgw_bucket bw_out;
	/* The key, again: a program that looked the entry up just before
	 * it was reclaimed and its memory reused for another key sees the
	 * mismatch under the lock (before flags: written first). */
	struct mtlsgw_id owner;
	__u32 flags; /* MTLSGW_STATE_* */
	__u32 pad;
};
#define MTLSGW_STATE_ANONYMOUS (1U << 0) /* keyed by address prefix */
#define MTLSGW_STATE_DEAD      (1U << 1) /* reclaimed: being deleted */

/* conn_identity value (socket storage): the identity a connection is
 * bound to; written once by the setsockopt program at admission. */
struct mtlsgw_conn {
	struct mtlsgw_id id;
	__u64 flags; /* MTLSGW_CONN_* */
};
#define MTLSGW_CONN_ANONYMOUS (1ULL << 0) /* keyed by address */
#define MTLSGW_CONN_BOUND     (1ULL << 1) /* admitted and counted */

/* optval of MTLSGW_SO_BIND, written by the daemon. */
struct mtlsgw_bind {
	struct mtlsgw_id id;
	char subject[MTLSGW_SUBJECT_LEN];
	__u64 flags; /* MTLSGW_CONN_ANONYMOUS */
};

/* optval of MTLSGW_SO_REQUEST. */
struct mtlsgw_request {
	__u64 count; /* requests to charge, normally 1 */
};

/* optval of MTLSGW_SO_RECLAIM, written by the daemon's GC: remove ID's
 * cert_buckets entry if it has no open connection, no bucket touched for
 * IDLE_NS and every bucket full again; else the call fails with EBUSY. */
struct mtlsgw_reclaim {
	struct mtlsgw_id id;
	__u64 idle_ns;
};

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Shared by daemon/fleet.c (the in-memory table, the decisions workers
 * make, the block list in force) and daemon/fleet_sync.c (the Redis
 * thread). Include it from fleet*.c only.
 *
 * Redis keys, all under key_prefix P, hash-tagged per identity so that
 * one identity's keys share a Cluster slot:
 *   P{FP}:win     hash w = window (Redis TIME seconds), n = requests and
 *                 b = bytes out (IP bytes, as cert_stats counts them) of
 *                 the whole fleet in that window; expires after 5 s
 *   P{FP}:hosts   hash HOST_ID -> "ACTIVE CONNS_TOTAL REQUESTS_TOTAL UNTIL
 *                 BYTES_OUT_TOTAL": each gateway's open connections and
 *                 totals, counted until UNTIL (Redis time, ms: its push
 *                 plus three of its syncs, at least the hold time); older
 *                 ones are dropped
 *   P{index}:tight_conns, P{index}:tight_reqs  sorted sets FP -> until
 *                 (Redis ms): identities some gateway found at their fleet
 *                 max_conns / req_rate or bandwidth_out (both refuse
 *                 requests), so that a gateway that has no view of one yet
 *                 refuses it too
 *   P{blocks}:list  hash FP -> "EXPIRES CREATED REASON" (unix seconds,
 *                 EXPIRES 0 = never); written by mtlsgw-ctl
 *   P{blocks}:events  Pub/Sub channel mtlsgw-ctl publishes changes on
 */
#ifndef MTLSGW_FLEET_PRIVATE_H
#define MTLSGW_FLEET_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fleet.h"
#include "fleet_cluster.h"

#define FLEET_FP_LEN	     64
#define FLEET_CHAINS	     65536
#define FLEET_STRIPES	     64
#define FLEET_MAX_ENTRIES    (1u << 20)
#define FLEET_MAX_FDS	     (1u << 20)
#define FLEET_IDLE_MS	     60000 /* forget an identity idle this long */
#define FLEET_HOLD_MIN_MS    1000  /* hold = max(5 x sync_interval, this) */
#define FLEET_TIMEOUT_MIN_MS 1000  /* Redis I/O timeout, at least */
#define FLEET_BATCH	     1000  /* identities per pipelined round trip */
#define FLEET_HOSTS_TTL_STR                                                    \
	"600000" /* ms a P{FP}:hosts key outlives its last push */
#define FLEET_MAX_BLOCKS 100000

/* Per-identity fleet limits in force (from [limits] and its overrides). */
struct fleet_limit {
	char fp[72]; /* "" for the default; as config_limit.key */
	uint64_t max_conns, req_rate, bandwidth_out;
};

struct fleet_limits {
	struct fleet_limit def;
	struct fleet_limit *over; /* sorted by fp */
	size_t n_over;
	int fail; /* enum config_fleet_fail */
};

/* One identity. Created by a worker, freed only by the sync thread. */
struct fleet_entry {
	struct fleet_entry *next;
	char fp[FLEET_FP_LEN + 1];
	uint32_t active;    /* our open connections */
	uint64_t d_req;	    /* requests since the last snapshot */
	uint64_t inflight;  /* requests the push under way carries */
	uint64_t req_total; /* ours, since we first saw it */
	uint64_t conns_total;
	uint64_t lw_start_ms, lw_req;	/* local 1 s window (static shares) */
	uint64_t lb_start_ms, lb_bytes; /* its bytes, as the sync thread
					 * reads them */
	uint64_t last_ms;		/* last local activity */
	/* Bytes out, from cert_stats (fleet_bytes_take); the sync thread's
	 * alone, but for b_seen, set once by the worker that creates it. */
	uint64_t b_seen;      /* cert_stats bytes_out at the last read */
	uint64_t d_bytes;     /* read, not yet confirmed pushed */
	uint64_t bytes_total; /* ours, pushed, since we first saw it */
	/* The fleet's view at the last sync. */
	uint64_t v_ms;	       /* when it was read; 0 = never */
	uint64_t v_req;	       /* fleet requests in the window */
	uint64_t v_win_end_ms; /* when that window ends (our clock) */
	uint64_t v_active;     /* fleet open connections */
	uint64_t v_bytes;      /* fleet bytes out in the window */
	uint32_t v_my_active;  /* ours as pushed with it */
	uint32_t v_hosts;      /* gateways contributing */
	uint64_t down_ms; /* cluster: its node unreachable since; 0 = not */
	uint16_t slot1;	  /* cluster: its key slot + 1, 0 = not yet; sync
			   * thread only */
};

/* Identities at a fleet limit somewhere: sorted, until our clock. */
struct fleet_tight_item {
	char fp[FLEET_FP_LEN + 1];
	uint64_t until_ms;
};

struct fleet_tight {
	struct fleet_tight_item *it;
	size_t n;
};

/* The block list in force: sorted fingerprints. */
struct fleet_blocks {
	char (*fp)[FLEET_FP_LEN + 1];
	size_t n;
};

enum fleet_state {
	FLEET_CONNECTED,
	FLEET_HOLDING,	/* unreachable; last state kept */
	FLEET_FALLBACK, /* unreachable past the hold: fleet_fail applies */
};

struct fleet {
	/* [fleet], fixed until restart */
	char **redis; /* copies of cfg->fleet_redis */
	size_t n_redis;
	char *sentinel_master;
	char *password; /* wiped at free */
	char prefix[80];
	char host_id[80];
	unsigned sync_ms, hold_ms, timeout_ms;
	bool required;	       /* READY_FLEET while Redis is unreachable */
	struct limits *limits; /* cert_stats: bytes; NULL = no byte counts */
	bool cluster; /* redis = Cluster seed nodes (fleet_cluster.h) */

	pthread_rwlock_t lims_lock;
	struct fleet_limits *lims;

	pthread_mutex_t stripes[FLEET_STRIPES];
	struct fleet_entry *chains[FLEET_CHAINS];
	atomic_uint n_entries;
	struct fleet_entry *_Atomic *fds;
	size_t n_fds;

	pthread_rwlock_t blocks_lock; /* also guards tight_* */
	struct fleet_blocks *blocks;
	struct fleet_tight *tight_conns, *tight_reqs;

	/* Written by the sync thread, read by workers. */
	_Atomic int state;	      /* enum fleet_state */
	_Atomic uint64_t last_ok_ms;  /* end of the last good sync */
	_Atomic unsigned hosts_seen;  /* most gateways seen on one identity */
	_Atomic unsigned sync_dur_ms; /* how long the last sync took */

	/* sync thread */
	pthread_t thread;
	bool thread_started;
	int wake[2]; /* pipe: fleet_free() wakes the thread */
	_Atomic bool stop;
	struct fleet_conn *conn; /* fleet_sync.c */
};

/* fleet.c */
uint64_t fleet_now_ms(void);
/* How long a view read at a sync stays valid: the hold time, or three
 * syncs when syncs take longer (many identities). */
unsigned fleet_view_ttl(struct fleet *f);
unsigned fleet_hash(const char *fp);
/* The stripe lock of FP's chain. */
pthread_mutex_t *fleet_lock_of(struct fleet *f, const char *fp);
struct fleet_limit fleet_limit_of(struct fleet *f, const char *fp, int *fail);
bool fleet_is_blocked(struct fleet *f, const char *fp);
/* Sync thread: add the bytes out E's cert_stats entry counted since the
 * last read to E->d_bytes. */
void fleet_bytes_take(struct fleet *f, struct fleet_entry *e);
/* Sync thread, Redis unreachable: the same for every identity with an
 * open connection (the static fallback's shares decide on it). */
void fleet_bytes_local(struct fleet *f);
/* Swap in a new block list (takes NEW) and shut down the connections of
 * identities it blocks. */
void fleet_set_blocks(struct fleet *f, struct fleet_blocks *nb);
void fleet_blocks_free(struct fleet_blocks *b);
/* Until when (our clock) FP is at a fleet limit somewhere; 0 if not. */
uint64_t fleet_tight_until(struct fleet *f, bool reqs, const char *fp);
/* Swap in new tight sets (takes them; NULL keeps the old one). */
void fleet_set_tight(struct fleet *f, struct fleet_tight *conns,
		     struct fleet_tight *reqs);
void fleet_tight_free(struct fleet_tight *t);
void fleet_metric_sync(uint64_t us, bool ok);
void fleet_metric_connected(bool up, size_t n_identities, size_t n_blocks);

/* fleet_sync.c */
int fleet_sync_start(struct fleet *f);
void fleet_sync_stop(struct fleet *f);

/* The sync thread's state, shared by fleet_sync.c and
 * fleet_sync_cluster.c. */
struct fleet_item; /* fleet_sync.c */

/* A cluster reply to retry: item I on NODE, after ASKING if ASK. */
struct fleet_retry {
	size_t i;
	int node;
	bool ask;
	char addr[FLEET_CLUSTER_ADDR_LEN]; /* ASK: the node named */
};

struct fleet_conn {
	struct redisContext *c, *sub; /* cluster: C is the {blocks} node's */
	struct fleet_cluster *cl;
	struct fleet_retry *retry; /* FLEET_BATCH of them */
	bool partial; /* cluster: some identities were not synced */
	char sha[48];
	char where[160];
	unsigned backoff_ms;
	uint64_t next_try_ms;
	bool warned_down; /* the current outage was logged */
	bool ever_up;
	struct fleet_item *items;
	size_t cap;
};

/* fleet_sync.c, for fleet_sync_cluster.c: SCRIPT LOAD on C (at WHERE);
 * the connection of item I's keys (NODE: its cluster node); give item I's
 * deltas back to the next sync (DOWN: its node is unreachable); send item
 * I's script on C; apply reply R to item I (false if R is not a result). */
int fleet_sync_load(struct fleet_conn *fc, struct redisContext *c,
		    const char *where, char *err, size_t n);
struct redisContext *fleet_sync_ctx(struct fleet *f, struct fleet_conn *fc,
				    size_t i, int *node);
void fleet_sync_unsynced(struct fleet *f, struct fleet_conn *fc, size_t i,
			 bool down);
void fleet_sync_send(struct fleet *f, struct fleet_conn *fc,
		     struct redisContext *c, size_t i);
bool fleet_sync_done(struct fleet *f, struct fleet_conn *fc, size_t i,
		     const struct redisReply *r, uint64_t *rms);

/* fleet_sync_cluster.c: the Redis Cluster side of the sync thread. */
/* Before a round: refresh a stale map, connect the primaries due, point
 * fc->c at the {blocks} node. 0, or -1 with ERR. */
int fleet_sync_cluster_prepare(struct fleet *f, struct fleet_conn *fc,
			       char *err, size_t n);
/* Point fc->c (and fc->where) at the {blocks} node's connection as the
 * map has it now: NULL while that node is down. A node that fails during
 * a round frees its connection (fleet_cluster_fail), so fc->c must be
 * taken again after anything that may have dropped a node. */
struct redisContext *fleet_sync_cluster_blocks(struct fleet *f,
					       struct fleet_conn *fc);
/* Node I's connection C broke: drop it, warn once per outage. */
void fleet_sync_node_lost(struct fleet *f, struct fleet_conn *fc, int i,
			  const struct redisContext *c);
/* R (the reply to item I) is MOVED or ASK: noted as the NR-th retry. */
bool fleet_sync_redirected(struct fleet *f, struct fleet_conn *fc,
			   const struct redisReply *r, size_t i, size_t *nr);
/* After the tail: TC (a tight set) or LIST (the block list) redirected?
 * Re-read the map; fetch the list where the reply said. Returns the list
 * to use (LIST, or a new reply; NULL if it cannot be had). */
struct redisReply *fleet_sync_cluster_tail(struct fleet *f,
					   struct fleet_conn *fc,
					   const struct redisReply *tc,
					   struct redisReply *list);
/* Send the NR noted items once more, read and apply their replies. */
void fleet_sync_retry(struct fleet *f, struct fleet_conn *fc, size_t nr,
		      uint64_t *rms);

#endif

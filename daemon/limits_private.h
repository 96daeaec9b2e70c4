/* SPDX-License-Identifier: MIT */
/*
 * Shared by daemon/limits.c (interface, mode selection, userspace
 * fallback, cert_limits from the config) and daemon/limits_bpf.c (bpffs,
 * cgroup, skeleton load and attach, pinning, the BPF connection path).
 * Include it from limits*.c only.
 */
#ifndef MTLSGW_LIMITS_PRIVATE_H
#define MTLSGW_LIMITS_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mtlsgw_abi.h"

#include "config.h"
#include "limits.h"
#include "log.h"

_Static_assert(sizeof(struct mtlsgw_id) == 72, "mtlsgw_id");
_Static_assert(sizeof(struct mtlsgw_stats) == 200, "mtlsgw_stats");
_Static_assert(sizeof(struct mtlsgw_limit) == 64, "mtlsgw_limit");
_Static_assert(sizeof(struct mtlsgw_bucket) == 16, "mtlsgw_bucket");
_Static_assert(sizeof(struct mtlsgw_state) == 152, "mtlsgw_state");
_Static_assert(sizeof(struct mtlsgw_conn) == 80, "mtlsgw_conn");
_Static_assert(sizeof(struct mtlsgw_bind) == 144, "mtlsgw_bind");
_Static_assert(sizeof(struct mtlsgw_request) == 8, "mtlsgw_request");
_Static_assert(sizeof(struct mtlsgw_reclaim) == 80, "mtlsgw_reclaim");

#define LIMITS_BPFFS	     "/sys/fs/bpf"
#define LIMITS_CGROUP_PREFIX "mtlsgw-" /* child of the root cgroup */
#define LIMITS_NPROGS	     4
#define LIMITS_GC_IDLE_NS    10000000000ULL /* bucket untouched this long */
#define LIMITS_GC_BATCH	     1024	    /* entries per batch lookup */
#define LIMITS_GC_SCAN	     4096 /* entries looked at per GC call, at most */
#define LIMITS_GC_TARGET     256  /* a GC call stops after reclaiming these */
#define LIMITS_GC_BACKOFF_NS 100000000ULL /* after a GC that found nothing */
#define LIMITS_BIND_TRIES    4	  /* binds per admission (GC, reclaim races) */
#define LIMITS_U_CHAINS	     4096 /* userspace table */
#define LIMITS_U_STRIPES     64
#define LIMITS_U_CHAIN_MAX   (MTLSGW_MAX_IDENTITIES / LIMITS_U_CHAINS)
#define LIMITS_U_MAX_FDS     (1 << 20)

enum limits_mode { LIMITS_OFF, LIMITS_USERSPACE, LIMITS_BPF };

struct bpf_link;
struct mtlsgw_bpf;
struct limits_uentry; /* limits.c */
struct limits_uset;   /* limits.c */

struct limits {
	enum limits_mode mode;
	enum config_bpf_mode cfg_mode; /* as configured at start */
	char instance[64];

	/* bpf */
	struct mtlsgw_bpf *skel;
	struct bpf_link *links[LIMITS_NPROGS];
	char pin_dir[128];
	char cgroup[512];
	char left_cgroup[512]; /* the root cgroup we moved out of, or "" */
	int made_cgroup;       /* we created l->cgroup */
	int fd_stats, fd_limits, fd_buckets, fd_conns;
	atomic_int warned_cgroup;
	struct log_ratelimit full_log, gc_log;
	/* GC (limits_bpf_gc): one caller at a time (gc_busy), which owns
	 * the fields below it. */
	atomic_int gc_busy;
	_Atomic uint64_t gc_idle_ns; /* LIMITS_GC_IDLE_NS; tests lower it */
	int gc_sock;		     /* for MTLSGW_SO_RECLAIM */
	int gc_started;		     /* gc_cursor is valid */
	__u32 gc_cursor;	     /* batch lookup position (hash bucket) */
	struct mtlsgw_id *gc_keys;   /* LIMITS_GC_BATCH each */
	struct mtlsgw_state *gc_vals;
	uint64_t gc_next_ns; /* no GC before (backoff), CLOCK_MONOTONIC */
	uint64_t gc_calls, gc_scanned, gc_reclaimed; /* totals */
	uint64_t gc_max_scan; /* most entries one call looked at */

	/* anonymous clients: address prefix lengths ([limits]) */
	_Atomic unsigned prefix_v4, prefix_v6;

	/* userspace */
	struct limits_uset *_Atomic uset; /* swapped whole on reload */
	struct limits_uset *retired;	  /* earlier usets, freed at the end */
	pthread_mutex_t stripes[LIMITS_U_STRIPES];
	struct limits_uentry *chains[LIMITS_U_CHAINS];
	struct limits_uentry *_Atomic *fds;
	size_t n_fds;
};

/* limits.c: helpers both sides use. */
uint64_t limits_now_ns(void);
unsigned limits_ns_to_retry(uint64_t ns);
void limits_key(struct mtlsgw_id *key, const char *name);
/* Record why BPF mode is unavailable (logged once by limits_new()). */
__attribute__((format(printf, 3, 4))) void limits_why(char *why, size_t n,
						      const char *fmt, ...);
/* Write CFG's entries into cert_limits, drop stale config entries. */
int limits_bpf_sync(struct limits *l, const struct config *cfg);

/* limits_bpf.c */
int limits_bpf_open(struct limits *l, const struct config *cfg, char *why,
		    size_t n);
int limits_bpf_admit(struct limits *l, int fd, const struct mtlsgw_bind *b,
		     unsigned *retry_after_s);
int limits_bpf_request(struct limits *l, int fd, unsigned *retry_after_s);
/* cert_stats bytes_out of ID: 0, or -1 (errno) */
int limits_bpf_bytes_out(struct limits *l, const struct mtlsgw_id *id,
			 uint64_t *bytes);
/* Reclaim idle cert_buckets entries (bounded); returns how many. */
size_t limits_bpf_gc(struct limits *l);
/* Close the skeleton and our link fds; pinned maps and links stay. */
void limits_bpf_close(struct limits *l);

#endif

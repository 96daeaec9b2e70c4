// SPDX-License-Identifier: MIT
/*
 * The fleet's in-memory side: the per-identity table workers count in,
 * the decisions they make from the fleet totals the sync thread last read
 * (fleet_sync.c), the block list in force, and the fleet's metrics.
 *
 * Fleet request limits use fixed 1 s windows (Redis TIME). A gateway
 * refuses once the fleet's count at the last sync plus what it admitted
 * itself since reaches the limit, so the overshoot is what the other
 * gateways admit between two syncs: at most sync_interval x the
 * identity's fleet-wide rate (README, "Fleet").
 *
 * fleet_bandwidth_out uses the same windows over the bytes the BPF
 * programs count per identity (cert_stats bytes_out, read by the sync
 * thread for the identities active since the last sync): once the fleet's
 * bytes in the window reach it, requests get 429 until the window ends.
 * Responses under way are not cut (the local bandwidth_out shapes them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fleet.h"
#include "fleet_private.h"
#include "fleet_redis.h"
#include "limits.h"
#include "log.h"
#include "metrics.h"
#include "ready.h"

/* Process-wide metrics (one fleet per process). */
static _Atomic int fleet_m_enabled;
static _Atomic int fleet_m_connected;
static _Atomic unsigned long long fleet_m_syncs, fleet_m_sync_us,
	fleet_m_last_sync_us, fleet_m_errors, fleet_m_ref_conns,
	fleet_m_ref_reqs, fleet_m_ref_bytes, fleet_m_ref_blocked,
	fleet_m_identities, fleet_m_blocks;

uint64_t fleet_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

unsigned fleet_view_ttl(struct fleet *f)
{
	unsigned three = 3 * atomic_load(&f->sync_dur_ms);

	return three > f->hold_ms ? three : f->hold_ms;
}

unsigned fleet_hash(const char *fp)
{
	uint32_t h = 2166136261u;

	for (; *fp; fp++)
		h = (h ^ (unsigned char)*fp) * 16777619u;
	return h;
}

/* ---- limits from the config */

static int fleet_cmp_limit(const void *a, const void *b)
{
	return strcmp(((const struct fleet_limit *)a)->fp,
		      ((const struct fleet_limit *)b)->fp);
}

static void fleet_limit_from(struct fleet_limit *l,
			     const struct config_limit *c, const char *fp)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->fp, sizeof(l->fp), "%s", fp);
	l->max_conns = c->fleet_max_conns;
	l->req_rate = c->fleet_req_rate;
	l->bandwidth_out = c->fleet_bandwidth_out;
}

static void fleet_limits_free(struct fleet_limits *fl)
{
	if (!fl)
		return;
	free(fl->over);
	free(fl);
}

static struct fleet_limits *fleet_limits_new(const struct config *cfg)
{
	struct fleet_limits *fl = calloc(1, sizeof(*fl));
	size_t i, n = cfg->n_limit_overrides;

	if (!fl)
		return NULL;
	fleet_limit_from(&fl->def, &cfg->limit_default, "");
	fl->fail = cfg->limit_default.fleet_fail;
	if (n) {
		fl->over = calloc(n, sizeof(*fl->over));
		if (!fl->over) {
			free(fl);
			return NULL;
		}
		for (i = 0; i < n; i++)
			fleet_limit_from(&fl->over[i], &cfg->limit_overrides[i],
					 cfg->limit_overrides[i].key);
		fl->n_over = n;
		qsort(fl->over, n, sizeof(*fl->over), fleet_cmp_limit);
	}
	return fl;
}

struct fleet_limit fleet_limit_of(struct fleet *f, const char *fp, int *fail)
{
	struct fleet_limit probe, *hit = NULL, out;

	pthread_rwlock_rdlock(&f->lims_lock);
	if (f->lims->n_over) {
		snprintf(probe.fp, sizeof(probe.fp), "%s", fp);
		hit = bsearch(&probe, f->lims->over, f->lims->n_over,
			      sizeof(probe), fleet_cmp_limit);
	}
	out = hit ? *hit : f->lims->def;
	if (fail)
		*fail = f->lims->fail;
	pthread_rwlock_unlock(&f->lims_lock);
	return out;
}

/* ---- block list */

static int fleet_cmp_fp(const void *a, const void *b)
{
	return strcmp(a, b);
}

void fleet_blocks_free(struct fleet_blocks *b)
{
	if (!b)
		return;
	free(b->fp);
	free(b);
}

bool fleet_is_blocked(struct fleet *f, const char *fp)
{
	bool hit = false;

	pthread_rwlock_rdlock(&f->blocks_lock);
	if (f->blocks && f->blocks->n)
		hit = bsearch(fp, f->blocks->fp, f->blocks->n,
			      sizeof(*f->blocks->fp), fleet_cmp_fp) != NULL;
	pthread_rwlock_unlock(&f->blocks_lock);
	return hit;
}

static bool fleet_blocks_has(const struct fleet_blocks *b, const char *fp)
{
	return b && b->n &&
	       bsearch(fp, b->fp, b->n, sizeof(*b->fp), fleet_cmp_fp);
}

static bool fleet_blocks_equal(const struct fleet_blocks *a,
			       const struct fleet_blocks *b)
{
	size_t na = a ? a->n : 0, nb = b ? b->n : 0;

	if (na != nb)
		return false;
	return na == 0 || !memcmp(a->fp, b->fp, na * sizeof(*a->fp));
}

/* Shut down (not close: the worker owns the descriptor) every open
 * connection of a blocked identity; the worker then sees EOF and closes.
 * The entry's stripe lock keeps fleet_conn_close(), and so close(), from
 * running between the check and the shutdown. */
static void fleet_shutdown_blocked(struct fleet *f,
				   const struct fleet_blocks *b)
{
	struct fleet_entry *e;
	pthread_mutex_t *lock;
	size_t fd, n = 0;

	for (fd = 0; fd < f->n_fds; fd++) {
		e = atomic_load(&f->fds[fd]);
		if (!e || !fleet_blocks_has(b, e->fp))
			continue;
		lock = fleet_lock_of(f, e->fp);
		pthread_mutex_lock(lock);
		if (atomic_load(&f->fds[fd]) == e) {
			shutdown((int)fd, SHUT_RDWR);
			n++;
		}
		pthread_mutex_unlock(lock);
	}
	if (n)
		log_info("fleet: closed %zu connection(s) of blocked "
			 "identities",
			 n);
}

void fleet_set_blocks(struct fleet *f, struct fleet_blocks *nb)
{
	struct fleet_blocks *old;
	size_t i;

	qsort(nb->fp, nb->n, sizeof(*nb->fp), fleet_cmp_fp);
	pthread_rwlock_rdlock(&f->blocks_lock);
	if (fleet_blocks_equal(f->blocks, nb)) {
		pthread_rwlock_unlock(&f->blocks_lock);
		fleet_blocks_free(nb);
		return;
	}
	pthread_rwlock_unlock(&f->blocks_lock);
	for (i = 0; i < nb->n; i++)
		if (!fleet_blocks_has(f->blocks, nb->fp[i]))
			log_warn("fleet: sha256:%s is BLOCKED", nb->fp[i]);
	if (f->blocks)
		for (i = 0; i < f->blocks->n; i++)
			if (!fleet_blocks_has(nb, f->blocks->fp[i]))
				log_warn("fleet: sha256:%s unblocked",
					 f->blocks->fp[i]);
	pthread_rwlock_wrlock(&f->blocks_lock);
	old = f->blocks;
	f->blocks = nb;
	pthread_rwlock_unlock(&f->blocks_lock);
	fleet_blocks_free(old);
	atomic_store(&fleet_m_blocks, nb->n);
	/* Only the sync thread swaps the list: reading it unlocked is safe. */
	fleet_shutdown_blocked(f, nb);
}

/* ---- identities at a fleet limit on another gateway */

void fleet_tight_free(struct fleet_tight *t)
{
	if (!t)
		return;
	free(t->it);
	free(t);
}

uint64_t fleet_tight_until(struct fleet *f, bool reqs, const char *fp)
{
	const struct fleet_tight_item *hit = NULL;
	struct fleet_tight *t;
	uint64_t until = 0;

	pthread_rwlock_rdlock(&f->blocks_lock);
	t = reqs ? f->tight_reqs : f->tight_conns;
	if (t && t->n)
		hit = bsearch(fp, t->it, t->n, sizeof(*t->it), fleet_cmp_fp);
	if (hit)
		until = hit->until_ms;
	pthread_rwlock_unlock(&f->blocks_lock);
	return until;
}

void fleet_set_tight(struct fleet *f, struct fleet_tight *conns,
		     struct fleet_tight *reqs)
{
	struct fleet_tight *oc = NULL, * or = NULL;

	if (conns)
		qsort(conns->it, conns->n, sizeof(*conns->it), fleet_cmp_fp);
	if (reqs)
		qsort(reqs->it, reqs->n, sizeof(*reqs->it), fleet_cmp_fp);
	pthread_rwlock_wrlock(&f->blocks_lock);
	if (conns) {
		oc = f->tight_conns;
		f->tight_conns = conns;
	}
	if (reqs) {
		or = f->tight_reqs;
		f->tight_reqs = reqs;
	}
	pthread_rwlock_unlock(&f->blocks_lock);
	fleet_tight_free(oc);
	fleet_tight_free(or);
}

/* ---- the table */

pthread_mutex_t *fleet_lock_of(struct fleet *f, const char *fp)
{
	return &f->stripes[(fleet_hash(fp) % FLEET_CHAINS) % FLEET_STRIPES];
}

/* The entry of FP, created if missing, with its stripe locked. */
static struct fleet_entry *fleet_get(struct fleet *f, const char *fp,
				     pthread_mutex_t **lock)
{
	unsigned c = fleet_hash(fp) % FLEET_CHAINS;
	struct fleet_entry *e;

	*lock = &f->stripes[c % FLEET_STRIPES];
	pthread_mutex_lock(*lock);
	for (e = f->chains[c]; e; e = e->next)
		if (!strcmp(e->fp, fp))
			return e;
	if (atomic_load(&f->n_entries) >= FLEET_MAX_ENTRIES ||
	    !(e = calloc(1, sizeof(*e)))) {
		pthread_mutex_unlock(*lock);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(e->fp, sizeof(e->fp), "%s", fp);
	/* Count its bytes from now on: what cert_stats holds from before
	 * (earlier connections, an earlier run) was pushed then, or is not
	 * ours to push. One syscall, for a new identity only. */
	if (f->limits)
		limits_bytes_out(f->limits, fp, &e->b_seen);
	e->next = f->chains[c];
	f->chains[c] = e;
	atomic_fetch_add(&f->n_entries, 1);
	return e;
}

/* Whether the fleet's view is recent enough to decide on, else which
 * fallback applies: 1 fleet view, 0 static shares, -1 local only. In a
 * Cluster, an identity whose node is unreachable past the hold time falls
 * back alone. */
static int fleet_mode(struct fleet *f, const struct fleet_entry *e,
		      uint64_t now, int fail)
{
	if ((atomic_load(&f->state) == FLEET_CONNECTED ||
	     now - atomic_load(&f->last_ok_ms) <= f->hold_ms) &&
	    (!e->down_ms || now - e->down_ms <= f->hold_ms))
		return 1;
	return fail == CONFIG_FLEET_FAIL_LOCAL ? -1 : 0;
}

static uint64_t fleet_share(struct fleet *f, const struct fleet_entry *e,
			    uint64_t limit)
{
	unsigned hosts = e->v_hosts ? e->v_hosts : atomic_load(&f->hosts_seen);
	uint64_t share;

	if (hosts < 1)
		hosts = 1;
	share = limit / hosts;
	return share ? share : 1;
}

/* A local 1 s window (START, COUNT): a new one once it is over. */
static void fleet_local_window(uint64_t *start, uint64_t *count, uint64_t now)
{
	if (now - *start >= 1000) {
		*start = now;
		*count = 0;
	}
}

int fleet_conn_open(struct fleet *f, int fd, const char *fp,
		    unsigned *retry_after_s)
{
	struct fleet_entry *e;
	struct fleet_limit lim;
	pthread_mutex_t *lock;
	uint64_t now = fleet_now_ms(), est;
	int fail, mode, v = FLEET_OK;

	*retry_after_s = 1;
	if (fleet_is_blocked(f, fp)) {
		atomic_fetch_add(&fleet_m_ref_blocked, 1);
		return FLEET_BLOCKED;
	}
	if (fd < 0 || (size_t)fd >= f->n_fds)
		return FLEET_OK; /* not tracked: local limits still hold */
	lim = fleet_limit_of(f, fp, &fail);
	e = fleet_get(f, fp, &lock);
	if (!e) {
		/* Refuse rather than let an untracked identity past a fleet
		 * limit; without one there is nothing to track. */
		if (!lim.max_conns && !lim.req_rate && !lim.bandwidth_out)
			return FLEET_OK;
		atomic_fetch_add(&fleet_m_ref_conns, 1);
		return FLEET_LIMITED;
	}
	mode = fleet_mode(f, e, now, fail);
	if (lim.max_conns && mode == 1) {
		/* Others' connections as of the last sync of this identity;
		 * a view older than the hold time is no view. */
		est = e->v_active > e->v_my_active &&
				      now - e->v_ms <= fleet_view_ttl(f)
			      ? e->v_active - e->v_my_active
			      : 0;
		if (est + e->active >= lim.max_conns)
			v = FLEET_LIMITED;
	} else if (lim.max_conns && mode == 0 &&
		   e->active >= fleet_share(f, e, lim.max_conns)) {
		v = FLEET_LIMITED;
	}
	e->last_ms = now;
	if (v == FLEET_OK && lim.max_conns && mode == 1 &&
	    (!e->v_ms || now - e->v_ms > fleet_view_ttl(f)) &&
	    fleet_tight_until(f, false, fp) > now)
		v = FLEET_LIMITED; /* no view here, at the limit elsewhere */
	if (v == FLEET_OK) {
		e->active++;
		e->conns_total++;
		atomic_store(&f->fds[fd], e);
	}
	pthread_mutex_unlock(lock);
	if (v == FLEET_LIMITED)
		atomic_fetch_add(&fleet_m_ref_conns, 1);
	return v;
}

int fleet_request(struct fleet *f, int fd, unsigned *retry_after_s)
{
	struct fleet_entry *e;
	struct fleet_limit lim;
	pthread_mutex_t *lock;
	uint64_t now = fleet_now_ms(), known, tight;
	int fail, mode, v = FLEET_OK;
	bool bytes = false;

	*retry_after_s = 1;
	if (fd < 0 || (size_t)fd >= f->n_fds || !(e = atomic_load(&f->fds[fd])))
		return FLEET_OK;
	if (fleet_is_blocked(f, e->fp)) {
		atomic_fetch_add(&fleet_m_ref_blocked, 1);
		return FLEET_BLOCKED;
	}
	lim = fleet_limit_of(f, e->fp, &fail);
	lock = fleet_lock_of(f, e->fp);
	pthread_mutex_lock(lock);
	fleet_local_window(&e->lw_start_ms, &e->lw_req, now);
	mode = fleet_mode(f, e, now, fail);
	if (lim.req_rate && mode == 1) {
		/* In a window no sync has reported yet, every gateway takes
		 * only its share, so that they do not each admit the whole
		 * rate before the first sync of the window. */
		known = now < e->v_win_end_ms ? e->v_req : 0;
		if (now >= e->v_win_end_ms && e->v_hosts > 1 &&
		    e->inflight + e->d_req >= fleet_share(f, e, lim.req_rate)) {
			v = FLEET_LIMITED;
		} else if (known + e->inflight + e->d_req >= lim.req_rate ||
			   (now < e->v_win_end_ms && e->v_hosts > 1 &&
			    e->inflight + e->d_req >=
				    (lim.req_rate - known + e->v_hosts - 1) /
					    e->v_hosts)) {
			/* The second test: what is left of the window is
			 * split between the gateways until the next sync. */
			v = FLEET_LIMITED;
			if (now < e->v_win_end_ms)
				*retry_after_s = (unsigned)((e->v_win_end_ms -
							     now + 999) /
							    1000);
		}
	} else if (lim.req_rate && mode == 0 &&
		   e->lw_req >= fleet_share(f, e, lim.req_rate)) {
		v = FLEET_LIMITED;
	}
	/* Bytes: only the sync thread reads them, so the decision is on
	 * the fleet's count at the last sync (ours included). */
	if (v == FLEET_OK && lim.bandwidth_out && mode == 1 &&
	    now < e->v_win_end_ms && e->v_bytes >= lim.bandwidth_out) {
		v = FLEET_LIMITED;
		bytes = true;
		*retry_after_s =
			(unsigned)((e->v_win_end_ms - now + 999) / 1000);
	} else if (v == FLEET_OK && lim.bandwidth_out && mode == 0 &&
		   now - e->lb_start_ms < 1000 &&
		   e->lb_bytes >= fleet_share(f, e, lim.bandwidth_out)) {
		v = FLEET_LIMITED;
		bytes = true;
	}
	if (v == FLEET_OK && (lim.req_rate || lim.bandwidth_out) && mode == 1 &&
	    (!e->v_ms || now - e->v_ms > fleet_view_ttl(f)) &&
	    (tight = fleet_tight_until(f, true, e->fp)) > now) {
		v = FLEET_LIMITED; /* no view here, at the limit elsewhere */
		bytes = !lim.req_rate;
		*retry_after_s = (unsigned)((tight - now + 999) / 1000);
	}
	e->last_ms = now;
	if (v == FLEET_OK) {
		e->d_req++;
		e->req_total++;
		e->lw_req++;
	}
	pthread_mutex_unlock(lock);
	if (*retry_after_s < 1)
		*retry_after_s = 1;
	if (v == FLEET_LIMITED)
		atomic_fetch_add(bytes ? &fleet_m_ref_bytes : &fleet_m_ref_reqs,
				 1);
	return v;
}

void fleet_bytes_take(struct fleet *f, struct fleet_entry *e)
{
	uint64_t cur, d, now = fleet_now_ms();
	pthread_mutex_t *lock;

	if (!f->limits || limits_bytes_out(f->limits, e->fp, &cur) < 0)
		return;
	/* Less than before: cert_stats (an LRU) evicted the entry and
	 * counts again from zero. */
	d = cur >= e->b_seen ? cur - e->b_seen : cur;
	e->d_bytes += d;
	e->b_seen = cur;
	lock = fleet_lock_of(f, e->fp);
	pthread_mutex_lock(lock);
	fleet_local_window(&e->lb_start_ms, &e->lb_bytes, now);
	e->lb_bytes += d;
	pthread_mutex_unlock(lock);
}

void fleet_bytes_local(struct fleet *f)
{
	struct fleet_entry *e, **list = NULL, **more;
	size_t c, n = 0, cap = 0, want;
	pthread_mutex_t *lock;
	bool oom = false;

	if (!f->limits)
		return;
	/* Collect under the stripe locks, read without them: entries are
	 * freed by this thread only. */
	for (c = 0; c < FLEET_CHAINS && !oom; c++) {
		if (!f->chains[c])
			continue;
		lock = &f->stripes[c % FLEET_STRIPES];
		pthread_mutex_lock(lock);
		for (e = f->chains[c]; e; e = e->next) {
			if (!e->active)
				continue;
			if (n == cap) {
				want = cap ? 2 * cap : 256;
				more = realloc(list, want * sizeof(*list));
				if (!more) {
					oom = true; /* read what we have */
					break;
				}
				list = more;
				cap = want;
			}
			list[n++] = e;
		}
		pthread_mutex_unlock(lock);
	}
	for (c = 0; c < n; c++)
		fleet_bytes_take(f, list[c]);
	free(list);
}

bool fleet_fd_blocked(struct fleet *f, int fd)
{
	struct fleet_entry *e;

	if (!f || fd < 0 || (size_t)fd >= f->n_fds ||
	    !(e = atomic_load(&f->fds[fd])))
		return false;
	return fleet_is_blocked(f, e->fp);
}

void fleet_conn_close(struct fleet *f, int fd)
{
	struct fleet_entry *e;
	pthread_mutex_t *lock;

	if (!f || fd < 0 || (size_t)fd >= f->n_fds ||
	    !(e = atomic_load(&f->fds[fd])))
		return;
	lock = fleet_lock_of(f, e->fp);
	pthread_mutex_lock(lock);
	atomic_store(&f->fds[fd], NULL);
	if (e->active)
		e->active--;
	e->last_ms = fleet_now_ms();
	pthread_mutex_unlock(lock);
}

/* ---- metrics */

void fleet_metric_sync(uint64_t us, bool ok)
{
	if (!ok) {
		atomic_fetch_add(&fleet_m_errors, 1);
		return;
	}
	atomic_fetch_add(&fleet_m_syncs, 1);
	atomic_fetch_add(&fleet_m_sync_us, us);
	atomic_store(&fleet_m_last_sync_us, us);
}

void fleet_metric_connected(bool up, size_t n_identities, size_t n_blocks)
{
	(void)n_blocks;
	atomic_store(&fleet_m_connected, up);
	atomic_store(&fleet_m_identities, n_identities);
}

void fleet_metrics_write(FILE *out)
{
	if (!atomic_load(&fleet_m_enabled))
		return;
	fprintf(out,
		"# TYPE mtlsgw_fleet_connected gauge\n"
		"mtlsgw_fleet_connected %d\n"
		"# TYPE mtlsgw_fleet_sync_seconds gauge\n"
		"mtlsgw_fleet_sync_seconds %.6f\n"
		"# TYPE mtlsgw_fleet_sync_duration_seconds summary\n"
		"mtlsgw_fleet_sync_duration_seconds_sum %.6f\n"
		"mtlsgw_fleet_sync_duration_seconds_count %llu\n"
		"# TYPE mtlsgw_fleet_sync_errors_total counter\n"
		"mtlsgw_fleet_sync_errors_total %llu\n"
		"# TYPE mtlsgw_fleet_identities gauge\n"
		"mtlsgw_fleet_identities %llu\n"
		"# TYPE mtlsgw_fleet_blocked gauge\n"
		"mtlsgw_fleet_blocked %llu\n"
		"# TYPE mtlsgw_fleet_refused_total counter\n"
		"mtlsgw_fleet_refused_total{reason=\"max_conns\"} %llu\n"
		"mtlsgw_fleet_refused_total{reason=\"req_rate\"} %llu\n"
		"mtlsgw_fleet_refused_total{reason=\"bandwidth_out\"} %llu\n"
		"mtlsgw_fleet_refused_total{reason=\"blocked\"} %llu\n",
		atomic_load(&fleet_m_connected),
		(double)atomic_load(&fleet_m_last_sync_us) / 1e6,
		(double)atomic_load(&fleet_m_sync_us) / 1e6,
		atomic_load(&fleet_m_syncs), atomic_load(&fleet_m_errors),
		atomic_load(&fleet_m_identities), atomic_load(&fleet_m_blocks),
		atomic_load(&fleet_m_ref_conns), atomic_load(&fleet_m_ref_reqs),
		atomic_load(&fleet_m_ref_bytes),
		atomic_load(&fleet_m_ref_blocked));
}

/* ---- lifetime */

static int fleet_setup(struct fleet *f, const struct config *cfg)
{
	char err[256];
	struct rlimit rl;
	size_t i;

	f->n_redis = cfg->fleet_redis.count;
	f->redis = calloc(f->n_redis, sizeof(*f->redis));
	if (!f->redis)
		goto oom;
	for (i = 0; i < f->n_redis; i++)
		if (!(f->redis[i] = strdup(cfg->fleet_redis.items[i])))
			goto oom;
	if (cfg->fleet_sentinel_master &&
	    !(f->sentinel_master = strdup(cfg->fleet_sentinel_master)))
		goto oom;
	if (cfg->fleet_password_file &&
	    !(f->password = fleet_redis_password(cfg->fleet_password_file, err,
						 sizeof(err)))) {
		log_error("fleet: %s", err);
		return -1;
	}
	snprintf(f->prefix, sizeof(f->prefix), "%s", cfg->fleet_key_prefix);
	if (!strcmp(cfg->fleet_host_id, "auto")) {
		if (gethostname(f->host_id, sizeof(f->host_id) - 1) < 0)
			snprintf(f->host_id, sizeof(f->host_id), "unknown");
	} else {
		snprintf(f->host_id, sizeof(f->host_id), "%s",
			 cfg->fleet_host_id);
	}
	f->sync_ms = cfg->fleet_sync_ms;
	f->required = cfg->fleet_required;
	f->cluster = cfg->fleet_cluster;
	f->hold_ms = 5 * f->sync_ms > FLEET_HOLD_MIN_MS ? 5 * f->sync_ms
							: FLEET_HOLD_MIN_MS;
	f->timeout_ms = 5 * f->sync_ms > FLEET_TIMEOUT_MIN_MS
				? 5 * f->sync_ms
				: FLEET_TIMEOUT_MIN_MS;
	f->lims = fleet_limits_new(cfg);
	if (!f->lims)
		goto oom;
	f->n_fds = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > f->n_fds)
		f->n_fds = rl.rlim_cur;
	if (f->n_fds > FLEET_MAX_FDS)
		f->n_fds = FLEET_MAX_FDS;
	f->fds = calloc(f->n_fds, sizeof(*f->fds));
	f->blocks = calloc(1, sizeof(*f->blocks));
	if (!f->fds || !f->blocks)
		goto oom;
	return 0;
oom:
	log_error("fleet: out of memory");
	return -1;
}

/* Whether CFG sets fleet_bandwidth_out anywhere. */
static bool fleet_has_bytes_limit(const struct config *cfg)
{
	size_t i;

	if (cfg->limit_default.fleet_bandwidth_out)
		return true;
	for (i = 0; i < cfg->n_limit_overrides; i++)
		if (cfg->limit_overrides[i].fleet_bandwidth_out)
			return true;
	return false;
}

int fleet_new(const struct config *cfg, struct limits *lim, struct fleet **out)
{
	uint64_t probe;

	struct fleet *f;
	size_t i;

	*out = NULL;
	if (!cfg->fleet_line || !cfg->fleet_redis.count)
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f) {
		log_error("fleet: out of memory");
		return -1;
	}
	pthread_rwlock_init(&f->lims_lock, NULL);
	pthread_rwlock_init(&f->blocks_lock, NULL);
	for (i = 0; i < FLEET_STRIPES; i++)
		pthread_mutex_init(&f->stripes[i], NULL);
	f->wake[0] = f->wake[1] = -1;
	atomic_init(&f->state, FLEET_HOLDING);
	atomic_init(&f->last_ok_ms, fleet_now_ms());
	if (fleet_setup(f, cfg) < 0)
		goto bad;
	if (lim && limits_bytes_out(lim, "", &probe) == 0)
		f->limits = lim;
	else if (fleet_has_bytes_limit(cfg))
		log_warn(
			"fleet: fleet_bandwidth_out is NOT enforced: it counts "
			"the bytes the BPF programs meter, and limits run in "
			"%s mode",
			limits_mode_name(lim));
	atomic_store(&fleet_m_enabled, 1);
	metrics_set_extra(fleet_metrics_write);
	if (fleet_sync_start(f) < 0)
		goto bad;
	*out = f;
	return 0;
bad:
	fleet_free(f);
	return -1;
}

void fleet_reload(struct fleet *f, const struct config *cfg)
{
	struct fleet_limits *nl, *old;

	if (!f)
		return;
	nl = fleet_limits_new(cfg);
	if (!nl) {
		log_error(
			"fleet: reload: out of memory; old fleet limits stay");
		return;
	}
	pthread_rwlock_wrlock(&f->lims_lock);
	old = f->lims;
	f->lims = nl;
	pthread_rwlock_unlock(&f->lims_lock);
	fleet_limits_free(old);
	if (cfg->fleet_sync_ms != f->sync_ms ||
	    strcmp(cfg->fleet_key_prefix, f->prefix) ||
	    cfg->fleet_cluster != f->cluster)
		log_warn("fleet: [fleet] changes apply at the next restart");
}

void fleet_free(struct fleet *f)
{
	struct fleet_entry *e, *next;
	size_t i;

	if (!f)
		return;
	fleet_sync_stop(f);
	for (i = 0; i < FLEET_CHAINS; i++)
		for (e = f->chains[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	for (i = 0; f->redis && i < f->n_redis; i++)
		free(f->redis[i]);
	free(f->redis);
	free(f->sentinel_master);
	fleet_redis_password_free(f->password);
	fleet_limits_free(f->lims);
	fleet_blocks_free(f->blocks);
	fleet_tight_free(f->tight_conns);
	fleet_tight_free(f->tight_reqs);
	free(f->fds);
	for (i = 0; i < FLEET_STRIPES; i++)
		pthread_mutex_destroy(&f->stripes[i]);
	pthread_rwlock_destroy(&f->lims_lock);
	pthread_rwlock_destroy(&f->blocks_lock);
	atomic_store(&fleet_m_enabled, 0);
	metrics_set_extra(NULL);
	if (f->required)
		ready_set_blocker(READY_FLEET, false);
	free(f);
}

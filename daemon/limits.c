/* SPDX-License-Identifier: MIT */
/*
 * Per-identity limits: the interface of limits.h, the choice of mode, the
 * userspace fallback built on the same limiter code as the BPF programs,
 * and the cert_limits entries written from the config (at start and on
 * SIGHUP). The BPF loader and connection path are in limits_bpf.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <bpf/bpf.h>

#include "mtlsgw_abi.h"
#include "mtlsgw_limiter.h"

#include "limits.h"
#include "limits_private.h"
#include "log.h"

/* Userspace mode: one identity. Lives while it has open connections. */
struct limits_uentry {
	struct limits_uentry *next;
	struct mtlsgw_id id;
	int anonymous;
	unsigned active;
	struct mtlsgw_bucket conn;
	struct mtlsgw_bucket req;
	struct mtlsgw_stats st;
};

/* Userspace mode: the limits in force, swapped whole on reload (an atomic
 * pointer: readers take no lock; replaced sets are kept until
 * limits_free(), as a reader may still hold one). */
struct limits_uset {
	struct limits_uset *retired_next;
	struct mtlsgw_limit def, anon;
	struct config_limit *over; /* sorted by key */
	size_t n_over;
};

uint64_t limits_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Same clock as the BPF side's last_seen. */
static uint64_t limits_now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_TAI, &ts);
	return (uint64_t)ts.tv_sec;
}

unsigned limits_ns_to_retry(uint64_t ns)
{
	uint64_t s = (ns + 999999999ULL) / 1000000000ULL;

	if (s < 1)
		s = 1;
	if (s > 86400)
		s = 86400;
	return (unsigned)s;
}

void limits_key(struct mtlsgw_id *key, const char *name)
{
	memset(key, 0, sizeof(*key));
	snprintf(key->name, sizeof(key->name), "%s", name);
}

/*
 * "ADDR" if BITS is the full length, else the prefix "NET/BITS", into
 * TEXT; ADDR (LEN bytes) is masked in place.
 */
static void limits_prefix_text(int af, unsigned char *addr, size_t len,
			       unsigned bits, char *text, size_t n)
{
	char a[INET6_ADDRSTRLEN];
	size_t i;

	if (bits > len * 8)
		bits = (unsigned)(len * 8);
	for (i = bits / 8; i < len; i++) {
		if (i == bits / 8 && bits % 8)
			addr[i] &= (unsigned char)(0xff << (8 - bits % 8));
		else
			addr[i] = 0;
	}
	inet_ntop(af, addr, a, sizeof(a));
	if (bits == len * 8)
		snprintf(text, n, "%s", a);
	else
		snprintf(text, n, "%s/%u", a, bits);
}

/* The identity of a connection: fingerprint if verified, else address
 * prefix (so that an address flood maps onto few keys). */
static void limits_identity(struct limits *l, const struct identity *id,
			    const struct sockaddr *peer, socklen_t peer_len,
			    struct mtlsgw_bind *b)
{
	char text[INET6_ADDRSTRLEN + 8] = "unknown";
	unsigned char a[16];

	memset(b, 0, sizeof(*b));
	if (id && id->verified && id->fingerprint[0]) {
		limits_key(&b->id, id->fingerprint);
		if (id->subject_cn)
			snprintf(b->subject, sizeof(b->subject), "%s",
				 id->subject_cn);
		return;
	}
	b->flags = MTLSGW_CONN_ANONYMOUS;
	if (peer && peer->sa_family == AF_INET &&
	    peer_len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)peer;

		memcpy(a, &in->sin_addr, 4);
		limits_prefix_text(AF_INET, a, 4, atomic_load(&l->prefix_v4),
				   text, sizeof(text));
	} else if (peer && peer->sa_family == AF_INET6 &&
		   peer_len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)peer;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			memcpy(a, &in6->sin6_addr.s6_addr[12], 4);
			limits_prefix_text(AF_INET, a, 4,
					   atomic_load(&l->prefix_v4), text,
					   sizeof(text));
		} else {
			memcpy(a, &in6->sin6_addr, 16);
			limits_prefix_text(AF_INET6, a, 16,
					   atomic_load(&l->prefix_v6), text,
					   sizeof(text));
		}
	}
	limits_key(&b->id, text);
}

static void limits_from_config(struct mtlsgw_limit *v,
			       const struct config_limit *c)
{
	memset(v, 0, sizeof(*v));
	v->max_conns = c->max_conns;
	v->conn_rate = c->conn_rate;
	v->conn_burst = c->conn_burst;
	v->req_rate = c->req_rate;
	v->req_burst = c->req_burst;
	v->bandwidth_out = c->bandwidth_out;
	v->bandwidth_in = c->bandwidth_in;
	v->from_config = 1;
}

static int limits_has_bandwidth(const struct config *cfg)
{
	size_t i;

	if (cfg->limit_default.bandwidth_in ||
	    cfg->limit_default.bandwidth_out ||
	    cfg->limit_anonymous.bandwidth_in ||
	    cfg->limit_anonymous.bandwidth_out)
		return 1;
	for (i = 0; i < cfg->n_limit_overrides; i++)
		if (cfg->limit_overrides[i].bandwidth_in ||
		    cfg->limit_overrides[i].bandwidth_out)
			return 1;
	return 0;
}

void limits_why(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
}

static int limits_instance_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 32 || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.')
			return 0;
	}
	return 1;
}

/* ---- BPF mode: limits from the config */

static int limits_cfg_names(const struct config *cfg, const char *key)
{
	size_t i;

	if (!strcmp(key, MTLSGW_KEY_DEFAULT) ||
	    !strcmp(key, MTLSGW_KEY_ANONYMOUS))
		return 1;
	for (i = 0; i < cfg->n_limit_overrides; i++)
		if (!strcmp(cfg->limit_overrides[i].key, key))
			return 1;
	return 0;
}

static int limits_bpf_put(struct limits *l, const struct config_limit *c)
{
	struct mtlsgw_limit v;
	struct mtlsgw_id key;

	limits_key(&key, c->key);
	limits_from_config(&v, c);
	return bpf_map_update_elem(l->fd_limits, &key, &v, BPF_ANY);
}

/* Write the config's entries, then drop those an earlier config wrote and
 * this one no longer names; operators' entries (from_config 0) stay. */
int limits_bpf_sync(struct limits *l, const struct config *cfg)
{
	struct mtlsgw_id key, next, *stale = NULL;
	struct mtlsgw_limit v;
	size_t i, n_stale = 0;
	void *prev = NULL;
	int rc = 0;

	if (limits_bpf_put(l, &cfg->limit_default) ||
	    limits_bpf_put(l, &cfg->limit_anonymous))
		return -1;
	for (i = 0; i < cfg->n_limit_overrides; i++)
		if (limits_bpf_put(l, &cfg->limit_overrides[i]))
			return -1;

	stale = calloc(MTLSGW_MAX_LIMITS, sizeof(*stale));
	if (!stale)
		return -1;
	while (n_stale < MTLSGW_MAX_LIMITS &&
	       bpf_map_get_next_key(l->fd_limits, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(l->fd_limits, &key, &v) != 0)
			continue;
		key.name[sizeof(key.name) - 1] = 0;
		if (v.from_config && !limits_cfg_names(cfg, key.name))
			stale[n_stale++] = key;
	}
	for (i = 0; i < n_stale; i++) {
		if (bpf_map_delete_elem(l->fd_limits, &stale[i]) &&
		    errno != ENOENT)
			rc = -1;
		else
			log_info("limits: removed cert_limits entry %s (no "
				 "longer in the config)",
				 stale[i].name);
	}
	free(stale);
	return rc;
}

/* ---- userspace mode */

static void limits_uset_free(struct limits_uset *u)
{
	struct limits_uset *next;

	for (; u; u = next) {
		next = u->retired_next;
		free(u->over);
		free(u);
	}
}

static int limits_cmp_limit(const void *a, const void *b)
{
	return strcmp(((const struct config_limit *)a)->key,
		      ((const struct config_limit *)b)->key);
}

static struct limits_uset *limits_uset_new(const struct config *cfg)
{
	struct limits_uset *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	limits_from_config(&u->def, &cfg->limit_default);
	limits_from_config(&u->anon, &cfg->limit_anonymous);
	if (cfg->n_limit_overrides) {
		u->over = calloc(cfg->n_limit_overrides, sizeof(*u->over));
		if (!u->over) {
			free(u);
			return NULL;
		}
		memcpy(u->over, cfg->limit_overrides,
		       cfg->n_limit_overrides * sizeof(*u->over));
		u->n_over = cfg->n_limit_overrides;
		qsort(u->over, u->n_over, sizeof(*u->over), limits_cmp_limit);
	}
	return u;
}

static void limits_u_limit(struct limits *l, const struct limits_uentry *e,
			   struct mtlsgw_limit *out)
{
	struct config_limit probe, *hit = NULL;
	struct limits_uset *u = atomic_load(&l->uset);

	if (u->n_over && !e->anonymous) {
		snprintf(probe.key, sizeof(probe.key), "%s", e->id.name);
		hit = bsearch(&probe, u->over, u->n_over, sizeof(*u->over),
			      limits_cmp_limit);
	}
	if (hit)
		limits_from_config(out, hit);
	else
		*out = e->anonymous ? u->anon : u->def;
}

static unsigned limits_hash(const struct mtlsgw_id *id)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < sizeof(id->name) && id->name[i]; i++)
		h = (h ^ (unsigned char)id->name[i]) * 16777619u;
	return h;
}

/* 1 if dropping E gives its client nothing: no open connection and its
 * buckets full again (a fresh entry would be the same). */
static int limits_u_idle(struct limits *l, const struct limits_uentry *e,
			 uint64_t now)
{
	struct mtlsgw_limit lim;

	if (e->active)
		return 0;
	limits_u_limit(l, e, &lim);
	return !limiter_wait_ns(&e->conn, lim.conn_rate, lim.conn_burst,
				limiter_burst(lim.conn_rate, lim.conn_burst),
				now) &&
	       !limiter_wait_ns(&e->req, lim.req_rate, lim.req_burst,
				limiter_burst(lim.req_rate, lim.req_burst),
				now);
}

/* The entry for B's identity, created if missing; its stripe locked.
 * NULL (ENOSPC) when its chain is full of entries that are not idle. */
static struct limits_uentry *limits_u_get(struct limits *l,
					  const struct mtlsgw_bind *b,
					  pthread_mutex_t **lock)
{
	unsigned c = limits_hash(&b->id) % LIMITS_U_CHAINS;
	struct limits_uentry *e, **victim = NULL, **pp;
	uint64_t now = limits_now_ns();
	size_t n = 0;

	*lock = &l->stripes[c % LIMITS_U_STRIPES];
	pthread_mutex_lock(*lock);
	for (pp = &l->chains[c]; *pp; pp = &(*pp)->next, n++) {
		e = *pp;
		if (!memcmp(&e->id, &b->id, sizeof(e->id)))
			return e;
		if ((!victim || e->st.last_seen < (*victim)->st.last_seen) &&
		    limits_u_idle(l, e, now))
			victim = pp;
	}
	if (n >= LIMITS_U_CHAIN_MAX) {
		if (!victim) {
			pthread_mutex_unlock(*lock);
			errno = ENOSPC;
			return NULL;
		}
		e = *victim;
		*victim = e->next;
		free(e);
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(*lock);
		return NULL;
	}
	e->id = b->id;
	e->anonymous = !!(b->flags & MTLSGW_CONN_ANONYMOUS);
	if (!e->anonymous)
		memcpy(e->st.fingerprint, b->id.name,
		       sizeof(e->st.fingerprint));
	memcpy(e->st.subject, b->subject, sizeof(e->st.subject));
	e->st.subject[sizeof(e->st.subject) - 1] = 0;
	e->next = l->chains[c];
	l->chains[c] = e;
	return e;
}

static pthread_mutex_t *limits_u_lock_of(struct limits *l,
					 const struct limits_uentry *e)
{
	return &l->stripes[(limits_hash(&e->id) % LIMITS_U_CHAINS) %
			   LIMITS_U_STRIPES];
}

static void limits_u_release(struct limits *l, int fd)
{
	struct limits_uentry *e;
	pthread_mutex_t *lock;

	if (fd < 0 || (size_t)fd >= l->n_fds)
		return;
	e = atomic_exchange(&l->fds[fd], NULL);
	if (!e)
		return;
	lock = limits_u_lock_of(l, e);
	pthread_mutex_lock(lock);
	if (e->active)
		e->active--;
	e->st.conns_active = e->active;
	e->st.last_seen = limits_now_seconds();
	pthread_mutex_unlock(lock);
}

static int limits_u_admit(struct limits *l, int fd, const struct mtlsgw_bind *b,
			  unsigned *retry_after_s)
{
	struct limits_uentry *e, *expected = NULL;
	struct mtlsgw_limit lim;
	pthread_mutex_t *lock;
	uint64_t now = limits_now_ns();
	int refused = 0;

	if (fd < 0 || (size_t)fd >= l->n_fds) {
		errno = EBADF;
		return -1;
	}
	/* A descriptor number is reused only after a close: an entry still
	 * there means limits_release() was missed for the old connection. */
	limits_u_release(l, fd);
	e = limits_u_get(l, b, &lock);
	if (!e) {
		/* No room for the identity: refuse, never admit unlimited. */
		log_ratelimited(&l->full_log, LOG_LVL_WARN,
				"limits: no limiter state for %s (%s): "
				"refusing the connection",
				b->id.name, strerror(errno));
		*retry_after_s = MTLSGW_RETRY_AFTER_CONNS;
		return 2;
	}
	limits_u_limit(l, e, &lim);
	if (lim.max_conns && e->active >= lim.max_conns) {
		refused = 1;
		*retry_after_s = MTLSGW_RETRY_AFTER_CONNS;
	} else if (!limiter_take(&e->conn, lim.conn_rate, lim.conn_burst, 1,
				 now)) {
		refused = 1;
		*retry_after_s = limits_ns_to_retry(limiter_wait_ns(
			&e->conn, lim.conn_rate, lim.conn_burst, 1, now));
	}
	e->st.last_seen = limits_now_seconds();
	if (refused) {
		e->st.conns_rejected++;
	} else {
		e->active++;
		e->st.conns_active = e->active;
		e->st.conns_total++;
	}
	pthread_mutex_unlock(lock);
	if (!refused &&
	    !atomic_compare_exchange_strong(&l->fds[fd], &expected, e)) {
		/* Another thread bound this fd meanwhile: undo ours. */
		pthread_mutex_lock(lock);
		e->active--;
		e->st.conns_active = e->active;
		e->st.conns_total--;
		pthread_mutex_unlock(lock);
	}
	return refused;
}

static int limits_u_request(struct limits *l, int fd, unsigned *retry_after_s)
{
	struct limits_uentry *e;
	struct mtlsgw_limit lim;
	pthread_mutex_t *lock;
	uint64_t now = limits_now_ns();
	int ok;

	if (fd < 0 || (size_t)fd >= l->n_fds ||
	    !(e = atomic_load(&l->fds[fd]))) {
		errno = ENOENT;
		return -1;
	}
	limits_u_limit(l, e, &lim);
	lock = limits_u_lock_of(l, e);
	pthread_mutex_lock(lock);
	ok = limiter_take(&e->req, lim.req_rate, lim.req_burst, 1, now);
	if (ok)
		e->st.requests++;
	else {
		e->st.requests_rejected++;
		*retry_after_s = limits_ns_to_retry(limiter_wait_ns(
			&e->req, lim.req_rate, lim.req_burst, 1, now));
	}
	e->st.last_seen = limits_now_seconds();
	pthread_mutex_unlock(lock);
	return !ok;
}

static int limits_u_open(struct limits *l, const struct config *cfg)
{
	struct rlimit rl;
	size_t i;

	l->uset = limits_uset_new(cfg);
	if (!l->uset)
		return -1;
	l->n_fds = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > l->n_fds)
		l->n_fds = rl.rlim_cur;
	if (l->n_fds > LIMITS_U_MAX_FDS)
		l->n_fds = LIMITS_U_MAX_FDS;
	l->fds = calloc(l->n_fds, sizeof(*l->fds));
	if (!l->fds)
		return -1;
	for (i = 0; i < LIMITS_U_STRIPES; i++)
		pthread_mutex_init(&l->stripes[i], NULL);
	return 0;
}

/* ---- interface */

struct limits *limits_new(const struct config *cfg)
{
	struct limits *l;
	char why[512] = "";
	const char *inst = cfg->bpf_instance ? cfg->bpf_instance
					     : CONFIG_DEFAULT_BPF_INSTANCE;

	l = calloc(1, sizeof(*l));
	if (!l) {
		log_error("limits: out of memory");
		return NULL;
	}
	l->fd_stats = l->fd_limits = l->fd_buckets = l->fd_conns = -1;
	l->gc_sock = -1;
	atomic_store(&l->gc_idle_ns, LIMITS_GC_IDLE_NS);
	atomic_store(&l->prefix_v4, cfg->anonymous_prefix_v4);
	atomic_store(&l->prefix_v6, cfg->anonymous_prefix_v6);
	snprintf(l->instance, sizeof(l->instance), "%s", inst);
	l->cfg_mode = cfg->bpf_mode;

	if (cfg->bpf_mode == CONFIG_BPF_OFF) {
		l->mode = LIMITS_OFF;
		log_info("limits: off ([bpf] mode = off): no per-client "
			 "counters or limits");
		return l;
	}
	if (!limits_instance_ok(inst))
		snprintf(why, sizeof(why), "bad instance name '%s'", inst);
	else if (limits_bpf_open(l, cfg, why, sizeof(why)) == 0) {
		l->mode = LIMITS_BPF;
		log_info("limits: bpf: enforced in the kernel; programs "
			 "attached to cgroup %s, maps pinned in %s",
			 l->cgroup, l->pin_dir);
		return l;
	}
	if (strstr(why, strerror(EPERM)) || strstr(why, strerror(EACCES)))
		limits_why(why + strlen(why), sizeof(why) - strlen(why),
			   " (BPF needs root, or CAP_BPF, CAP_NET_ADMIN and "
			   "CAP_SYS_ADMIN)");
	if (cfg->bpf_mode == CONFIG_BPF_REQUIRED) {
		log_error("limits: [bpf] mode = required, but BPF is "
			  "unavailable: %s",
			  why);
		limits_free(l);
		return NULL;
	}
	if (limits_u_open(l, cfg) < 0) {
		log_error("limits: out of memory");
		limits_free(l);
		return NULL;
	}
	l->mode = LIMITS_USERSPACE;
	log_warn("limits: BPF UNAVAILABLE (%s): limits are enforced in "
		 "USERSPACE instead%s; no counters in %s/%s",
		 why,
		 limits_has_bandwidth(cfg)
			 ? ", bandwidth_in/bandwidth_out are NOT enforced"
			 : "",
		 MTLSGW_PIN_ROOT, l->instance);
	return l;
}

int limits_admit(struct limits *l, int tcp_fd, const struct identity *id,
		 const struct sockaddr *peer, socklen_t peer_len,
		 unsigned *retry_after_s)
{
	struct mtlsgw_bind b;
	unsigned dummy;

	if (!retry_after_s)
		retry_after_s = &dummy;
	*retry_after_s = 0;
	if (!l || l->mode == LIMITS_OFF)
		return 0;
	limits_identity(l, id, peer, peer_len, &b);
	if (l->mode == LIMITS_BPF)
		return limits_bpf_admit(l, tcp_fd, &b, retry_after_s);
	return limits_u_admit(l, tcp_fd, &b, retry_after_s);
}

int limits_request(struct limits *l, int tcp_fd, unsigned *retry_after_s)
{
	unsigned dummy;

	if (!retry_after_s)
		retry_after_s = &dummy;
	*retry_after_s = 0;
	if (!l || l->mode == LIMITS_OFF)
		return 0;
	if (l->mode == LIMITS_BPF)
		return limits_bpf_request(l, tcp_fd, retry_after_s);
	return limits_u_request(l, tcp_fd, retry_after_s);
}

void limits_release(struct limits *l, int tcp_fd)
{
	if (l && l->mode == LIMITS_USERSPACE)
		limits_u_release(l, tcp_fd);
}

int limits_reload(struct limits *l, const struct config *cfg)
{
	struct limits_uset *u, *old;

	if (!l || l->mode == LIMITS_OFF)
		return 0;
	if (cfg->bpf_mode != l->cfg_mode ||
	    strcmp(cfg->bpf_instance ? cfg->bpf_instance
				     : CONFIG_DEFAULT_BPF_INSTANCE,
		   l->instance) != 0)
		log_warn("limits: [bpf] changes apply at the next restart");
	atomic_store(&l->prefix_v4, cfg->anonymous_prefix_v4);
	atomic_store(&l->prefix_v6, cfg->anonymous_prefix_v6);
	if (l->mode == LIMITS_BPF) {
		if (limits_bpf_sync(l, cfg) < 0) {
			log_error("limits: reload: write %s/cert_limits: %s",
				  l->pin_dir, strerror(errno));
			return -1;
		}
		log_info("limits: reloaded %zu override(s) into %s/cert_limits",
			 cfg->n_limit_overrides, l->pin_dir);
		return 0;
	}
	u = limits_uset_new(cfg);
	if (!u) {
		log_error("limits: reload: out of memory");
		return -1;
	}
	old = atomic_exchange(&l->uset, u);
	old->retired_next = l->retired;
	l->retired = old;
	log_info("limits: reloaded (userspace, %zu override(s))",
		 cfg->n_limit_overrides);
	return 0;
}

int limits_bytes_out(struct limits *l, const char *name, uint64_t *bytes)
{
	struct mtlsgw_id key;

	*bytes = 0;
	if (!l || l->mode != LIMITS_BPF) {
		errno = ENOTSUP;
		return -1;
	}
	limits_key(&key, name);
	return limits_bpf_bytes_out(l, &key, bytes);
}

const char *limits_mode_name(const struct limits *l)
{
	if (!l)
		return "off";
	switch (l->mode) {
	case LIMITS_BPF:
		return "bpf";
	case LIMITS_USERSPACE:
		return "userspace";
	default:
		return "off";
	}
}

void limits_free(struct limits *l)
{
	struct limits_uentry *e, *next;
	size_t i;

	if (!l)
		return;
	limits_bpf_close(l);
	for (i = 0; i < LIMITS_U_CHAINS; i++) {
		for (e = l->chains[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(l->fds);
	limits_uset_free(l->uset);
	limits_uset_free(l->retired);
	if (l->mode == LIMITS_USERSPACE)
		for (i = 0; i < LIMITS_U_STRIPES; i++)
			pthread_mutex_destroy(&l->stripes[i]);
	free(l);
}

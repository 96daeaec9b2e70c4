// SPDX-License-Identifier: MIT
/*
 * The fleet's Redis thread (hiredis 0.14, blocking calls with a timeout,
 * on this thread only: a slow or absent Redis slows nothing else).
 *
 * Every sync_interval: take the deltas of the identities active since the
 * last sync, push them and read the fleet totals back with one Lua call
 * per identity, pipelined FLEET_BATCH at a time (one round trip each),
 * together with the block list. Between syncs the thread waits on its
 * Pub/Sub connection, so a block published by mtlsgw-ctl starts a sync at
 * once. On an error it drops both connections and reconnects with
 * exponential back-off; the deltas it could not push are pushed later.
 *
 * One primary (directly, or found through Sentinel), or a Redis Cluster
 * ([fleet] cluster = yes): each identity's script goes to its slot's
 * primary, every node's pipeline is written before any is read; MOVED,
 * ASK and node failures in fleet_sync_cluster.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "fleet_cluster.h"
#include "fleet_private.h"
#include "fleet_redis.h"
#include "log.h"
#include "ready.h"

/* KEYS[1] P{FP}:win, KEYS[2] P{FP}:hosts; ARGV host, requests delta,
 * open connections, connections total, requests total, ms this entry
 * counts for, hosts key ttl ms, bytes out delta, bytes out total.
 * Returns {window requests, fleet open conns, hosts, ms left, Redis ms,
 * window bytes out}. */
static const char fleet_sync_lua[] =
	"local t = redis.call('TIME')\n"
	"local sec = tonumber(t[1])\n"
	"local ms = sec * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local h = redis.call('HMGET', KEYS[1], 'w', 'n', 'b')\n"
	"local n, b = 0, 0\n"
	"if tonumber(h[1] or '0') == sec then\n"
	"  n = tonumber(h[2] or '0')\n"
	"  b = tonumber(h[3] or '0')\n"
	"end\n"
	"n = n + tonumber(ARGV[2])\n"
	"b = b + tonumber(ARGV[8])\n"
	"redis.call('HSET', KEYS[1], 'w', sec, 'n', n, 'b', b)\n"
	"redis.call('PEXPIRE', KEYS[1], 5000)\n"
	"redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ' ' .. ARGV[4] .. ' "
	"' .. ARGV[5] .. ' ' .. (ms + tonumber(ARGV[6])) .. ' ' .. ARGV[9])\n"
	"local all = redis.call('HGETALL', KEYS[2])\n"
	"local act, hosts = 0, 0\n"
	"for i = 1, #all, 2 do\n"
	"  local a, ts = string.match(all[i + 1], '^(%d+) %d+ %d+ (%d+)')\n"
	"  if a and tonumber(ts) >= ms then\n"
	"    act = act + tonumber(a)\n"
	"    hosts = hosts + 1\n"
	"  else\n"
	"    redis.call('HDEL', KEYS[2], all[i])\n"
	"  end\n"
	"end\n"
	"redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))\n"
	"return {n, act, hosts, 1000 - (ms % 1000), ms, b}\n";

struct fleet_item {
	struct fleet_entry *e;
	uint64_t dreq, conns_total, req_total;
	uint64_t dbytes, bytes_total;
	uint32_t active;
	/* Found at a fleet limit: until when (Redis ms), 0 if not. */
	uint64_t tight_conns, tight_reqs;
};

static void fleet_sync_drop(struct fleet_conn *fc)
{
	if (fc->cl) /* C too; the nodes' state stays for the next try */
		fleet_cluster_disconnect(fc->cl);
	else if (fc->c)
		redisFree(fc->c);
	if (fc->sub)
		redisFree(fc->sub);
	fc->c = fc->sub = NULL;
}

/* SCRIPT LOAD on C (at WHERE): 0, or -1 with ERR. */
int fleet_sync_load(struct fleet_conn *fc, redisContext *c, const char *where,
		    char *err, size_t n)
{
	redisReply *r = redisCommand(c, "SCRIPT LOAD %s", fleet_sync_lua);

	if (!r || r->type != REDIS_REPLY_STRING) {
		snprintf(err, n, "%s: SCRIPT LOAD: %s", where,
			 r && r->type == REDIS_REPLY_ERROR ? r->str
							   : c->errstr);
		if (r)
			freeReplyObject(r);
		return -1;
	}
	snprintf(fc->sha, sizeof(fc->sha), "%s", r->str);
	freeReplyObject(r);
	return 0;
}

static int fleet_sync_connect(struct fleet *f, struct fleet_conn *fc, char *err,
			      size_t n)
{
	char channel[128];
	redisReply *r = NULL;

	if (f->cluster) {
		if (!fc->cl)
			fc->cl = fleet_cluster_new(f->redis, f->n_redis,
						   f->password, f->timeout_ms);
		if (!fc->cl) {
			snprintf(err, n, "out of memory");
			return -1;
		}
		if (fleet_sync_cluster_prepare(f, fc, err, n) < 0)
			goto bad_noreply;
	} else {
		fc->c = fleet_redis_primary(
			f->redis, f->n_redis, f->sentinel_master, f->password,
			f->timeout_ms, fc->where, sizeof(fc->where), err, n);
		if (!fc->c)
			return -1;
		if (fleet_sync_load(fc, fc->c, fc->where, err, n) < 0)
			goto bad_noreply;
	}
	/* In a Cluster, PUBLISH reaches the subscribers of every node. */
	fc->sub =
		fleet_redis_dial(fc->where, f->password, f->timeout_ms, err, n);
	if (!fc->sub)
		goto bad_noreply;
	snprintf(channel, sizeof(channel), "%s{blocks}:events", f->prefix);
	r = redisCommand(fc->sub, "SUBSCRIBE %s", channel);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, n, "%s: SUBSCRIBE: %s", fc->where,
			 r && r->type == REDIS_REPLY_ERROR ? r->str
							   : fc->sub->errstr);
		goto bad;
	}
	freeReplyObject(r);
	return 0;
bad:
	if (r)
		freeReplyObject(r);
bad_noreply:
	fleet_sync_drop(fc);
	return -1;
}

/* Take the deltas of every identity active since the last sync (or within
 * the hold time); forget identities idle for FLEET_IDLE_MS. */
static size_t fleet_sync_snapshot(struct fleet *f, struct fleet_conn *fc)
{
	struct fleet_entry *e, **pp;
	uint64_t now = fleet_now_ms();
	size_t c, n = 0;
	pthread_mutex_t *lock;

	for (c = 0; c < FLEET_CHAINS; c++) {
		if (!f->chains[c])
			continue;
		lock = &f->stripes[c % FLEET_STRIPES];
		pthread_mutex_lock(lock);
		for (pp = &f->chains[c]; (e = *pp);) {
			if (!e->active && !e->d_req && !e->d_bytes &&
			    now - e->last_ms > FLEET_IDLE_MS) {
				*pp = e->next;
				free(e);
				atomic_fetch_sub(&f->n_entries, 1);
				continue;
			}
			pp = &e->next;
			/* Active now, or recently (so that the view this
			 * gateway decides on stays fresh), or a close to tell.
			 */
			if (!e->active && !e->d_req &&
			    e->active == e->v_my_active &&
			    now - e->last_ms > fleet_view_ttl(f))
				continue;
			if (n == fc->cap) {
				size_t cap = fc->cap ? 2 * fc->cap : 1024;
				struct fleet_item *it =
					realloc(fc->items, cap * sizeof(*it));

				if (!it)
					break;
				fc->items = it;
				fc->cap = cap;
			}
			fc->items[n] = (struct fleet_item){
				.e = e,
				.dreq = e->d_req,
				.conns_total = e->conns_total,
				.req_total = e->req_total,
				.active = e->active,
			};
			e->inflight = e->d_req;
			e->d_req = 0;
			n++;
		}
		pthread_mutex_unlock(lock);
	}
	/* Their bytes, from cert_stats: no stripe lock held (syscalls). */
	for (c = 0; c < n; c++) {
		e = fc->items[c].e;
		fleet_bytes_take(f, e);
		fc->items[c].dbytes = e->d_bytes;
		fc->items[c].bytes_total = e->bytes_total + e->d_bytes;
	}
	return n;
}

/* Give back the deltas of items FROM.. that were not confirmed. */
static void fleet_sync_restore(struct fleet *f, struct fleet_conn *fc,
			       size_t from, size_t n)
{
	for (; from < n; from++)
		fleet_sync_unsynced(f, fc, from, false);
}

/* The connection IT's keys live on: the one, or in a cluster its slot's
 * primary (NODE; NULL while that node is unreachable). */
redisContext *fleet_sync_ctx(struct fleet *f, struct fleet_conn *fc, size_t i,
			     int *node)
{
	struct fleet_entry *e = fc->items[i].e;
	char key[160];

	*node = -1;
	if (!fc->cl)
		return fc->c;
	if (!e->slot1) { /* once per identity: CRC16 is not free */
		snprintf(key, sizeof(key), "%s{%s}:win", f->prefix, e->fp);
		e->slot1 =
			(uint16_t)(1 + fleet_cluster_keyslot(key, strlen(key)));
	}
	*node = fleet_cluster_node_of_slot(fc->cl, e->slot1 - 1u);
	if (*node < 0) /* no primary serves it: ask again next round */
		fleet_cluster_set_stale(fc->cl);
	return fleet_cluster_ctx(fc->cl, *node);
}

/* Item I was not synced: its deltas go with the next sync; DOWN: its
 * node is unreachable (the hold time starts). */
void fleet_sync_unsynced(struct fleet *f, struct fleet_conn *fc, size_t i,
			 bool down)
{
	struct fleet_entry *e = fc->items[i].e;
	pthread_mutex_t *lock = fleet_lock_of(f, e->fp);

	fc->partial = true;
	pthread_mutex_lock(lock);
	e->d_req += e->inflight;
	e->inflight = 0;
	if (down && !e->down_ms)
		e->down_ms = fleet_now_ms();
	pthread_mutex_unlock(lock);
}

static void fleet_sync_append(struct fleet *f, struct fleet_conn *fc,
			      redisContext *c, const struct fleet_item *it)
{
	char k1[160], k2[160], a[7][24];
	const char *argv[14];

	snprintf(k1, sizeof(k1), "%s{%s}:win", f->prefix, it->e->fp);
	snprintf(k2, sizeof(k2), "%s{%s}:hosts", f->prefix, it->e->fp);
	snprintf(a[0], sizeof(a[0]), "%llu", (unsigned long long)it->dreq);
	snprintf(a[1], sizeof(a[1]), "%u", it->active);
	snprintf(a[2], sizeof(a[2]), "%llu",
		 (unsigned long long)it->conns_total);
	snprintf(a[3], sizeof(a[3]), "%llu", (unsigned long long)it->req_total);
	snprintf(a[4], sizeof(a[4]), "%u", fleet_view_ttl(f));
	snprintf(a[5], sizeof(a[5]), "%llu", (unsigned long long)it->dbytes);
	snprintf(a[6], sizeof(a[6]), "%llu",
		 (unsigned long long)it->bytes_total);
	argv[0] = "EVALSHA";
	argv[1] = fc->sha;
	argv[2] = "2";
	argv[3] = k1;
	argv[4] = k2;
	argv[5] = f->host_id;
	argv[6] = a[0];
	argv[7] = a[1];
	argv[8] = a[2];
	argv[9] = a[3];
	argv[10] = a[4];
	argv[11] = FLEET_HOSTS_TTL_STR;
	argv[12] = a[5];
	argv[13] = a[6];
	redisAppendCommandArgv(c, 14, argv, NULL);
}

/* "EXPIRES CREATED REASON": blocked unless EXPIRES is past NOW. */
static int fleet_sync_blocks(struct fleet *f, redisReply *list, redisReply *t)
{
	struct fleet_blocks *b;
	long long now, exp;
	size_t i;

	if (list->type != REDIS_REPLY_ARRAY || t->type != REDIS_REPLY_ARRAY ||
	    t->elements < 1 || t->element[0]->type != REDIS_REPLY_STRING)
		return -1;
	now = atoll(t->element[0]->str);
	b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	b->fp = calloc(list->elements / 2 + 1, sizeof(*b->fp));
	if (!b->fp) {
		free(b);
		return -1;
	}
	for (i = 0; i + 1 < list->elements && b->n < FLEET_MAX_BLOCKS; i += 2) {
		redisReply *k = list->element[i], *v = list->element[i + 1];

		if (k->type != REDIS_REPLY_STRING || k->len != FLEET_FP_LEN ||
		    v->type != REDIS_REPLY_STRING)
			continue;
		exp = atoll(v->str);
		if (exp && exp <= now)
			continue;
		memcpy(b->fp[b->n], k->str, FLEET_FP_LEN);
		b->fp[b->n][FLEET_FP_LEN] = 0;
		b->n++;
	}
	fleet_set_blocks(f, b);
	return 0;
}

static void fleet_sync_apply(struct fleet *f, struct fleet_item *it,
			     const redisReply *r, uint64_t now)
{
	struct fleet_limit lim = fleet_limit_of(f, it->e->fp, NULL);
	uint64_t rms = (uint64_t)r->element[4]->integer;
	pthread_mutex_t *lock;
	struct fleet_entry *e = it->e;
	unsigned hosts;

	it->tight_conns = it->tight_reqs = 0;
	if (lim.max_conns && (uint64_t)r->element[1]->integer >= lim.max_conns)
		it->tight_conns = rms + fleet_view_ttl(f);
	if ((lim.req_rate &&
	     (uint64_t)r->element[0]->integer >= lim.req_rate) ||
	    (lim.bandwidth_out &&
	     (uint64_t)r->element[5]->integer >= lim.bandwidth_out))
		it->tight_reqs = rms + (uint64_t)r->element[3]->integer;
	/* Pushed: the sync thread's own fields, no lock. */
	e->d_bytes -= it->dbytes;
	e->bytes_total += it->dbytes;

	lock = fleet_lock_of(f, e->fp);
	pthread_mutex_lock(lock);
	e->inflight = 0;
	e->down_ms = 0;
	e->v_req = (uint64_t)r->element[0]->integer;
	e->v_active = (uint64_t)r->element[1]->integer;
	e->v_bytes = (uint64_t)r->element[5]->integer;
	e->v_hosts = (uint32_t)r->element[2]->integer;
	e->v_win_end_ms = now + (uint64_t)r->element[3]->integer;
	e->v_my_active = it->active;
	e->v_ms = now;
	hosts = e->v_hosts;
	pthread_mutex_unlock(lock);
	if (hosts > atomic_load(&f->hosts_seen))
		atomic_store(&f->hosts_seen, hosts);
}

/* Append the marks of the identities found at a limit, the expiry and
 * read of both tight sets (on CI, the {index} node), the block list and
 * TIME (on fc->c); returns how many replies to read (the last two, from
 * fc->c: block list, TIME). */
static size_t fleet_sync_tail(struct fleet *f, struct fleet_conn *fc,
			      redisContext *ci, size_t n, uint64_t rms)
{
	char kc[160], kr[160], kb[160];
	size_t i, k = 0;

	snprintf(kc, sizeof(kc), "%s{index}:tight_conns", f->prefix);
	snprintf(kr, sizeof(kr), "%s{index}:tight_reqs", f->prefix);
	snprintf(kb, sizeof(kb), "%s{blocks}:list", f->prefix);
	for (i = 0; i < n; i++) {
		struct fleet_item *it = &fc->items[i];

		if (it->tight_conns) {
			redisAppendCommand(ci, "ZADD %s GT %llu %s", kc,
					   (unsigned long long)it->tight_conns,
					   it->e->fp);
			k++;
		}
		if (it->tight_reqs) {
			redisAppendCommand(ci, "ZADD %s GT %llu %s", kr,
					   (unsigned long long)it->tight_reqs,
					   it->e->fp);
			k++;
		}
	}
	/* Past entries go (RMS: Redis time of this sync, 0 if unknown). */
	redisAppendCommand(ci, "ZREMRANGEBYSCORE %s -inf (%llu", kc,
			   (unsigned long long)rms);
	redisAppendCommand(ci, "ZREMRANGEBYSCORE %s -inf (%llu", kr,
			   (unsigned long long)rms);
	redisAppendCommand(ci, "ZRANGE %s 0 %d WITHSCORES", kc,
			   FLEET_MAX_BLOCKS - 1);
	redisAppendCommand(ci, "ZRANGE %s 0 %d WITHSCORES", kr,
			   FLEET_MAX_BLOCKS - 1);
	redisAppendCommand(fc->c, "HGETALL %s", kb);
	redisAppendCommand(fc->c, "TIME");
	return k + 6;
}

static struct fleet_tight *fleet_sync_tight_one(const redisReply *z,
						long long rnow, uint64_t now)
{
	struct fleet_tight *t;
	long long until;
	size_t i;

	if (!z || z->type != REDIS_REPLY_ARRAY)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->it = calloc(z->elements / 2 + 1, sizeof(*t->it));
	if (!t->it) {
		free(t);
		return NULL;
	}
	for (i = 0; i + 1 < z->elements; i += 2) {
		const redisReply *m = z->element[i], *sc = z->element[i + 1];

		if (m->type != REDIS_REPLY_STRING || m->len != FLEET_FP_LEN ||
		    sc->type != REDIS_REPLY_STRING)
			continue;
		until = atoll(sc->str);
		if (until <= rnow)
			continue;
		memcpy(t->it[t->n].fp, m->str, FLEET_FP_LEN);
		t->it[t->n].fp[FLEET_FP_LEN] = 0;
		t->it[t->n].until_ms = now + (uint64_t)(until - rnow);
		t->n++;
	}
	return t;
}

/* TC, TR: ZRANGE replies; T: TIME. */
static void fleet_sync_tight(struct fleet *f, const redisReply *tc,
			     const redisReply *tr, const redisReply *t)
{
	long long rnow;

	if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2 ||
	    t->element[0]->type != REDIS_REPLY_STRING ||
	    t->element[1]->type != REDIS_REPLY_STRING)
		return;
	rnow = atoll(t->element[0]->str) * 1000 +
	       atoll(t->element[1]->str) / 1000;
	fleet_set_tight(f, fleet_sync_tight_one(tc, rnow, fleet_now_ms()),
			fleet_sync_tight_one(tr, rnow, fleet_now_ms()));
}

static bool fleet_sync_reply_ok(const redisReply *r)
{
	size_t i;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 6)
		return false;
	for (i = 0; i < 6; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER ||
		    r->element[i]->integer < 0)
			return false;
	return true;
}

void fleet_sync_send(struct fleet *f, struct fleet_conn *fc, redisContext *c,
		     size_t i)
{
	fleet_sync_append(f, fc, c, &fc->items[i]);
}

bool fleet_sync_done(struct fleet *f, struct fleet_conn *fc, size_t i,
		     const redisReply *r, uint64_t *rms)
{
	if (!fleet_sync_reply_ok(r))
		return false;
	fleet_sync_apply(f, &fc->items[i], r, fleet_now_ms());
	if ((uint64_t)r->element[4]->integer > *rms)
		*rms = (uint64_t)r->element[4]->integer;
	return true;
}

/* One sync: 0, or -1 with ERR set (then reconnect). */
static int fleet_sync_round(struct fleet *f, struct fleet_conn *fc, char *err,
			    size_t en)
{
	size_t n = fleet_sync_snapshot(f, fc), done = 0, i, end, tails, nr;
	redisReply *r = NULL, *list = NULL, *tc = NULL, *tr = NULL;
	redisContext *c, *ci = fc->c;
	uint64_t rms = 0;
	char key[160];
	int node;

	fc->partial = false;
	if (fc->cl && fleet_sync_cluster_prepare(f, fc, err, en) < 0) {
		fleet_sync_restore(f, fc, 0, n);
		return -1;
	}
	do {
		if (atomic_load(&f->stop)) { /* shutting down: do not wait */
			fleet_sync_restore(f, fc, done, n);
			snprintf(err, en, "stopping");
			return -1;
		}
		end = n - done > FLEET_BATCH ? done + FLEET_BATCH : n;
		for (i = done; i < end; i++)
			if ((c = fleet_sync_ctx(f, fc, i, &node)))
				fleet_sync_append(f, fc, c, &fc->items[i]);
		if (fc->cl) /* every node at work before any is read */
			fleet_cluster_flush(fc->cl);
		for (i = done, nr = 0; i < end; i++) {
			c = fleet_sync_ctx(f, fc, i, &node);
			if (!c) { /* cluster: its node is unreachable */
				fleet_sync_unsynced(f, fc, i, true);
				continue;
			}
			if (redisGetReply(c, (void **)&r) != REDIS_OK) {
				if (!fc->cl)
					goto io;
				fleet_sync_node_lost(f, fc, node, c);
				fleet_sync_unsynced(f, fc, i, true);
				continue;
			}
			if ((fc->cl &&
			     fleet_sync_redirected(f, fc, r, i, &nr)) ||
			    fleet_sync_done(f, fc, i, r, &rms)) {
				freeReplyObject(r);
				continue;
			}
			if (fc->cl) {
				/* e.g. TRYAGAIN while its slot migrates */
				log_debug("fleet: sha256:%s: %s",
					  fc->items[i].e->fp,
					  r->type == REDIS_REPLY_ERROR
						  ? r->str
						  : "(not 6 integers)");
				freeReplyObject(r);
				fleet_sync_unsynced(f, fc, i, false);
				continue;
			}
			snprintf(err, en, "%s: unexpected reply: %s", fc->where,
				 r && r->type == REDIS_REPLY_ERROR
					 ? r->str
					 : "(not 6 integers)");
			freeReplyObject(r);
			fleet_sync_restore(f, fc, i, n);
			return -1;
		}
		if (nr)
			fleet_sync_retry(f, fc, nr, &rms);
		done = end;
	} while (done < n);
	if (fc->cl) {
		/* A refreshed map, or a node lost in the round (its
		 * connection freed), may have changed both. */
		snprintf(key, sizeof(key), "%s{index}:tight_conns", f->prefix);
		ci = fleet_cluster_ctx(fc->cl,
				       fleet_cluster_node_of(fc->cl, key));
		if (!ci || !fleet_sync_cluster_blocks(f, fc)) {
			snprintf(err, en, "cluster node serving {%s} is down",
				 ci ? "blocks" : "index");
			goto bad;
		}
	}
	/* Then one more round trip: marks, the sets, the block list. */
	tails = fleet_sync_tail(f, fc, ci, n, rms);
	if (fc->cl)
		fleet_cluster_flush(fc->cl);
	for (i = 0; i + 2 < tails; i++) {
		if (redisGetReply(ci, (void **)&r) != REDIS_OK)
			goto io;
		if (i == tails - 4)
			tc = r; /* ZRANGE tight_conns */
		else if (i == tails - 3)
			tr = r; /* ZRANGE tight_reqs */
		else
			freeReplyObject(r);
	}
	if (redisGetReply(fc->c, (void **)&list) != REDIS_OK)
		goto io;
	if (redisGetReply(fc->c, (void **)&r) != REDIS_OK) {
		freeReplyObject(list);
		goto io;
	}
	if (fc->cl) /* the {index} or {blocks} slot moved or is moving */
		list = fleet_sync_cluster_tail(f, fc, tc, list);
	fleet_sync_tight(f, tc, tr, r);
	if (!list || fleet_sync_blocks(f, list, r) < 0) {
		snprintf(err, en, "%s: cannot read the block list", fc->where);
		if (list)
			freeReplyObject(list);
		freeReplyObject(r);
		r = NULL;
		goto bad;
	}
	freeReplyObject(list);
	freeReplyObject(r);
	if (tc)
		freeReplyObject(tc);
	if (tr)
		freeReplyObject(tr);
	if (fc->partial) /* some identities wait for their node */
		fleet_metric_sync(0, false);
	fleet_metric_connected(true, atomic_load(&f->n_entries), 0);
	return 0;
io:
	snprintf(err, en, "%s: %s", fc->where,
		 fc->c->errstr[0] ? fc->c->errstr
		 : ci->errstr[0]  ? ci->errstr
				  : "connection lost");
	fleet_sync_restore(f, fc, done, n);
bad:
	if (tc)
		freeReplyObject(tc);
	if (tr)
		freeReplyObject(tr);
	return -1;
}

static const char *fleet_sync_fail_text(struct fleet *f)
{
	int fail;

	fleet_limit_of(f, "", &fail);
	return fail == CONFIG_FLEET_FAIL_LOCAL
		       ? "local only (fleet_fail = local)"
		       : "each gateway's share of them (fleet_fail = static)";
}

/* After a failed connect or sync: one warning per outage, back-off. */
static void fleet_sync_down(struct fleet *f, struct fleet_conn *fc,
			    const char *err)
{
	uint64_t now = fleet_now_ms();

	fleet_sync_drop(fc);
	fleet_metric_connected(false, atomic_load(&f->n_entries), 0);
	if (f->required)
		ready_set_blocker(READY_FLEET, true);
	if (atomic_load(&f->state) == FLEET_CONNECTED)
		atomic_store(&f->state, FLEET_HOLDING);
	if (!fc->warned_down) {
		fc->warned_down = true;
		log_warn(
			"fleet: redis unreachable (%s): serving goes on; fleet "
			"limits keep their last state for %u ms, then become "
			"%s; reconnecting with back-off",
			err, f->hold_ms, fleet_sync_fail_text(f));
	} else {
		log_debug("fleet: reconnect failed: %s", err);
	}
	fc->backoff_ms = fleet_redis_backoff(fc->backoff_ms);
	fc->next_try_ms = now + fc->backoff_ms;
}

static void fleet_sync_state(struct fleet *f)
{
	uint64_t now = fleet_now_ms();

	if (atomic_load(&f->state) == FLEET_HOLDING &&
	    now - atomic_load(&f->last_ok_ms) > f->hold_ms) {
		atomic_store(&f->state, FLEET_FALLBACK);
		log_warn("fleet: redis unreachable for more than %u ms: fleet "
			 "limits are now %s",
			 f->hold_ms, fleet_sync_fail_text(f));
	}
}

/* One step: connect if due, sync if connected. */
static void fleet_sync_step(struct fleet *f, struct fleet_conn *fc)
{
	char err[512] = "";
	uint64_t t0, now = fleet_now_ms();

	if (!fc->c) {
		if (now < fc->next_try_ms)
			return;
		if (fleet_sync_connect(f, fc, err, sizeof(err)) < 0) {
			fleet_metric_sync(0, false);
			fleet_sync_down(f, fc, err);
			return;
		}
	}
	t0 = fleet_now_ms();
	if (fleet_sync_round(f, fc, err, sizeof(err)) < 0) {
		if (atomic_load(&f->stop))
			return;
		fleet_metric_sync(0, false);
		fleet_sync_down(f, fc, err);
		return;
	}
	now = fleet_now_ms();
	atomic_store(&f->sync_dur_ms, (unsigned)(now - t0));
	fleet_metric_sync((now - t0) * 1000, true);
	atomic_store(&f->last_ok_ms, now);
	if (f->required)
		ready_set_blocker(READY_FLEET, false);
	if (atomic_load(&f->state) != FLEET_CONNECTED) {
		atomic_store(&f->state, FLEET_CONNECTED);
		if (fc->ever_up)
			log_warn("fleet: redis %s reachable again: fleet "
				 "limits synced",
				 fc->where);
		else
			log_info("fleet: connected to redis %s as host_id "
				 "'%s', sync every %u ms",
				 fc->where, f->host_id, f->sync_ms);
	}
	fc->ever_up = true;
	fc->warned_down = false;
	fc->backoff_ms = 0;
}

/* Sleep until the next sync, or less when a block event (or stop) comes.
 * Also while Redis is down: the step then only reconnects when its
 * back-off is over, but the local byte counts (fleet_bytes_local) are
 * read every sync_interval, as the 1 s static shares need. */
static void fleet_sync_wait(struct fleet *f, struct fleet_conn *fc)
{
	struct pollfd p[2] = {
		{.fd = f->wake[0], .events = POLLIN},
		{.fd = fc->sub ? fc->sub->fd : -1, .events = POLLIN}};
	uint64_t until = fleet_now_ms() + f->sync_ms, now;
	void *r;

	while (!atomic_load(&f->stop) && (now = fleet_now_ms()) < until) {
		if (poll(p, 2, (int)(until - now)) <= 0)
			continue;
		if (p[0].revents)
			return;
		if (!p[1].revents)
			continue;
		if (redisBufferRead(fc->sub) != REDIS_OK) {
			fleet_sync_down(f, fc, "subscription lost");
			return;
		}
		while (redisGetReplyFromReader(fc->sub, &r) == REDIS_OK && r)
			freeReplyObject(r);
		return; /* a block list change: sync now */
	}
}

static void *fleet_sync_main(void *arg)
{
	struct fleet *f = arg;

	while (!atomic_load(&f->stop)) {
		fleet_sync_wait(f, f->conn);
		if (atomic_load(&f->stop))
			break;
		fleet_sync_step(f, f->conn);
		fleet_sync_state(f);
		if (!f->conn->c)
			fleet_bytes_local(f);
	}
	return NULL;
}

int fleet_sync_start(struct fleet *f)
{
	sigset_t all, old;
	int rc;

	f->conn = calloc(1, sizeof(*f->conn));
	if (!f->conn || pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_error("fleet: cannot start: %s", strerror(errno));
		return -1;
	}
	/* The first sync here, so that blocks hold from the first
	 * connection; bounded by the Redis timeout. */
	fleet_sync_step(f, f->conn);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&f->thread, NULL, fleet_sync_main, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		log_error("fleet: cannot start the sync thread: %s",
			  strerror(rc));
		return -1;
	}
	f->thread_started = true;
	return 0;
}

void fleet_sync_stop(struct fleet *f)
{
	if (f->thread_started) {
		atomic_store(&f->stop, true);
		if (write(f->wake[1], "x", 1) < 0)
			log_debug("fleet: wake: %s", strerror(errno));
		pthread_join(f->thread, NULL);
		f->thread_started = false;
	}
	if (f->conn) {
		fleet_sync_drop(f->conn);
		fleet_cluster_free(f->conn->cl);
		free(f->conn->retry);
		free(f->conn->items);
		free(f->conn);
		f->conn = NULL;
	}
	if (f->wake[0] >= 0)
		close(f->wake[0]);
	if (f->wake[1] >= 0)
		close(f->wake[1]);
	f->wake[0] = f->wake[1] = -1;
}

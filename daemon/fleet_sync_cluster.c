// SPDX-License-Identifier: MIT
/*
 * The sync thread's Redis Cluster side (fleet_sync.c does the rest):
 * before each round, a stale slot map is read again and the primaries
 * due are connected (the script loaded on each); during it, MOVED and
 * ASK replies are noted and sent once more at the end of their batch, to
 * the node the reply named (after ASKING) or, after MOVED, to the slot's
 * primary in the refreshed map. A node that fails holds back only the
 * identities whose slots it serves (fleet_entry.down_ms).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fleet_cluster.h"
#include "fleet_private.h"
#include "log.h"

/* Cluster node I failed (WHY): its identities wait for it. */
static void fleet_sync_node_down(struct fleet *f, struct fleet_conn *fc, int i,
				 const char *why, bool first)
{
	fc->partial = true;
	if (first)
		log_warn("fleet: redis cluster node %s unreachable (%s): its "
			 "identities keep their last fleet state for %u ms, "
			 "then fleet_fail applies to them; reconnecting with "
			 "back-off",
			 fleet_cluster_addr(fc->cl, (size_t)i), why,
			 f->hold_ms);
}

/* Cluster node I's connection C broke: drop it (and C with it). */
void fleet_sync_node_lost(struct fleet *f, struct fleet_conn *fc, int i,
			  const redisContext *c)
{
	char why[128];

	snprintf(why, sizeof(why), "%s",
		 c->errstr[0] ? c->errstr : "connection lost");
	fleet_sync_node_down(f, fc, i, why, fleet_cluster_fail(fc->cl, i));
}

/* Before a cluster round: refresh a stale slot map, connect the primaries
 * due (loading the script), find the {blocks} node. 0, or -1 with ERR. */
int fleet_sync_cluster_prepare(struct fleet *f, struct fleet_conn *fc,
			       char *err, size_t n)
{
	char e2[256];
	size_t i;
	int rc;

	if (fleet_cluster_stale(fc->cl) &&
	    fleet_cluster_refresh(fc->cl, err, n) < 0 &&
	    !fleet_cluster_n_nodes(fc->cl))
		return -1;
	for (i = 0; i < fleet_cluster_n_nodes(fc->cl); i++) {
		rc = fleet_cluster_connect(fc->cl, (int)i, e2, sizeof(e2));
		if (rc < 0 && e2[0])
			fleet_sync_node_down(f, fc, (int)i, e2, rc == -2);
		if (rc < 1)
			continue;
		if (fleet_sync_load(fc, fleet_cluster_ctx(fc->cl, (int)i),
				    fleet_cluster_addr(fc->cl, i), e2,
				    sizeof(e2)) < 0) {
			fleet_sync_node_down(
				f, fc, (int)i, e2,
				fleet_cluster_fail(fc->cl, (int)i));
		} else if (rc == 2) {
			log_warn("fleet: redis cluster node %s reachable again",
				 fleet_cluster_addr(fc->cl, i));
		}
	}
	if (!fleet_sync_cluster_blocks(f, fc)) {
		snprintf(err, n, "cluster node %s (serving {blocks}) is down",
			 fc->where);
		return -1;
	}
	return 0;
}

redisContext *fleet_sync_cluster_blocks(struct fleet *f, struct fleet_conn *fc)
{
	char key[160];
	int b;

	snprintf(key, sizeof(key), "%s{blocks}:list", f->prefix);
	b = fleet_cluster_node_of(fc->cl, key);
	fc->c = fleet_cluster_ctx(fc->cl, b);
	snprintf(fc->where, sizeof(fc->where), "%s",
		 fleet_cluster_addr(fc->cl, (size_t)b));
	return fc->c;
}

/* Cluster: a MOVED or ASK reply to item I? Then note it for the retry
 * (NR of them so far). */
bool fleet_sync_redirected(struct fleet *f, struct fleet_conn *fc,
			   const redisReply *r, size_t i, size_t *nr)
{
	char addr[FLEET_CLUSTER_ADDR_LEN];
	unsigned slot;
	int kind = fleet_cluster_redirect(r, &slot, addr, sizeof(addr));

	if (!kind)
		return false;
	log_debug("fleet: %s", r->str);
	if (!fc->retry &&
	    !(fc->retry = calloc(FLEET_BATCH, sizeof(*fc->retry)))) {
		fleet_sync_unsynced(f, fc, i, false);
		return true;
	}
	fc->retry[*nr].i = i;
	fc->retry[*nr].ask = kind == 2;
	snprintf(fc->retry[*nr].addr, sizeof(fc->retry[*nr].addr), "%s", addr);
	if (kind == 1 || fleet_cluster_node_by_addr(fc->cl, addr) < 0)
		fleet_cluster_set_stale(fc->cl);
	(*nr)++;
	return true;
}

/* Cluster: send the NR redirected items once more, each to the node its
 * reply named (ASK: after ASKING) or, after MOVED, to its slot's primary
 * in the refreshed map; what fails again waits for the next sync. */
void fleet_sync_retry(struct fleet *f, struct fleet_conn *fc, size_t nr,
		      uint64_t *rms)
{
	char err[256];
	redisContext *c;
	redisReply *r;
	size_t k;
	int node;
	bool ok;

	if (fleet_cluster_stale(fc->cl) &&
	    fleet_sync_cluster_prepare(f, fc, err, sizeof(err)) < 0)
		log_debug("fleet: %s", err); /* then the tail fails too */
	for (k = 0; k < nr; k++) {
		struct fleet_retry *t = &fc->retry[k];

		/* Node numbers change with a refreshed map: resolve now. */
		if (t->ask)
			t->node = fleet_cluster_node_by_addr(fc->cl, t->addr);
		else
			fleet_sync_ctx(f, fc, t->i, &t->node);
		if (!(c = fleet_cluster_ctx(fc->cl, t->node)))
			continue;
		if (t->ask)
			redisAppendCommand(c, "ASKING");
		fleet_sync_send(f, fc, c, t->i);
	}
	fleet_cluster_flush(fc->cl);
	for (k = 0; k < nr; k++) {
		struct fleet_retry *t = &fc->retry[k];

		r = NULL;
		node = t->node;
		c = fleet_cluster_ctx(fc->cl, node);
		ok = c != NULL;
		if (ok && t->ask) { /* the ASKING reply */
			ok = redisGetReply(c, (void **)&r) == REDIS_OK;
			if (r)
				freeReplyObject(r);
			r = NULL;
		}
		if (ok)
			ok = redisGetReply(c, (void **)&r) == REDIS_OK;
		if (c && !ok) {
			fleet_sync_node_lost(f, fc, node, c);
			c = NULL;
		}
		if (!fleet_sync_done(f, fc, t->i, r, rms))
			fleet_sync_unsynced(f, fc, t->i, !c);
		if (r)
			freeReplyObject(r);
	}
}

redisReply *fleet_sync_cluster_tail(struct fleet *f, struct fleet_conn *fc,
				    const redisReply *tc, redisReply *list)
{
	char addr[FLEET_CLUSTER_ADDR_LEN], key[160], err[256];
	redisContext *c = NULL;
	redisReply *r;
	unsigned slot;
	int kind;

	if (fleet_cluster_redirect(tc, &slot, addr, sizeof(addr)) == 1)
		fleet_cluster_set_stale(fc->cl); /* the marks: next sync */
	kind = fleet_cluster_redirect(list, &slot, addr, sizeof(addr));
	if (!kind)
		return list;
	log_debug("fleet: block list: %s", list->str);
	freeReplyObject(list);
	if (kind == 1) {
		fleet_cluster_set_stale(fc->cl);
		if (fleet_sync_cluster_prepare(f, fc, err, sizeof(err)) == 0)
			c = fc->c;
	} else {
		c = fleet_cluster_ctx(fc->cl,
				      fleet_cluster_node_by_addr(fc->cl, addr));
		if (c && (r = redisCommand(c, "ASKING")))
			freeReplyObject(r);
	}
	if (!c)
		return NULL;
	snprintf(key, sizeof(key), "%s{blocks}:list", f->prefix);
	return redisCommand(c, "HGETALL %s", key);
}

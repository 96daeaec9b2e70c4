// SPDX-License-Identifier: MIT
/*
 * Redis Cluster for the fleet (fleet_cluster.h). hiredis 0.14 knows
 * nothing of the Cluster, so the routing is done here: a key's slot is
 * CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key, or of
 * its first non-empty {hash tag}, modulo 16384; CLUSTER SLOTS says which
 * primary serves each slot. The fleet's keys are tagged per identity
 * (P{FP}:...), or with a fixed tag ({blocks}, {index}), so every command
 * and script names keys of one slot only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleet_cluster.h"
#include "fleet_redis.h"

struct fleet_cluster_node {
	char addr[FLEET_CLUSTER_ADDR_LEN];
	redisContext *c;
	unsigned backoff_ms;
	uint64_t next_try_ms;
	bool down; /* failed since it was last connected */
};

struct fleet_cluster {
	char **seeds;
	size_t n_seeds;
	char *password; /* wiped at free */
	unsigned timeout_ms;
	struct fleet_cluster_node *nodes;
	size_t n_nodes;
	uint16_t slot[FLEET_CLUSTER_SLOTS];
	bool stale;
};

static uint64_t fleet_cluster_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned fleet_cluster_crc16(const unsigned char *p, size_t len)
{
	unsigned crc = 0;
	size_t i;
	int b;

	for (i = 0; i < len; i++) {
		crc ^= (unsigned)p[i] << 8;
		for (b = 0; b < 8; b++)
			crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
		crc &= 0xffff;
	}
	return crc;
}

unsigned fleet_cluster_keyslot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open) {
		close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
		/* "{}" is no tag: the whole key counts. */
		if (close && close > open + 1) {
			key = open + 1;
			len = (size_t)(close - key);
		}
	}
	return fleet_cluster_crc16((const unsigned char *)key, len) &
	       (FLEET_CLUSTER_SLOTS - 1);
}

void fleet_cluster_map_clear(struct fleet_cluster_map *m)
{
	free(m->addr);
	m->addr = NULL;
	m->n = 0;
}

/* "host:port" of HOST and PORT, with brackets for an IPv6 host. */
static void fleet_cluster_join(char *out, size_t n, const char *host,
			       long long port)
{
	char ps[8];

	snprintf(ps, sizeof(ps), "%lld", port);
	fleet_redis_join(out, n, host, ps);
}

/* The primary of one CLUSTER SLOTS entry: {ip, port, id, ...}. */
static int fleet_cluster_entry_addr(const redisReply *p, const char *asked,
				    char *out, size_t n)
{
	char host[FLEET_CLUSTER_ADDR_LEN];

	if (p->type != REDIS_REPLY_ARRAY || p->elements < 2 ||
	    p->element[0]->type != REDIS_REPLY_STRING ||
	    p->element[1]->type != REDIS_REPLY_INTEGER ||
	    p->element[1]->integer < 1 || p->element[1]->integer > 65535 ||
	    p->element[0]->len >= sizeof(host) - 8 ||
	    memchr(p->element[0]->str, '\0', p->element[0]->len) ||
	    !strcmp(p->element[0]->str, "?"))
		return -1;
	if (p->element[0]->len)
		snprintf(host, sizeof(host), "%s", p->element[0]->str);
	else if (fleet_redis_host_of(asked, host, sizeof(host)) < 0)
		return -1; /* "": the node that answered */
	fleet_cluster_join(out, n, host, p->element[1]->integer);
	return 0;
}

int fleet_cluster_parse_slots(const redisReply *r, const char *asked,
			      struct fleet_cluster_map *m, char *err, size_t n)
{
	char addr[FLEET_CLUSTER_ADDR_LEN];
	const redisReply *e;
	size_t i, k;
	long long s;

	memset(m, 0, sizeof(*m));
	memset(m->slot, 0xff, sizeof(m->slot));
	if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements ||
	    r->elements > FLEET_CLUSTER_SLOTS) {
		snprintf(err, n, "CLUSTER SLOTS: %s",
			 r && r->type == REDIS_REPLY_ERROR ? r->str
							   : "no slots");
		return -1;
	}
	m->addr = calloc(r->elements, sizeof(*m->addr));
	if (!m->addr) {
		snprintf(err, n, "out of memory");
		return -1;
	}
	for (i = 0; i < r->elements; i++) {
		e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[0]->integer < 0 ||
		    e->element[1]->integer < e->element[0]->integer ||
		    e->element[1]->integer >= FLEET_CLUSTER_SLOTS ||
		    fleet_cluster_entry_addr(e->element[2], asked, addr,
					     sizeof(addr)) < 0) {
			snprintf(err, n,
				 "CLUSTER SLOTS from %s: malformed entry %zu",
				 asked, i);
			fleet_cluster_map_clear(m);
			return -1;
		}
		for (k = 0; k < m->n && strcmp(m->addr[k], addr); k++)
			;
		if (k == m->n) {
			if (m->n == FLEET_CLUSTER_MAX_NODES) {
				snprintf(err, n,
					 "CLUSTER SLOTS from %s: more than %d "
					 "primaries",
					 asked, FLEET_CLUSTER_MAX_NODES);
				fleet_cluster_map_clear(m);
				return -1;
			}
			memcpy(m->addr[m->n++], addr, sizeof(addr));
		}
		for (s = e->element[0]->integer; s <= e->element[1]->integer;
		     s++)
			m->slot[s] = (uint16_t)k;
	}
	return 0;
}

int fleet_cluster_redirect(const redisReply *r, unsigned *slot, char *addr,
			   size_t n)
{
	char host[FLEET_CLUSTER_ADDR_LEN];
	const char *p, *colon;
	int kind;
	char *end;
	long s, port;

	if (!r || r->type != REDIS_REPLY_ERROR)
		return 0;
	if (!strncmp(r->str, "MOVED ", 6)) {
		kind = 1;
		p = r->str + 6;
	} else if (!strncmp(r->str, "ASK ", 4)) {
		kind = 2;
		p = r->str + 4;
	} else {
		return 0;
	}
	s = strtol(p, &end, 10);
	if (end == p || *end != ' ' || s < 0 || s >= FLEET_CLUSTER_SLOTS)
		return 0;
	p = end + 1;
	colon = strrchr(p, ':');
	if (!colon || (size_t)(colon - p) >= sizeof(host))
		return 0;
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return 0;
	/* Redis writes an IPv6 host without brackets; "" = unknown. */
	snprintf(host, sizeof(host), "%.*s", (int)(colon - p), p);
	if (host[0] == '[' && fleet_redis_host_of(p, host, sizeof(host)) < 0)
		return 0;
	if (host[0])
		fleet_cluster_join(addr, n, host, port);
	else
		snprintf(addr, n, "?");
	*slot = (unsigned)s;
	return kind;
}

struct fleet_cluster *fleet_cluster_new(char *const *seeds, size_t n_seeds,
					const char *password,
					unsigned timeout_ms)
{
	struct fleet_cluster *cl = calloc(1, sizeof(*cl));
	size_t i;

	if (!cl)
		return NULL;
	memset(cl->slot, 0xff, sizeof(cl->slot));
	cl->timeout_ms = timeout_ms;
	cl->stale = true;
	cl->seeds = calloc(n_seeds ? n_seeds : 1, sizeof(*cl->seeds));
	if (!cl->seeds)
		goto bad;
	for (i = 0; i < n_seeds; i++) {
		if (!(cl->seeds[i] = strdup(seeds[i])))
			goto bad;
		cl->n_seeds++;
	}
	if (password && !(cl->password = strdup(password)))
		goto bad;
	return cl;
bad:
	fleet_cluster_free(cl);
	return NULL;
}

void fleet_cluster_free(struct fleet_cluster *cl)
{
	size_t i;

	if (!cl)
		return;
	for (i = 0; i < cl->n_nodes; i++)
		if (cl->nodes[i].c)
			redisFree(cl->nodes[i].c);
	free(cl->nodes);
	for (i = 0; i < cl->n_seeds; i++)
		free(cl->seeds[i]);
	free(cl->seeds);
	fleet_redis_password_free(cl->password);
	free(cl);
}

/* Take map M: nodes that stay keep their connection and back-off. */
static int fleet_cluster_adopt(struct fleet_cluster *cl,
			       const struct fleet_cluster_map *m)
{
	struct fleet_cluster_node *nodes = calloc(m->n, sizeof(*nodes));
	size_t i, k;

	if (!nodes)
		return -1;
	for (i = 0; i < m->n; i++) {
		memcpy(nodes[i].addr, m->addr[i], sizeof(nodes[i].addr));
		for (k = 0; k < cl->n_nodes; k++)
			if (!strcmp(cl->nodes[k].addr, nodes[i].addr)) {
				nodes[i] = cl->nodes[k];
				cl->nodes[k].c = NULL;
				break;
			}
	}
	for (k = 0; k < cl->n_nodes; k++)
		if (cl->nodes[k].c)
			redisFree(cl->nodes[k].c);
	free(cl->nodes);
	cl->nodes = nodes;
	cl->n_nodes = m->n;
	memcpy(cl->slot, m->slot, sizeof(cl->slot));
	cl->stale = false;
	return 0;
}

/* CLUSTER SLOTS on C (at ASKED) into M: 0 or -1 with ERR. */
static int fleet_cluster_ask(redisContext *c, const char *asked,
			     struct fleet_cluster_map *m, char *err, size_t n)
{
	redisReply *r = redisCommand(c, "CLUSTER SLOTS");
	int rc;

	if (!r) {
		snprintf(err, n, "%s: CLUSTER SLOTS: %s", asked, c->errstr);
		return -1;
	}
	rc = fleet_cluster_parse_slots(r, asked, m, err, n);
	freeReplyObject(r);
	return rc;
}

int fleet_cluster_refresh(struct fleet_cluster *cl, char *err, size_t n)
{
	struct fleet_cluster_map m;
	redisContext *c;
	size_t i;
	int rc;

	for (i = 0; i < cl->n_nodes; i++) {
		if (!cl->nodes[i].c)
			continue;
		if (fleet_cluster_ask(cl->nodes[i].c, cl->nodes[i].addr, &m,
				      err, n) == 0)
			goto found;
		if (cl->nodes[i].c->err)
			fleet_cluster_fail(cl, (int)i);
	}
	for (i = 0; i < cl->n_seeds; i++) {
		c = fleet_redis_dial(cl->seeds[i], cl->password, cl->timeout_ms,
				     err, n);
		if (!c)
			continue;
		rc = fleet_cluster_ask(c, cl->seeds[i], &m, err, n);
		redisFree(c);
		if (rc == 0)
			goto found;
	}
	return -1;
found:
	rc = fleet_cluster_adopt(cl, &m);
	fleet_cluster_map_clear(&m);
	if (rc < 0)
		snprintf(err, n, "out of memory");
	return rc;
}

bool fleet_cluster_stale(const struct fleet_cluster *cl)
{
	return cl->stale;
}

void fleet_cluster_set_stale(struct fleet_cluster *cl)
{
	cl->stale = true;
}

size_t fleet_cluster_n_nodes(const struct fleet_cluster *cl)
{
	return cl->n_nodes;
}

const char *fleet_cluster_addr(const struct fleet_cluster *cl, size_t i)
{
	return i < cl->n_nodes ? cl->nodes[i].addr : "?";
}

int fleet_cluster_node_of(const struct fleet_cluster *cl, const char *key)
{
	return fleet_cluster_node_of_slot(
		cl, fleet_cluster_keyslot(key, strlen(key)));
}

int fleet_cluster_node_of_slot(const struct fleet_cluster *cl, unsigned slot)
{
	unsigned k = cl->slot[slot % FLEET_CLUSTER_SLOTS];

	return k < cl->n_nodes ? (int)k : -1;
}

int fleet_cluster_node_by_addr(const struct fleet_cluster *cl, const char *addr)
{
	size_t i;

	for (i = 0; i < cl->n_nodes; i++)
		if (!strcmp(cl->nodes[i].addr, addr))
			return (int)i;
	return -1;
}

redisContext *fleet_cluster_ctx(const struct fleet_cluster *cl, int i)
{
	return i >= 0 && (size_t)i < cl->n_nodes ? cl->nodes[i].c : NULL;
}

int fleet_cluster_connect(struct fleet_cluster *cl, int i, char *err, size_t n)
{
	struct fleet_cluster_node *nd;
	bool was_down;

	err[0] = 0;
	if (i < 0 || (size_t)i >= cl->n_nodes) {
		snprintf(err, n, "no primary serves that slot");
		return -1;
	}
	nd = &cl->nodes[i];
	if (nd->c)
		return 0;
	if (fleet_cluster_now_ms() < nd->next_try_ms)
		return -1;
	nd->c = fleet_redis_dial(nd->addr, cl->password, cl->timeout_ms, err,
				 n);
	if (!nd->c)
		return fleet_cluster_fail(cl, i) ? -2 : -1;
	was_down = nd->down;
	nd->down = false;
	nd->backoff_ms = 0;
	return was_down ? 2 : 1;
}

bool fleet_cluster_fail(struct fleet_cluster *cl, int i)
{
	struct fleet_cluster_node *nd;
	bool was_up;

	if (i < 0 || (size_t)i >= cl->n_nodes)
		return false;
	nd = &cl->nodes[i];
	if (nd->c)
		redisFree(nd->c);
	nd->c = NULL;
	was_up = !nd->down;
	nd->down = true;
	nd->backoff_ms = fleet_redis_backoff(nd->backoff_ms);
	nd->next_try_ms = fleet_cluster_now_ms() + nd->backoff_ms;
	/* Its slots may have moved to a promoted replica. */
	cl->stale = true;
	return was_up;
}

void fleet_cluster_disconnect(struct fleet_cluster *cl)
{
	size_t i;

	for (i = 0; i < cl->n_nodes; i++) {
		if (cl->nodes[i].c)
			redisFree(cl->nodes[i].c);
		cl->nodes[i].c = NULL;
	}
	cl->stale = true;
}

void fleet_cluster_flush(struct fleet_cluster *cl)
{
	size_t i;
	int done;

	for (i = 0; i < cl->n_nodes; i++) {
		if (!cl->nodes[i].c)
			continue;
		done = 0;
		while (!done)
			if (redisBufferWrite(cl->nodes[i].c, &done) !=
			    REDIS_OK) {
				/* Its replies are read as failures, each item
				 * once; keep the error for the reader. */
				break;
			}
	}
}

struct fleet_cluster *fleet_cluster_from_config(const struct config *cfg,
						unsigned timeout_ms, char *err,
						size_t n)
{
	struct fleet_cluster *cl;
	char *pw;

	if (fleet_redis_config_password(cfg, &pw, err, n) < 0)
		return NULL;
	cl = fleet_cluster_new(cfg->fleet_redis.items, cfg->fleet_redis.count,
			       pw, timeout_ms);
	fleet_redis_password_free(pw);
	if (!cl) {
		snprintf(err, n, "out of memory");
		return NULL;
	}
	if (fleet_cluster_refresh(cl, err, n) < 0) {
		fleet_cluster_free(cl);
		return NULL;
	}
	return cl;
}

redisContext *fleet_cluster_ctx_for(struct fleet_cluster *cl, const char *key,
				    char *err, size_t n)
{
	int i = fleet_cluster_node_of(cl, key);

	if (fleet_cluster_connect(cl, i, err, n) < 0) {
		if (!err[0])
			snprintf(err, n, "%s: backing off",
				 fleet_cluster_addr(cl, (size_t)i));
		return NULL;
	}
	return cl->nodes[i].c;
}

redisReply *fleet_cluster_command(struct fleet_cluster *cl, redisContext **c,
				  const char *key, const char *fmt, ...)
{
	char addr[FLEET_CLUSTER_ADDR_LEN], err[256];
	redisReply *r;
	unsigned slot;
	bool ask = false;
	int tries, kind, node;
	va_list ap;

	for (tries = 0; tries < 4 && *c; tries++) {
		if (ask && (r = redisCommand(*c, "ASKING")))
			freeReplyObject(r);
		va_start(ap, fmt);
		r = redisvCommand(*c, fmt, ap);
		va_end(ap);
		if (!cl || tries == 3 ||
		    !(kind = fleet_cluster_redirect(r, &slot, addr,
						    sizeof(addr))))
			return r;
		freeReplyObject(r);
		*c = NULL; /* a refresh may drop it: NULL until one answers */
		if (kind == 1) {
			if (fleet_cluster_refresh(cl, err, sizeof(err)) < 0)
				return NULL;
			node = fleet_cluster_node_of(cl, key);
		} else {
			node = fleet_cluster_node_by_addr(cl, addr);
		}
		ask = kind == 2;
		if (fleet_cluster_connect(cl, node, err, sizeof(err)) < 0)
			return NULL;
		*c = cl->nodes[node].c;
	}
	return NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * Redis Cluster for the fleet ([fleet] cluster = yes), on hiredis 0.14
 * which has no Cluster client: the slot map from CLUSTER SLOTS, the key
 * slot (CRC16 and hash tags, as the Cluster spec defines them), one
 * connection per primary, and MOVED / ASK replies recognised. Shared by
 * the gateway's sync thread (daemon/fleet_sync.c) and the tools.
 */
#ifndef MTLSGW_FLEET_CLUSTER_H
#define MTLSGW_FLEET_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"

#define FLEET_CLUSTER_SLOTS	16384
#define FLEET_CLUSTER_MAX_NODES 1024
#define FLEET_CLUSTER_ADDR_LEN	300
#define FLEET_CLUSTER_NONE	0xffff /* a slot no primary serves */

/* A parsed CLUSTER SLOTS reply: the primary of each slot. */
struct fleet_cluster_map {
	uint16_t slot[FLEET_CLUSTER_SLOTS]; /* index in addr, or _NONE */
	char (*addr)[FLEET_CLUSTER_ADDR_LEN];
	size_t n;
};

struct fleet_cluster;

/* The slot of a key: CRC16 of the key, or of the first non-empty {tag}. */
unsigned fleet_cluster_keyslot(const char *key, size_t len);

/*
 * Parse a CLUSTER SLOTS reply R into M (M->addr malloc'd; free it with
 * fleet_cluster_map_clear). ASKED is the address R came from: an empty
 * primary address means that node. -1 with ERR on a malformed reply.
 */
int fleet_cluster_parse_slots(const redisReply *r, const char *asked,
			      struct fleet_cluster_map *m, char *err, size_t n);
void fleet_cluster_map_clear(struct fleet_cluster_map *m);

/* "MOVED slot addr" = 1, "ASK slot addr" = 2 (ADDR, SLOT set), else 0. */
int fleet_cluster_redirect(const redisReply *r, unsigned *slot, char *addr,
			   size_t n);

/* SEEDS: the [fleet] redis addresses (copied, as is PASSWORD). Nothing is
 * dialled until fleet_cluster_refresh(). */
struct fleet_cluster *fleet_cluster_new(char *const *seeds, size_t n_seeds,
					const char *password,
					unsigned timeout_ms);
void fleet_cluster_free(struct fleet_cluster *cl);

/*
 * Read the slot map from a connected primary, else from the seeds in
 * turn; keep the connections to primaries that stay. 0, or -1 with ERR
 * (the old map stays).
 */
int fleet_cluster_refresh(struct fleet_cluster *cl, char *err, size_t n);
/* Whether a MOVED or a node failure asked for a refresh. */
bool fleet_cluster_stale(const struct fleet_cluster *cl);
void fleet_cluster_set_stale(struct fleet_cluster *cl);

size_t fleet_cluster_n_nodes(const struct fleet_cluster *cl);
const char *fleet_cluster_addr(const struct fleet_cluster *cl, size_t i);
/* The primary serving KEY's slot, or -1. */
int fleet_cluster_node_of(const struct fleet_cluster *cl, const char *key);
/* The primary serving SLOT, or -1. */
int fleet_cluster_node_of_slot(const struct fleet_cluster *cl, unsigned slot);
int fleet_cluster_node_by_addr(const struct fleet_cluster *cl,
			       const char *addr);
/* Node I's connection, NULL when it has none. */
redisContext *fleet_cluster_ctx(const struct fleet_cluster *cl, int i);

/*
 * Connect node I if it has no connection and its back-off has passed:
 * 0 already connected, 1 connected now, 2 connected now after a failure,
 * -1 not connected (ERR says why; "" while backing off), -2 not connected
 * and it was up until now (log it once).
 */
int fleet_cluster_connect(struct fleet_cluster *cl, int i, char *err, size_t n);
/* Drop node I's connection after an error, back off, mark the map stale;
 * true if the node was up until now (log it once). */
bool fleet_cluster_fail(struct fleet_cluster *cl, int i);
/* Close every node's connection (their state stays: down, back-off);
 * the map is read again before the next use. */
void fleet_cluster_disconnect(struct fleet_cluster *cl);
/* Send what is buffered for every node, so that they work in parallel;
 * a node that cannot take it is failed. */
void fleet_cluster_flush(struct fleet_cluster *cl);

/* Tools: the cluster CFG's [fleet] names, its map read; NULL with ERR. */
struct fleet_cluster *fleet_cluster_from_config(const struct config *cfg,
						unsigned timeout_ms, char *err,
						size_t n);
/* Tools: a connection to the primary serving KEY; NULL with ERR. */
redisContext *fleet_cluster_ctx_for(struct fleet_cluster *cl, const char *key,
				    char *err, size_t n);

/*
 * Tools: FMT (a command on KEY's slot) on *C, following MOVED (map read
 * again) and ASK (ASKING first) up to three times; *C becomes the node
 * that answered (NULL if a redirection could not be followed: then NULL
 * is returned). Without CL, just the command on *C.
 */
redisReply *fleet_cluster_command(struct fleet_cluster *cl, redisContext **c,
				  const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Connecting to the fleet's Redis, shared by the gateway's sync thread
 * (daemon/fleet_sync.c) and the tools (mtlsgw-ctl, mtlsgw-stat --fleet):
 * one address, or the primary the Sentinels name; AUTH; timeouts.
 */
#ifndef MTLSGW_FLEET_REDIS_H
#define MTLSGW_FLEET_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "config.h"

/* The host of ADDR ("host:port" or "[v6]:port", without the brackets)
 * into HOST: 0, or -1 when ADDR has no port or the host does not fit. */
int fleet_redis_host_of(const char *addr, char *host, size_t n);

/* "HOST:PORT" into OUT, with brackets around an IPv6 HOST. */
void fleet_redis_join(char *out, size_t n, const char *host, const char *port);

/* ADDR "unix:/path", "host:port" or "[v6]:port"; AUTH with PASSWORD if
 * not NULL. NULL on failure, with the reason (never the password) in
 * ERR. */
redisContext *fleet_redis_dial(const char *addr, const char *password,
			       unsigned timeout_ms, char *err, size_t n);

/*
 * The primary: ADDRS[0], or with SENTINEL_MASTER the one the Sentinels
 * ADDRS name (asked in turn; it must answer ROLE master). WHERE gets its
 * address.
 */
redisContext *fleet_redis_primary(char *const *addrs, size_t n_addrs,
				  const char *sentinel_master,
				  const char *password, unsigned timeout_ms,
				  char *where, size_t wn, char *err, size_t n);

/* The first line of PATH, malloc'd (wipe and free it); NULL with ERR. */
char *fleet_redis_password(const char *path, char *err, size_t n);

/* Wipe and free a password from fleet_redis_password(). */
void fleet_redis_password_free(char *pw);

/* CFG's [fleet] password (malloc'd into *PW, NULL without
 * password_file): 0, or -1 with ERR (also when CFG names no redis). */
int fleet_redis_config_password(const struct config *cfg, char **pw, char *err,
				size_t n);

/* Reconnection back-off: the wait after one more failure, given the last
 * one (0: none yet): 100 ms, doubling, at most 5 s. */
unsigned fleet_redis_backoff(unsigned last_ms);

/* The primary CFG's [fleet] names (tools). */
redisContext *fleet_redis_from_config(const struct config *cfg,
				      unsigned timeout_ms, char *err, size_t n);

#endif

// SPDX-License-Identifier: MIT
/*
 * Connecting to the fleet's Redis (fleet_redis.h). hiredis 0.14: blocking
 * connects and commands with a timeout; no Cluster support.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/crypto.h>

#include "fleet_redis.h"

#define FLEET_REDIS_PASSWORD_MAX   512
#define FLEET_REDIS_BACKOFF_MIN_MS 100
#define FLEET_REDIS_BACKOFF_MAX_MS 5000

int fleet_redis_host_of(const char *addr, char *host, size_t n)
{
	const char *colon = strrchr(addr, ':');
	size_t hl;

	if (!colon)
		return -1;
	hl = (size_t)(colon - addr);
	if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= n)
		return -1;
	memcpy(host, addr, hl);
	host[hl] = 0;
	return 0;
}

void fleet_redis_join(char *out, size_t n, const char *host, const char *port)
{
	snprintf(out, n, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

redisContext *fleet_redis_dial(const char *addr, const char *password,
			       unsigned timeout_ms, char *err, size_t n)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000,
			     .tv_usec = (long)(timeout_ms % 1000) * 1000};
	char host[128];
	const char *colon;
	redisContext *c;
	redisReply *r;

	if (!strncmp(addr, "unix:", 5)) {
		c = redisConnectUnixWithTimeout(addr + 5, tv);
	} else {
		if (fleet_redis_host_of(addr, host, sizeof(host)) < 0) {
			snprintf(err, n, "bad address %s", addr);
			return NULL;
		}
		colon = strrchr(addr, ':');
		c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
	}
	if (!c || c->err) {
		snprintf(err, n, "%s: %s", addr,
			 c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	redisEnableKeepAlive(c);
	if (!password)
		return c;
	r = redisCommand(c, "AUTH %s", password);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		/* The reply names the failure, never the password. */
		snprintf(err, n, "%s: AUTH: %s", addr, r ? r->str : c->errstr);
		if (r)
			freeReplyObject(r);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(r);
	return c;
}

static int fleet_redis_is_master(redisContext *c)
{
	redisReply *r = redisCommand(c, "ROLE");
	int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements &&
		 r->element[0]->type == REDIS_REPLY_STRING &&
		 !strcmp(r->element[0]->str, "master");

	if (r)
		freeReplyObject(r);
	return ok;
}

redisContext *fleet_redis_primary(char *const *addrs, size_t n_addrs,
				  const char *sentinel_master,
				  const char *password, unsigned timeout_ms,
				  char *where, size_t wn, char *err, size_t n)
{
	redisContext *s, *c;
	redisReply *r;
	size_t i;

	if (!sentinel_master) {
		snprintf(where, wn, "%s", addrs[0]);
		return fleet_redis_dial(addrs[0], password, timeout_ms, err, n);
	}
	for (i = 0; i < n_addrs; i++) {
		/* Sentinels usually run without the data password. */
		s = fleet_redis_dial(addrs[i], NULL, timeout_ms, err, n);
		if (!s)
			continue;
		r = redisCommand(s, "SENTINEL get-master-addr-by-name %s",
				 sentinel_master);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_STRING) {
			snprintf(err, n, "sentinel %s knows no master '%s'",
				 addrs[i], sentinel_master);
			if (r)
				freeReplyObject(r);
			redisFree(s);
			continue;
		}
		fleet_redis_join(where, wn, r->element[0]->str,
				 r->element[1]->str);
		freeReplyObject(r);
		redisFree(s);
		c = fleet_redis_dial(where, password, timeout_ms, err, n);
		if (!c)
			continue;
		if (fleet_redis_is_master(c))
			return c;
		snprintf(err, n, "%s (from sentinel %s) is not a master", where,
			 addrs[i]);
		redisFree(c);
	}
	return NULL;
}

char *fleet_redis_password(const char *path, char *err, size_t n)
{
	char buf[FLEET_REDIS_PASSWORD_MAX];
	size_t len;
	char *pw;
	FILE *in = fopen(path, "re");

	if (!in) {
		snprintf(err, n, "password_file %s: %s", path, strerror(errno));
		return NULL;
	}
	len = fread(buf, 1, sizeof(buf) - 1, in);
	fclose(in);
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = 0;
	if (!len || memchr(buf, '\0', len) || len == sizeof(buf) - 1 ||
	    strpbrk(buf, "\r\n")) {
		snprintf(err, n,
			 "password_file %s: expected one line of at most %zu "
			 "bytes",
			 path, sizeof(buf) - 2);
		OPENSSL_cleanse(buf, sizeof(buf));
		return NULL;
	}
	pw = strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!pw)
		snprintf(err, n, "out of memory");
	return pw;
}

void fleet_redis_password_free(char *pw)
{
	if (!pw)
		return;
	OPENSSL_cleanse(pw, strlen(pw));
	free(pw);
}

int fleet_redis_config_password(const struct config *cfg, char **pw, char *err,
				size_t n)
{
	*pw = NULL;
	if (!cfg->fleet_redis.count) {
		snprintf(err, n, "%s has no [fleet] redis", cfg->path);
		return -1;
	}
	if (cfg->fleet_password_file &&
	    !(*pw = fleet_redis_password(cfg->fleet_password_file, err, n)))
		return -1;
	return 0;
}

redisContext *fleet_redis_from_config(const struct config *cfg,
				      unsigned timeout_ms, char *err, size_t n)
{
	char *pw, where[160];
	redisContext *c;

	if (fleet_redis_config_password(cfg, &pw, err, n) < 0)
		return NULL;
	c = fleet_redis_primary(cfg->fleet_redis.items, cfg->fleet_redis.count,
				cfg->fleet_sentinel_master, pw, timeout_ms,
				where, sizeof(where), err, n);
	fleet_redis_password_free(pw);
	return c;
}

unsigned fleet_redis_backoff(unsigned last_ms)
{
	unsigned ms = last_ms ? 2 * last_ms : FLEET_REDIS_BACKOFF_MIN_MS;

	return ms < FLEET_REDIS_BACKOFF_MAX_MS ? ms
					       : FLEET_REDIS_BACKOFF_MAX_MS;
}

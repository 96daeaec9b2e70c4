// SPDX-License-Identifier: MIT
#include <string.h>

#include "log.h"
#include "reload.h"

void reload_log_errors(const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (nl > p)
			log_error("reload: %.*s", (int)(nl - p), p);
		p = nl + 1;
	}
}

static int reload_str_differs(const char *a, const char *b)
{
	if (!a || !b)
		return a != b;
	return strcmp(a, b) != 0;
}

static void reload_warn_str(const char *key, const char *old, const char *now)
{
	if (reload_str_differs(old, now))
		log_warn("reload: %s changed (%s -> %s): needs a restart, "
			 "%s stays in force",
			 key, old ? old : "unset", now ? now : "unset",
			 old ? old : "unset");
}

/* PARTLY: the new value is used where the code reads the current
 * configuration, but the HTTP engine keeps the old one until a restart. */
static void reload_warn_num(const char *key, unsigned long long old,
			    unsigned long long now, int partly)
{
	if (old == now)
		return;
	if (partly)
		log_warn("reload: %s changed (%llu -> %llu): the HTTP engine "
			 "keeps %llu until a restart",
			 key, old, now, old);
	else
		log_warn("reload: %s changed (%llu -> %llu): needs a restart, "
			 "%llu stays in force",
			 key, old, now, old);
}

void reload_warn_fixed(const struct config *old, const struct config *cfg)
{
	/* Opened once at start-up (SIGUSR1 reopens the same targets). */
	reload_warn_str("error_log", old->error_log, cfg->error_log);
	reload_warn_str("access_log", old->access_log, cfg->access_log);
	reload_warn_str("log_level", old->log_level, cfg->log_level);
	/* Given to each worker's libmicrohttpd daemon when it starts. */
	reload_warn_num("max_connections", old->max_connections,
			cfg->max_connections, 0);
	/* Its per-connection memory is sized from max_header_size, and its
	 * own timer (the kTLS path's) from request_timeout. */
	reload_warn_num("max_header_size", old->max_header_size,
			cfg->max_header_size, 1);
	reload_warn_num("request_timeout (ms)", old->request_timeout_ms,
			cfg->request_timeout_ms, 1);
	/* Acted on once, before privileges are dropped. */
	reload_warn_str("user", old->user, cfg->user);
	reload_warn_str("pid_file", old->pid_file, cfg->pid_file);
}

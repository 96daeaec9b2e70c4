// SPDX-License-Identifier: MIT
/*
 * The check step, run once the whole file is read: required keys,
 * combinations (naming both keys and their lines), upstream references,
 * and the defaults that depend on other keys (listen, workers, limits
 * inherited from [limits]).
 */
#include <string.h>
#include <unistd.h>

#include "config_private.h"
#include "url.h"

static void config_inherit(struct config_limit *l, const struct config_limit *d)
{
	if (!(l->set & CONFIG_LIMIT_MAX_CONNS))
		l->max_conns = d->max_conns;
	if (!(l->set & CONFIG_LIMIT_CONN_RATE))
		l->conn_rate = d->conn_rate;
	if (!(l->set & CONFIG_LIMIT_CONN_BURST))
		l->conn_burst = d->conn_burst;
	if (!(l->set & CONFIG_LIMIT_REQ_RATE))
		l->req_rate = d->req_rate;
	if (!(l->set & CONFIG_LIMIT_REQ_BURST))
		l->req_burst = d->req_burst;
	if (!(l->set & CONFIG_LIMIT_BW_OUT))
		l->bandwidth_out = d->bandwidth_out;
	if (!(l->set & CONFIG_LIMIT_BW_IN))
		l->bandwidth_in = d->bandwidth_in;
	if (!(l->set & CONFIG_LIMIT_FLEET_MAX_CONNS))
		l->fleet_max_conns = d->fleet_max_conns;
	if (!(l->set & CONFIG_LIMIT_FLEET_REQ_RATE))
		l->fleet_req_rate = d->fleet_req_rate;
	if (!(l->set & CONFIG_LIMIT_FLEET_BW_OUT))
		l->fleet_bandwidth_out = d->fleet_bandwidth_out;
	l->fleet_fail = d->fleet_fail;
}

/* [fleet] redis: host:port or unix:/absolute/path; several only with
 * sentinel_master (they are then the Sentinels). */
static void config_check_fleet(struct config_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	int line = config_seen_line(&ctx->seen_fleet, SEC_FLEET, "redis");
	struct config_addr a;
	const char *why;

	const struct config_limit *lims[] = {&cfg->limit_default,
					     &cfg->limit_anonymous};
	uint32_t fleet_bits = CONFIG_LIMIT_FLEET_MAX_CONNS |
			      CONFIG_LIMIT_FLEET_REQ_RATE |
			      CONFIG_LIMIT_FLEET_BW_OUT;
	uint32_t set = lims[0]->set | lims[1]->set;

	for (size_t i = 0; i < cfg->n_limit_overrides; i++)
		set |= cfg->limit_overrides[i].set;
	if (lims[1]->set & fleet_bits)
		config_error(ctx, ctx->anonymous_line,
			     "fleet limits apply to certificates only, not in "
			     "[limits anonymous]");
	if (!cfg->fleet_line) {
		if (set & fleet_bits)
			config_error(ctx,
				     ctx->limits_line ? ctx->limits_line : 1,
				     "fleet_* limits need a [fleet] section "
				     "with 'redis'");
		return;
	}
	if (!cfg->fleet_redis.count && !line) {
		config_error(ctx, cfg->fleet_line,
			     "[fleet] needs 'redis = host:port' (or "
			     "unix:/path)");
		return;
	}
	for (size_t i = 0; i < cfg->fleet_redis.count; i++) {
		const char *r = cfg->fleet_redis.items[i];

		if (!strncmp(r, "unix:", 5)) {
			if (r[5] != '/' || cfg->fleet_sentinel_master)
				config_error(ctx, line,
					     "redis = %s: expected "
					     "unix:/absolute/path (and no "
					     "sentinel_master)",
					     r);
			if (cfg->fleet_cluster)
				config_error(ctx, line,
					     "redis = %s: cluster = yes needs "
					     "host:port (cluster nodes)",
					     r);
		} else if (config_parse_addr(r, &a, &why) < 0 ||
			   !strncmp(r, "*:", 2)) {
			config_error(ctx, line,
				     "redis = %s: expected host:port "
				     "(IP address) or unix:/path",
				     r);
		}
	}
	if (cfg->fleet_cluster && cfg->fleet_sentinel_master)
		config_error(ctx, line,
			     "cluster = yes and sentinel_master exclude each "
			     "other in [fleet]");
	if (cfg->fleet_redis.count > 1 && !cfg->fleet_sentinel_master &&
	    !cfg->fleet_cluster)
		config_error(ctx, line,
			     "several 'redis' addresses are Sentinels: set "
			     "'sentinel_master = NAME' in [fleet] (or cluster "
			     "nodes: 'cluster = yes')");
}

static void config_check_location(struct config_ctx *ctx, size_t i)
{
	static const char *const handlers[] = {"root", "return", "proxy_pass",
					       "metrics", "ready"};
	static const char *const allows[] = {"allow_subject", "allow_san",
					     "allow_fingerprint"};
	struct config *cfg = ctx->cfg;
	struct config_location *loc = &cfg->locations[i];
	const struct config_seen *seen = &ctx->loc_seen[i];
	const char *first = NULL;
	int first_line = 0, line, cc_line;

	/* The first handler in the file stands; each later one is named.
	 * "metrics = no" and "ready = no" are no handler. */
	for (size_t h = 0; h < 5; h++) {
		line = config_seen_line(seen, SEC_LOCATION, handlers[h]);
		if ((h == 3 && !loc->metrics) || (h == 4 && !loc->ready))
			line = 0;
		if (line && (!first || line < first_line)) {
			first = handlers[h];
			first_line = line;
		}
	}
	for (size_t h = 0; h < 5; h++) {
		line = config_seen_line(seen, SEC_LOCATION, handlers[h]);
		if ((h == 3 && !loc->metrics) || (h == 4 && !loc->ready))
			line = 0;
		if (!line || line == first_line)
			continue;
		config_error(ctx, line,
			     "[location %s]: %s (line %d) and %s (line %d) are "
			     "both set; a location has exactly one handler",
			     loc->prefix, first, first_line, handlers[h], line);
	}
	if (!first)
		config_error(ctx, loc->line,
			     "[location %s] has no handler: set root, return, "
			     "proxy_pass, metrics or ready",
			     loc->prefix);

	cc_line = config_seen_line(seen, SEC_LOCATION, "client_cert");
	if (loc->client_cert == CONFIG_CLIENT_CERT_NONE) {
		for (size_t a = 0; a < 3; a++) {
			line = config_seen_line(seen, SEC_LOCATION, allows[a]);
			if (line)
				config_error(
					ctx, line,
					"[location %s]: %s (line %d) "
					"conflicts with client_cert = none "
					"(line %d): certificates are "
					"ignored there",
					loc->prefix, allows[a], line, cc_line);
		}
	}

	if (loc->proxy_upstream && !strchr(loc->proxy_upstream, ':') &&
	    !config_find_upstream(cfg, loc->proxy_upstream))
		config_error(ctx,
			     config_seen_line(seen, SEC_LOCATION, "proxy_pass"),
			     "proxy_pass: unknown upstream '%s' (no [upstream "
			     "%s] section; a host needs a port, as "
			     "http://%s:8080)",
			     loc->proxy_upstream, loc->proxy_upstream,
			     loc->proxy_upstream);
}

/* proxy_from only means something on a proxy_protocol listener. */
static void config_check_proxy_from(struct config_ctx *ctx)
{
	const struct config *cfg = ctx->cfg;
	int line =
		config_seen_line(&ctx->seen_server, SEC_SERVER, "proxy_from");

	if (!cfg->n_proxy_from)
		return;
	for (size_t i = 0; i < cfg->n_listen; i++)
		if (cfg->listen[i].proxy_protocol)
			return;
	config_error(ctx, line,
		     "proxy_from (line %d) has no effect: no listen line is "
		     "marked proxy_protocol",
		     line);
}

void config_check(struct config_ctx *ctx)
{
	static const char *const required[] = {"cert", "key", "client_ca"};
	struct config *cfg = ctx->cfg;
	const char *why;
	long n;

	if (!ctx->tls_line) {
		config_error(ctx, ctx->lineno > 0 ? ctx->lineno : 1,
			     "missing [tls] section (cert, key and client_ca "
			     "are required)");
	} else {
		for (size_t i = 0; i < 3; i++)
			if (!config_seen_line(&ctx->seen_tls, SEC_TLS,
					      required[i]))
				config_error(ctx, ctx->tls_line,
					     "missing required key '%s' in "
					     "[tls]",
					     required[i]);
	}

	for (size_t i = 0; i < cfg->n_locations; i++)
		config_check_location(ctx, i);

	cfg->ocsp_responder_line =
		config_seen_line(&ctx->seen_tls, SEC_TLS, "ocsp_responder");
	if (cfg->ocsp_responder) {
		struct url_http u;
		const char *bad;

		if (url_parse_http(cfg->ocsp_responder, &u, &bad) < 0)
			config_error(ctx, cfg->ocsp_responder_line,
				     "ocsp_responder: %s", bad);
		else if (cfg->ocsp == CONFIG_OCSP_OFF)
			config_error(ctx, cfg->ocsp_responder_line,
				     "ocsp_responder is set but ocsp is off: "
				     "set ocsp = leaf or chain");
	}

	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (!cfg->upstreams[i].n_servers &&
		    !strchr(cfg->upstreams[i].name, ':') &&
		    /* a bad server line was already reported */
		    !config_seen_line(&ctx->up_seen[i], SEC_UPSTREAM, "server"))
			config_error(ctx, cfg->upstreams[i].line,
				     "[upstream %s] has no server",
				     cfg->upstreams[i].name);

	if (!cfg->n_listen &&
	    !config_seen_line(&ctx->seen_server, SEC_SERVER, "listen")) {
		if (config_parse_addr(CONFIG_DEFAULT_LISTEN,
				      &cfg->listen[0].addr, &why) == 0)
			cfg->n_listen = 1;
	}

	config_check_proxy_from(ctx);

	if (!cfg->workers) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
		if (n > CONFIG_MAX_WORKERS)
			n = CONFIG_MAX_WORKERS;
		cfg->workers = (unsigned)n;
	}

	config_check_fleet(ctx);
	config_inherit(&cfg->limit_anonymous, &cfg->limit_default);
	for (size_t i = 0; i < cfg->n_limit_overrides; i++)
		config_inherit(&cfg->limit_overrides[i], &cfg->limit_default);
}

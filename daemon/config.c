// SPDX-License-Identifier: MIT
/*
 * Configuration loader. libinih splits "key = value" lines and strips
 * comments; everything else is driven by config_keywords[] (name, section,
 * type, where the value goes, allowed values), as nginx declares its
 * directives as data. The values are parsed and stored in config_values.c.
 * A separate check step (config_check.c) runs after the whole file is read
 * and catches combinations, naming both keys.
 *
 * Our own line reader sits in front of inih because the packaged inih is
 * built without INI_HANDLER_LINENO, truncates section names to 49 bytes
 * (too short for "[limits sha256:<64 hex>]") and silently splits lines
 * longer than INI_MAX_LINE. The reader counts lines, refuses long lines,
 * parses section headers itself and hands inih only key lines, with the
 * leading whitespace removed so that inih never treats an indented line
 * as the continuation of the previous value.
 */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/tls1.h>

#include "config_private.h"

#define CONFIG_LINE_MAX (INI_MAX_LINE - 1) /* characters, newline excluded */

static const struct config_enum config_enum_log_level[] = {
	{"error", 0}, {"warn", 1}, {"info", 2}, {"debug", 3}, {NULL, 0}};
static const struct config_enum config_enum_min_version[] = {
	{"1.2", TLS1_2_VERSION}, {"1.3", TLS1_3_VERSION}, {NULL, 0}};
static const struct config_enum config_enum_ktls[] = {
	{"auto", CONFIG_KTLS_AUTO},
	{"on", CONFIG_KTLS_ON},
	{"off", CONFIG_KTLS_OFF},
	{NULL, 0}};
static const struct config_enum config_enum_ocsp[] = {
	{"off", CONFIG_OCSP_OFF},
	{"leaf", CONFIG_OCSP_LEAF},
	{"chain", CONFIG_OCSP_CHAIN},
	{NULL, 0}};
static const struct config_enum config_enum_ocsp_fail[] = {
	{"closed", CONFIG_OCSP_FAIL_CLOSED},
	{"open", CONFIG_OCSP_FAIL_OPEN},
	{NULL, 0}};
static const struct config_enum config_enum_client_cert[] = {
	{"none", CONFIG_CLIENT_CERT_NONE},
	{"optional", CONFIG_CLIENT_CERT_OPTIONAL},
	{"require", CONFIG_CLIENT_CERT_REQUIRE},
	{NULL, 0}};
static const struct config_enum config_enum_bpf_mode[] = {
	{"auto", CONFIG_BPF_AUTO},
	{"required", CONFIG_BPF_REQUIRED},
	{"off", CONFIG_BPF_OFF},
	{NULL, 0}};

static const struct config_enum config_enum_fleet_fail[] = {
	{"static", CONFIG_FLEET_FAIL_STATIC},
	{"local", CONFIG_FLEET_FAIL_LOCAL},
	{NULL, 0}};

#define CFG(f) offsetof(struct config, f)
#define LOC(f) offsetof(struct config_location, f)
#define UPS(f) offsetof(struct config_upstream, f)
#define LIM(f) offsetof(struct config_limit, f)
#define DAY_MS 86400000ull

/* Designated initialisers: every field not named is zero. */
#define KW(n, s, t, o, ...)                                                    \
	{                                                                      \
		.name = (n), .section = (s), .type = (t), .offset = (o),       \
		__VA_ARGS__                                                    \
	}

static const struct config_keyword config_keywords[] = {
	/* [server] */
	KW("listen", SEC_SERVER, T_LISTEN, 0, .flags = KW_REPEAT),
	KW("workers", SEC_SERVER, T_WORKERS, CFG(workers), .min = 1,
	   .max = CONFIG_MAX_WORKERS),
	KW("access_log", SEC_SERVER, T_LOGFILE, CFG(access_log),
	   .flags = KW_ALLOW_OFF),
	KW("error_log", SEC_SERVER, T_LOGFILE, CFG(error_log)),
	KW("log_level", SEC_SERVER, T_WORD, CFG(log_level),
	   .values = config_enum_log_level),
	KW("max_connections", SEC_SERVER, T_UINT, CFG(max_connections),
	   .min = 1, .max = 10000000),
	KW("max_header_size", SEC_SERVER, T_SIZE, CFG(max_header_size),
	   .min = 1024, .max = 1024 * 1024),
	KW("max_body_size", SEC_SERVER, T_SIZE, CFG(max_body_size), .min = 0,
	   .max = 1ull << 40),
	KW("request_timeout", SEC_SERVER, T_DURATION, CFG(request_timeout_ms),
	   .min = 1, .max = DAY_MS),
	KW("drain_timeout", SEC_SERVER, T_DURATION, CFG(drain_timeout_ms),
	   .min = 0, .max = DAY_MS),
	KW("user", SEC_SERVER, T_STRING, CFG(user), .chars = "._-$",
	   .max_len = 32),
	KW("pid_file", SEC_SERVER, T_PATH, CFG(pid_file)),
	KW("proxy_from", SEC_SERVER, T_CIDR, 0, .flags = KW_REPEAT),
	KW("drain_delay", SEC_SERVER, T_DURATION, CFG(drain_delay_ms), .min = 0,
	   .max = 3600000),
	/* [tls] */
	KW("cert", SEC_TLS, T_FILE, CFG(cert), .flags = KW_LINE,
	   .line_offset = CFG(cert_line)),
	KW("key", SEC_TLS, T_FILE, CFG(key), .flags = KW_LINE,
	   .line_offset = CFG(key_line)),
	KW("client_ca", SEC_TLS, T_FILE, CFG(client_ca), .flags = KW_LINE,
	   .line_offset = CFG(client_ca_line)),
	KW("crl", SEC_TLS, T_FILE, CFG(crl), .flags = KW_LINE,
	   .line_offset = CFG(crl_line)),
	KW("verify_depth", SEC_TLS, T_UINT, CFG(verify_depth), .min = 1,
	   .max = 16),
	KW("min_version", SEC_TLS, T_ENUM, CFG(min_version),
	   .values = config_enum_min_version),
	KW("handshake_timeout", SEC_TLS, T_DURATION, CFG(handshake_timeout_ms),
	   .min = 1, .max = 3600000),
	KW("ktls", SEC_TLS, T_ENUM, CFG(ktls), .values = config_enum_ktls),
	KW("session_tickets", SEC_TLS, T_BOOL, CFG(session_tickets)),
	KW("ocsp", SEC_TLS, T_ENUM, CFG(ocsp), .values = config_enum_ocsp),
	KW("ocsp_responder", SEC_TLS, T_STRING, CFG(ocsp_responder),
	   .chars = ":/._-[]%~", .max_len = 255),
	KW("ocsp_timeout", SEC_TLS, T_DURATION, CFG(ocsp_timeout_ms), .min = 1,
	   .max = 60000),
	KW("ocsp_fail", SEC_TLS, T_ENUM, CFG(ocsp_fail),
	   .values = config_enum_ocsp_fail),
	KW("ocsp_cache_size", SEC_TLS, T_UINT, CFG(ocsp_cache_size), .min = 1,
	   .max = 10000000),
	KW("crl_check_interval", SEC_TLS, T_DURATION,
	   CFG(crl_check_interval_ms), .min = 0, .max = DAY_MS),
	/* [location PREFIX] */
	KW("client_cert", SEC_LOCATION, T_ENUM, LOC(client_cert),
	   .values = config_enum_client_cert),
	KW("root", SEC_LOCATION, T_DIR, LOC(root)),
	KW("index", SEC_LOCATION, T_STRING, LOC(index), .chars = "._-+~@",
	   .max_len = 255),
	KW("return", SEC_LOCATION, T_RETURN, 0),
	KW("allow_subject", SEC_LOCATION, T_SUBJECT, LOC(allow_subject),
	   .flags = KW_REPEAT),
	KW("allow_san", SEC_LOCATION, T_STRLIST, LOC(allow_san),
	   .flags = KW_REPEAT),
	KW("allow_fingerprint", SEC_LOCATION, T_FINGERPRINT,
	   LOC(allow_fingerprint), .flags = KW_REPEAT),
	KW("proxy_pass", SEC_LOCATION, T_PROXY_PASS, 0),
	KW("forward_cert", SEC_LOCATION, T_BOOL, LOC(forward_cert)),
	KW("websocket", SEC_LOCATION, T_BOOL, LOC(websocket)),
	KW("metrics", SEC_LOCATION, T_BOOL, LOC(metrics)),
	KW("ready", SEC_LOCATION, T_BOOL, LOC(ready)),
	KW("header_prefix", SEC_LOCATION, T_STRING, LOC(header_prefix),
	   .chars = "-", .max_len = 64),
	/* [upstream NAME] */
	KW("server", SEC_UPSTREAM, T_SERVER, 0, .flags = KW_REPEAT),
	KW("connect_timeout", SEC_UPSTREAM, T_DURATION, UPS(connect_timeout_ms),
	   .min = 1, .max = 3600000),
	KW("read_timeout", SEC_UPSTREAM, T_DURATION, UPS(read_timeout_ms),
	   .min = 1, .max = DAY_MS),
	KW("keepalive", SEC_UPSTREAM, T_UINT, UPS(keepalive), .min = 0,
	   .max = 65536),
	/* [limits], [limits anonymous], [limits sha256:HEX]; 0 = unlimited */
	KW("max_conns", SEC_LIMITS, T_U64, LIM(max_conns), .max = UINT32_MAX,
	   .limit_bit = CONFIG_LIMIT_MAX_CONNS),
	KW("conn_rate", SEC_LIMITS, T_RATE, LIM(conn_rate), .max = UINT32_MAX,
	   .limit_bit = CONFIG_LIMIT_CONN_RATE),
	KW("conn_burst", SEC_LIMITS, T_U64, LIM(conn_burst), .max = UINT32_MAX,
	   .limit_bit = CONFIG_LIMIT_CONN_BURST),
	KW("req_rate", SEC_LIMITS, T_RATE, LIM(req_rate), .max = UINT32_MAX,
	   .limit_bit = CONFIG_LIMIT_REQ_RATE),
	KW("req_burst", SEC_LIMITS, T_U64, LIM(req_burst), .max = UINT32_MAX,
	   .limit_bit = CONFIG_LIMIT_REQ_BURST),
	KW("bandwidth_out", SEC_LIMITS, T_BANDWIDTH, LIM(bandwidth_out),
	   .max = 1ull << 40, .limit_bit = CONFIG_LIMIT_BW_OUT),
	KW("bandwidth_in", SEC_LIMITS, T_BANDWIDTH, LIM(bandwidth_in),
	   .max = 1ull << 40, .limit_bit = CONFIG_LIMIT_BW_IN),
	KW("fleet_max_conns", SEC_LIMITS, T_U64, LIM(fleet_max_conns),
	   .max = UINT32_MAX, .limit_bit = CONFIG_LIMIT_FLEET_MAX_CONNS),
	KW("fleet_req_rate", SEC_LIMITS, T_RATE, LIM(fleet_req_rate),
	   .max = UINT32_MAX, .limit_bit = CONFIG_LIMIT_FLEET_REQ_RATE),
	KW("fleet_bandwidth_out", SEC_LIMITS, T_BANDWIDTH,
	   LIM(fleet_bandwidth_out), .max = 1ull << 40,
	   .limit_bit = CONFIG_LIMIT_FLEET_BW_OUT),
	KW("fleet_fail", SEC_LIMITS, T_ENUM, LIM(fleet_fail),
	   .values = config_enum_fleet_fail),
	KW("anonymous_prefix_v4", SEC_LIMITS, T_UINT, CFG(anonymous_prefix_v4),
	   .flags = KW_CONFIG, .min = 0, .max = 32),
	KW("anonymous_prefix_v6", SEC_LIMITS, T_UINT, CFG(anonymous_prefix_v6),
	   .flags = KW_CONFIG, .min = 0, .max = 128),
	/* [bpf] */
	KW("mode", SEC_BPF, T_ENUM, CFG(bpf_mode),
	   .values = config_enum_bpf_mode),
	KW("instance", SEC_BPF, T_STRING, CFG(bpf_instance), .chars = "_-",
	   .max_len = 32),
	/* [fleet] */
	KW("redis", SEC_FLEET, T_STRLIST, CFG(fleet_redis), .flags = KW_REPEAT),
	KW("sentinel_master", SEC_FLEET, T_STRING, CFG(fleet_sentinel_master),
	   .chars = "._-", .max_len = 64),
	KW("password_file", SEC_FLEET, T_FILE, CFG(fleet_password_file)),
	KW("sync_interval", SEC_FLEET, T_DURATION, CFG(fleet_sync_ms),
	   .min = 10, .max = 10000),
	KW("key_prefix", SEC_FLEET, T_STRING, CFG(fleet_key_prefix),
	   .chars = ":._-", .max_len = 64),
	KW("host_id", SEC_FLEET, T_STRING, CFG(fleet_host_id), .chars = "._-",
	   .max_len = 64),
	KW("required", SEC_FLEET, T_BOOL, CFG(fleet_required)),
	KW("cluster", SEC_FLEET, T_BOOL, CFG(fleet_cluster)),
};

_Static_assert(sizeof(config_keywords) / sizeof(config_keywords[0]) ==
		       CONFIG_NKW,
	       "CONFIG_NKW in config_private.h: entries in config_keywords[]");

void config_error(struct config_ctx *ctx, int line, const char *fmt, ...)
{
	va_list ap;

	ctx->n_errors++;
	fprintf(ctx->errors, "%s:%d: ", ctx->cfg->path, line);
	va_start(ap, fmt);
	vfprintf(ctx->errors, fmt, ap);
	va_end(ap);
	fputc('\n', ctx->errors);
}

static int config_kw_index(enum config_section sec, const char *name)
{
	for (size_t i = 0; i < CONFIG_NKW; i++)
		if (config_keywords[i].section == sec &&
		    !strcmp(config_keywords[i].name, name))
			return (int)i;
	return -1;
}

/* Line where NAME was first set in the section instance SEEN, or 0. */
int config_seen_line(const struct config_seen *seen, enum config_section sec,
		     const char *name)
{
	int i = config_kw_index(sec, name);

	return i < 0 ? 0 : seen->line[i];
}

/* Where inih would stop looking for one of CHARS: at an inline comment
 * (';' after whitespace) or the end of the string. */
static char *config_find_sep(char *s, const char *chars)
{
	bool was_space = false;

	for (; *s; s++) {
		if (strchr(chars, *s))
			return s;
		if (was_space && *s == ';')
			return s;
		was_space = isspace((unsigned char)*s);
	}
	return s;
}

static char *config_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* ---- sections */

static void config_location_init(struct config_location *loc)
{
	memset(loc, 0, sizeof(*loc));
	loc->client_cert = CONFIG_CLIENT_CERT_OPTIONAL;
	loc->index = strdup(CONFIG_DEFAULT_INDEX);
	loc->header_prefix = strdup(CONFIG_DEFAULT_HEADER_PREFIX);
	loc->proxy_path = strdup("");
}

int config_oom(struct config_ctx *ctx)
{
	config_error(ctx, ctx->lineno, "out of memory");
	return -1;
}

/* Appends an upstream named NAME (and its seen table); its index or -1. */
int config_add_upstream(struct config_ctx *ctx, const char *name, int line)
{
	struct config *cfg = ctx->cfg;
	struct config_upstream *ups;
	struct config_seen *seen;
	size_t n = cfg->n_upstreams;

	ups = realloc(cfg->upstreams, (n + 1) * sizeof(*ups));
	if (!ups)
		return config_oom(ctx);
	cfg->upstreams = ups;
	seen = realloc(ctx->up_seen, (n + 1) * sizeof(*seen));
	if (!seen)
		return config_oom(ctx);
	ctx->up_seen = seen;

	memset(&ups[n], 0, sizeof(ups[n]));
	memset(&seen[n], 0, sizeof(seen[n]));
	ups[n].name = strdup(name);
	ups[n].line = line;
	ups[n].connect_timeout_ms = CONFIG_DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS;
	ups[n].read_timeout_ms = CONFIG_DEFAULT_UPSTREAM_READ_TIMEOUT_MS;
	ups[n].keepalive = CONFIG_DEFAULT_UPSTREAM_KEEPALIVE;
	cfg->n_upstreams = n + 1;
	if (!ups[n].name)
		return config_oom(ctx);
	return (int)n;
}

/*
 * The [location ARG] prefix in canonical form into PREFIX (INI_MAX_LINE):
 * "//" collapsed, no trailing '/', no "." or ".." segment, as request
 * paths are normalised before matching. -1 with the error reported.
 */
static int config_location_prefix(struct config_ctx *ctx, const char *arg,
				  char *prefix)
{
	const char *p, *seg;
	size_t n = 0;

	if (!*arg) {
		config_error(
			ctx, ctx->lineno,
			"[location] needs a path prefix, as [location /app]");
		return -1;
	}
	if (arg[0] != '/') {
		config_error(ctx, ctx->lineno,
			     "location prefix '%s' must start with '/'", arg);
		return -1;
	}
	if (config_has_space_or_ctl(arg) || strpbrk(arg, "?#%\\")) {
		config_error(ctx, ctx->lineno,
			     "location prefix '%s': expected a plain path "
			     "(no spaces, '?', '#', '%%' or '\\')",
			     arg);
		return -1;
	}
	for (p = arg; *p;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		seg = p;
		while (*p && *p != '/')
			p++;
		if ((p - seg == 1 && seg[0] == '.') ||
		    (p - seg == 2 && seg[0] == '.' && seg[1] == '.')) {
			config_error(ctx, ctx->lineno,
				     "location prefix '%s' has a '.' or '..' "
				     "segment",
				     arg);
			return -1;
		}
		prefix[n++] = '/';
		memcpy(prefix + n, seg, (size_t)(p - seg));
		n += (size_t)(p - seg);
	}
	if (!n)
		prefix[n++] = '/';
	prefix[n] = '\0';
	return 0;
}

static void config_open_location(struct config_ctx *ctx, const char *arg)
{
	struct config *cfg = ctx->cfg;
	struct config_location *locs;
	struct config_seen *seen;
	char prefix[INI_MAX_LINE];
	size_t n, i;

	if (config_location_prefix(ctx, arg, prefix) < 0)
		return;
	for (i = 0; i < cfg->n_locations; i++) {
		if (!strcmp(cfg->locations[i].prefix, prefix)) {
			config_error(ctx, ctx->lineno,
				     "duplicate [location %s] (first at line "
				     "%d)",
				     prefix, cfg->locations[i].line);
			return;
		}
	}

	n = cfg->n_locations;
	locs = realloc(cfg->locations, (n + 1) * sizeof(*locs));
	if (!locs) {
		config_oom(ctx);
		return;
	}
	cfg->locations = locs;
	seen = realloc(ctx->loc_seen, (n + 1) * sizeof(*seen));
	if (!seen) {
		config_oom(ctx);
		return;
	}
	ctx->loc_seen = seen;
	config_location_init(&locs[n]);
	memset(&seen[n], 0, sizeof(seen[n]));
	locs[n].prefix = strdup(prefix);
	locs[n].line = ctx->lineno;
	cfg->n_locations = n + 1;
	if (!locs[n].prefix || !locs[n].index || !locs[n].header_prefix ||
	    !locs[n].proxy_path) {
		config_oom(ctx);
		return;
	}
	ctx->sec = SEC_LOCATION;
	ctx->cur = n;
	ctx->seen = &seen[n];
}

static void config_open_upstream(struct config_ctx *ctx, const char *name)
{
	struct config *cfg = ctx->cfg;
	int i;

	if (!config_name_ok(name, "_.-", 64)) {
		config_error(ctx, ctx->lineno,
			     "bad upstream name '%s': expected 1-64 letters, "
			     "digits, '_', '.' or '-'",
			     name);
		return;
	}
	for (size_t j = 0; j < cfg->n_upstreams; j++) {
		if (!strcmp(cfg->upstreams[j].name, name)) {
			config_error(ctx, ctx->lineno,
				     "duplicate [upstream %s] (first at line "
				     "%d)",
				     name, cfg->upstreams[j].line);
			return;
		}
	}
	i = config_add_upstream(ctx, name, ctx->lineno);
	if (i < 0)
		return;
	ctx->sec = SEC_UPSTREAM;
	ctx->cur = (size_t)i;
	ctx->seen = &ctx->up_seen[i];
}

static void config_open_limits(struct config_ctx *ctx, const char *arg)
{
	struct config *cfg = ctx->cfg;
	struct config_limit *lims;
	struct config_seen *seen;
	char hex[65];
	size_t n;

	if (!*arg) {
		if (!ctx->limits_line)
			ctx->limits_line = ctx->lineno;
		ctx->sec = SEC_LIMITS;
		ctx->cur_limit = &cfg->limit_default;
		ctx->seen = &ctx->seen_limits;
		return;
	}
	if (!strcmp(arg, "anonymous")) {
		if (!ctx->anonymous_line)
			ctx->anonymous_line = ctx->lineno;
		ctx->sec = SEC_LIMITS;
		ctx->cur_limit = &cfg->limit_anonymous;
		ctx->seen = &ctx->seen_anonymous;
		return;
	}
	if (strncasecmp(arg, "sha256:", 7)) {
		config_error(ctx, ctx->lineno,
			     "unknown section [limits %s]: expected [limits], "
			     "[limits anonymous] or [limits sha256:HEX]",
			     arg);
		return;
	}
	if (config_normalise_fingerprint(arg, hex)) {
		config_error(ctx, ctx->lineno,
			     "bad fingerprint in [limits %s]: expected sha256: "
			     "and 64 hex digits",
			     arg);
		return;
	}
	for (n = 0; n < cfg->n_limit_overrides; n++) {
		if (!strcmp(cfg->limit_overrides[n].key, hex)) {
			config_error(ctx, ctx->lineno,
				     "duplicate [limits sha256:%s] (first at "
				     "line %d)",
				     hex, cfg->limit_overrides[n].line);
			return;
		}
	}
	n = cfg->n_limit_overrides;
	lims = realloc(cfg->limit_overrides, (n + 1) * sizeof(*lims));
	if (!lims) {
		config_oom(ctx);
		return;
	}
	cfg->limit_overrides = lims;
	seen = realloc(ctx->lim_seen, (n + 1) * sizeof(*seen));
	if (!seen) {
		config_oom(ctx);
		return;
	}
	ctx->lim_seen = seen;
	memset(&lims[n], 0, sizeof(lims[n]));
	memset(&seen[n], 0, sizeof(seen[n]));
	memcpy(lims[n].key, hex, sizeof(hex));
	lims[n].line = ctx->lineno;
	cfg->n_limit_overrides = n + 1;
	ctx->sec = SEC_LIMITS;
	ctx->cur_limit = &lims[n];
	ctx->seen = &seen[n];
}

/* S points at '['. Sets ctx->sec (SEC_INVALID when refused). */
static void config_open_section(struct config_ctx *ctx, char *s)
{
	char *end, *rest, *name, *arg;

	ctx->sec = SEC_INVALID;
	end = config_find_sep(s + 1, "]");
	if (*end != ']') {
		config_error(ctx, ctx->lineno, "section header without ']'");
		return;
	}
	*end = '\0';
	rest = end + 1;
	while (isspace((unsigned char)*rest))
		rest++;
	if (*rest && *rest != ';' && *rest != '#') {
		config_error(ctx, ctx->lineno,
			     "unexpected text after ']': '%s'", rest);
		return;
	}
	name = config_trim(s + 1);
	snprintf(ctx->section, sizeof(ctx->section), "%s", name);

	arg = name;
	while (*arg && !isspace((unsigned char)*arg))
		arg++;
	if (*arg)
		*arg++ = '\0';
	arg = config_trim(arg);

	if (!strcmp(name, "server") || !strcmp(name, "tls") ||
	    !strcmp(name, "bpf") || !strcmp(name, "fleet")) {
		if (*arg) {
			config_error(ctx, ctx->lineno,
				     "[%s] takes no argument (got '%s')", name,
				     arg);
			return;
		}
		if (name[0] == 's') {
			ctx->sec = SEC_SERVER;
			ctx->seen = &ctx->seen_server;
		} else if (name[0] == 't') {
			ctx->sec = SEC_TLS;
			ctx->seen = &ctx->seen_tls;
			if (!ctx->tls_line)
				ctx->tls_line = ctx->lineno;
		} else if (name[0] == 'f') {
			ctx->sec = SEC_FLEET;
			ctx->seen = &ctx->seen_fleet;
			if (!ctx->cfg->fleet_line)
				ctx->cfg->fleet_line = ctx->lineno;
		} else {
			ctx->sec = SEC_BPF;
			ctx->seen = &ctx->seen_bpf;
		}
	} else if (!strcmp(name, "location")) {
		config_open_location(ctx, arg);
	} else if (!strcmp(name, "upstream")) {
		config_open_upstream(ctx, arg);
	} else if (!strcmp(name, "limits")) {
		config_open_limits(ctx, arg);
	} else {
		config_error(ctx, ctx->lineno,
			     "unknown section [%s%s%s]: expected server, tls, "
			     "location, upstream, limits, bpf or fleet",
			     name, *arg ? " " : "", arg);
	}
}

/*
 * inih's reader: one line per call, counted here. Section headers,
 * comments, and lines we refuse become empty lines for inih; key lines
 * go through without their leading whitespace.
 */
static char *config_reader(char *str, int num, void *stream)
{
	struct config_ctx *ctx = stream;
	ssize_t n;
	char *s, *sep;

	n = getline(&ctx->buf, &ctx->cap, ctx->in);
	if (n < 0)
		return NULL;
	ctx->lineno++;
	str[0] = '\0';
	if (n > 0 && ctx->buf[n - 1] == '\n')
		ctx->buf[--n] = '\0';
	if (n > 0 && ctx->buf[n - 1] == '\r')
		ctx->buf[--n] = '\0';
	s = ctx->buf;
	if (ctx->lineno == 1 && !strncmp(s, "\xef\xbb\xbf", 3))
		s += 3;
	while (isspace((unsigned char)*s))
		s++;

	if (memchr(ctx->buf, '\0', (size_t)n)) {
		config_error(ctx, ctx->lineno, "NUL byte in line");
		if (*s == '[')
			ctx->sec = SEC_INVALID;
		return str;
	}
	if (n > num - 1) {
		config_error(ctx, ctx->lineno,
			     "line too long (max %d characters)", num - 1);
		if (*s == '[')
			ctx->sec = SEC_INVALID; /* skip its keys */
		return str;
	}
	if (!*s || *s == ';' || *s == '#')
		return str;
	if (*s == '[') {
		config_open_section(ctx, s);
		return str;
	}
	sep = config_find_sep(s, "=:");
	if (*sep != '=') {
		if (ctx->sec != SEC_INVALID)
			config_error(ctx, ctx->lineno,
				     "expected 'key = value', got '%s'", s);
		return str;
	}
	memcpy(str, s, strlen(s) + 1);
	return str;
}

/* ---- dispatch: one key line to its keyword */

static int config_handler(void *user, const char *section, const char *name,
			  const char *value)
{
	struct config_ctx *ctx = user;
	const struct config_keyword *kw;
	char *base;
	int i;

	(void)section; /* truncated by inih; ctx->section is the real one */
	if (ctx->sec == SEC_INVALID)
		return 1;
	if (!*name) {
		config_error(ctx, ctx->lineno, "expected 'key = value'");
		return 1;
	}
	if (ctx->sec == SEC_NONE) {
		config_error(ctx, ctx->lineno,
			     "key '%s' outside any section (start with "
			     "[server], [tls], ...)",
			     name);
		return 1;
	}
	i = config_kw_index(ctx->sec, name);
	if (i < 0) {
		config_error(ctx, ctx->lineno, "unknown key '%s' in [%s]", name,
			     ctx->section);
		return 1;
	}
	kw = &config_keywords[i];
	if (ctx->seen->line[i] && !(kw->flags & KW_REPEAT)) {
		config_error(ctx, ctx->lineno,
			     "duplicate key '%s' in [%s] (first at line %d)",
			     name, ctx->section, ctx->seen->line[i]);
		return 1;
	}
	if (!ctx->seen->line[i])
		ctx->seen->line[i] = ctx->lineno;
	if (!*value) {
		config_error(ctx, ctx->lineno, "missing value for '%s'", name);
		return 1;
	}

	switch (ctx->sec) {
	case SEC_LOCATION:
		base = (char *)&ctx->cfg->locations[ctx->cur];
		break;
	case SEC_UPSTREAM:
		base = (char *)&ctx->cfg->upstreams[ctx->cur];
		break;
	case SEC_LIMITS:
		base = (char *)ctx->cur_limit;
		if (!(kw->flags & KW_CONFIG))
			break;
		if (ctx->cur_limit != &ctx->cfg->limit_default) {
			config_error(ctx, ctx->lineno,
				     "'%s' belongs in [limits], not in [%s]",
				     name, ctx->section);
			return 1;
		}
		base = (char *)ctx->cfg;
		break;
	default:
		base = (char *)ctx->cfg;
		break;
	}
	{
		int before = ctx->n_errors;

		config_set_value(ctx, kw, base, value);
		if (kw->limit_bit && ctx->n_errors == before)
			ctx->cur_limit->set |= kw->limit_bit;
	}
	return 1;
}

/* ---- public */

static int config_defaults(struct config *cfg, const char *path)
{
	char *real, *dir;

	cfg->path = strdup(path);
	real = realpath(path, NULL);
	if (!cfg->path || !real) {
		free(real);
		return -1;
	}
	dir = dirname(real);
	cfg->dir = strdup(dir);
	free(real);

	cfg->workers = 0; /* auto */
	cfg->access_log = strdup(CONFIG_DEFAULT_ACCESS_LOG);
	cfg->error_log = strdup(CONFIG_DEFAULT_ERROR_LOG);
	cfg->log_level = strdup(CONFIG_DEFAULT_LOG_LEVEL);
	cfg->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	cfg->max_header_size = CONFIG_DEFAULT_MAX_HEADER_SIZE;
	cfg->max_body_size = CONFIG_DEFAULT_MAX_BODY_SIZE;
	cfg->request_timeout_ms = CONFIG_DEFAULT_REQUEST_TIMEOUT_MS;
	cfg->drain_timeout_ms = CONFIG_DEFAULT_DRAIN_TIMEOUT_MS;
	cfg->drain_delay_ms = CONFIG_DEFAULT_DRAIN_DELAY_MS;
	cfg->verify_depth = CONFIG_DEFAULT_VERIFY_DEPTH;
	cfg->min_version = TLS1_2_VERSION;
	cfg->handshake_timeout_ms = CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	cfg->ktls = CONFIG_KTLS_AUTO;
	cfg->session_tickets = true;
	cfg->ocsp_timeout_ms = CONFIG_DEFAULT_OCSP_TIMEOUT_MS;
	cfg->ocsp_cache_size = CONFIG_DEFAULT_OCSP_CACHE_SIZE;
	cfg->crl_check_interval_ms = CONFIG_DEFAULT_CRL_CHECK_INTERVAL_MS;
	strcpy(cfg->limit_default.key, "default");
	strcpy(cfg->limit_anonymous.key, "anonymous");
	cfg->anonymous_prefix_v4 = CONFIG_DEFAULT_ANONYMOUS_PREFIX_V4;
	cfg->anonymous_prefix_v6 = CONFIG_DEFAULT_ANONYMOUS_PREFIX_V6;
	cfg->bpf_mode = CONFIG_BPF_AUTO;
	cfg->bpf_instance = strdup(CONFIG_DEFAULT_BPF_INSTANCE);
	cfg->fleet_sync_ms = CONFIG_DEFAULT_FLEET_SYNC_MS;
	cfg->fleet_key_prefix = strdup(CONFIG_DEFAULT_FLEET_KEY_PREFIX);
	cfg->fleet_host_id = strdup("auto");
	if (!cfg->dir || !cfg->access_log || !cfg->error_log ||
	    !cfg->log_level || !cfg->bpf_instance || !cfg->fleet_key_prefix ||
	    !cfg->fleet_host_id)
		return -1;
	return 0;
}

int config_load(const char *path, FILE *errors, struct config **out)
{
	struct config_ctx ctx = {.errors = errors ? errors : stderr};
	struct config *cfg;
	int rc;

	*out = NULL;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		fprintf(ctx.errors, "%s: out of memory\n", path);
		return -1;
	}
	ctx.cfg = cfg;
	ctx.in = fopen(path, "re");
	if (!ctx.in) {
		fprintf(ctx.errors, "%s: cannot open: %s\n", path,
			strerror(errno));
		goto bad;
	}
	if (config_defaults(cfg, path)) {
		fprintf(ctx.errors, "%s: out of memory\n", path);
		goto bad;
	}

	rc = ini_parse_stream(config_reader, &ctx, config_handler, &ctx);
	if (rc < 0)
		config_error(&ctx, ctx.lineno, "cannot parse (inih error %d)",
			     rc);
	if (ferror(ctx.in))
		config_error(&ctx, ctx.lineno, "read error");
	config_check(&ctx);
	if (ctx.n_errors)
		goto bad;

	fclose(ctx.in);
	free(ctx.buf);
	free(ctx.loc_seen);
	free(ctx.up_seen);
	free(ctx.lim_seen);
	*out = cfg;
	return 0;
bad:
	if (ctx.in)
		fclose(ctx.in);
	free(ctx.buf);
	free(ctx.loc_seen);
	free(ctx.up_seen);
	free(ctx.lim_seen);
	config_free(cfg);
	return -1;
}

static void config_strlist_free(struct config_strlist *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_locations; i++) {
		struct config_location *loc = &cfg->locations[i];

		free(loc->prefix);
		free(loc->root);
		free(loc->index);
		free(loc->return_body);
		config_strlist_free(&loc->allow_subject);
		config_strlist_free(&loc->allow_san);
		config_strlist_free(&loc->allow_fingerprint);
		free(loc->proxy_upstream);
		free(loc->proxy_path);
		free(loc->header_prefix);
	}
	free(cfg->locations);
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		free(cfg->upstreams[i].name);
	free(cfg->upstreams);
	free(cfg->limit_overrides);
	free(cfg->path);
	free(cfg->dir);
	free(cfg->access_log);
	free(cfg->error_log);
	free(cfg->log_level);
	free(cfg->user);
	free(cfg->pid_file);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->client_ca);
	free(cfg->crl);
	free(cfg->ocsp_responder);
	free(cfg->bpf_instance);
	config_strlist_free(&cfg->fleet_redis);
	free(cfg->fleet_sentinel_master);
	free(cfg->fleet_password_file);
	free(cfg->fleet_key_prefix);
	free(cfg->fleet_host_id);
	free(cfg);
}

const struct config_upstream *config_find_upstream(const struct config *cfg,
						   const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_upstreams; i++)
		if (!strcmp(cfg->upstreams[i].name, name))
			return &cfg->upstreams[i];
	return NULL;
}

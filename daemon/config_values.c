// SPDX-License-Identifier: MIT
/*
 * Configuration values: the small parsers (numbers, durations, sizes,
 * rates, booleans, fingerprints, addresses, names) and config_set_value(),
 * which checks one "key = value" against its config_keywords[] entry and
 * stores it. Errors say FILE:LINE and what was expected.
 *
 * Addresses: "127.0.0.1:8443", "[::1]:8443", "[::]:8443" (all IPv6),
 * "*:8443" (all IPv4, 0.0.0.0) or "name:port" (resolved once, at load,
 * first address returned).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_private.h"

/* ---- small parsers: 0 or -1, never print */

/* Decimal digits (at least one); END gets the first other character. */
static int config_parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

static int config_parse_u64(const char *s, uint64_t *out)
{
	const char *end;

	if (config_parse_digits(s, out, &end) || *end)
		return -1;
	return 0;
}

/* "10s", "500ms", "2m", "1h"; a bare number is seconds. */
static int config_parse_duration(const char *s, uint64_t *ms)
{
	uint64_t v, mult;
	const char *u;

	if (config_parse_digits(s, &v, &u))
		return -1;
	if (!*u || !strcmp(u, "s"))
		mult = 1000;
	else if (!strcmp(u, "ms"))
		mult = 1;
	else if (!strcmp(u, "m"))
		mult = 60000;
	else if (!strcmp(u, "h"))
		mult = 3600000;
	else
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*ms = v * mult;
	return 0;
}

/* "512", "16K", "1M", "1G" (K = 1024); PER_SECOND accepts a "/s" tail. */
static int config_parse_size(const char *s, uint64_t *bytes, bool per_second)
{
	uint64_t v, mult = 1;
	const char *u;

	if (config_parse_digits(s, &v, &u))
		return -1;
	switch (*u) {
	case 'k':
	case 'K':
		mult = 1ull << 10;
		u++;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		u++;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		u++;
		break;
	}
	if (per_second && !strcmp(u, "/s"))
		u += 2;
	if (*u || v > UINT64_MAX / mult)
		return -1;
	*bytes = v * mult;
	return 0;
}

/*
 * "50/s", "3000/m", "100/h" or a bare number (per second). -2 when the
 * result is not a whole number per second: the limiters count per second,
 * and rounding "100/m" silently to 1 or 2 per second would surprise.
 */
static int config_parse_rate(const char *s, uint64_t *per_second)
{
	uint64_t v, div;
	const char *u;

	if (config_parse_digits(s, &v, &u))
		return -1;
	if (!*u || !strcmp(u, "/s"))
		div = 1;
	else if (!strcmp(u, "/m"))
		div = 60;
	else if (!strcmp(u, "/h"))
		div = 3600;
	else
		return -1;
	if (v % div)
		return -2;
	*per_second = v / div;
	return 0;
}

static int config_parse_bool(const char *s, bool *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "on") ||
	    !strcasecmp(s, "true")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(s, "no") || !strcasecmp(s, "off") ||
	    !strcasecmp(s, "false")) {
		*out = false;
		return 0;
	}
	return -1;
}

/*
 * "sha256:AB:CD:..", "abcd..." -> 64 lowercase hex digits. Colons are
 * ignored wherever they are, as operators paste them from openssl x509
 * -fingerprint output.
 */
int config_normalise_fingerprint(const char *in, char out[65])
{
	size_t n = 0;

	if (!strncasecmp(in, "sha256:", 7))
		in += 7;
	for (; *in; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || n == 64)
			return -1;
		out[n++] = (char)tolower((unsigned char)*in);
	}
	out[n] = '\0';
	return n == 64 ? 0 : -1;
}

bool config_name_ok(const char *s, const char *extra, size_t max_len)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr(extra, s[n]))
			return false;
	return n > 0 && n <= max_len;
}

bool config_has_space_or_ctl(const char *s)
{
	for (; *s; s++)
		if (isspace((unsigned char)*s) || (unsigned char)*s < 0x20 ||
		    *s == 0x7f)
			return true;
	return false;
}

/*
 * "127.0.0.1:8443", "[::1]:8443", "*:8443" (0.0.0.0) or "name:port"
 * (resolved now, first address). *WHY gets a short reason on failure.
 */
int config_parse_addr(const char *s, struct config_addr *a, const char **why)
{
	char host[256];
	const char *port, *close, *colon;
	size_t hlen;
	uint64_t p;
	bool v6 = false;

	if (strlen(s) >= sizeof(a->text)) {
		*why = "address too long";
		return -1;
	}
	if (s[0] == '[') {
		close = strchr(s, ']');
		if (!close || close[1] != ':') {
			*why = "expected [IPV6]:PORT";
			return -1;
		}
		hlen = (size_t)(close - s - 1);
		memcpy(host, s + 1, hlen);
		port = close + 2;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			*why = "expected HOST:PORT";
			return -1;
		}
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen)) {
			*why = "an IPv6 address needs brackets, as [::1]:8443";
			return -1;
		}
		memcpy(host, s, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';
	if (!hlen) {
		*why = "missing host";
		return -1;
	}
	if (config_parse_u64(port, &p) || p < 1 || p > 65535) {
		*why = "port must be a number from 1 to 65535";
		return -1;
	}

	memset(a, 0, sizeof(*a));
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why = "bad IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		a->len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		if (!strcmp(host, "*")) {
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
			struct addrinfo *res = NULL;

			if (getaddrinfo(host, NULL, &hints, &res) || !res) {
				*why = "cannot resolve host name";
				return -1;
			}
			memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
			a->len = res->ai_addrlen;
			freeaddrinfo(res);
			if (a->ss.ss_family == AF_INET6)
				((struct sockaddr_in6 *)&a->ss)->sin6_port =
					htons((uint16_t)p);
			else
				sin->sin_port = htons((uint16_t)p);
			strcpy(a->text, s);
			return 0;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		a->len = sizeof(*sin);
	}
	strcpy(a->text, s);
	return 0;
}

/* Absolute path for VALUE: as is, or under the config file's folder. */
static char *config_resolve(const struct config *cfg, const char *value)
{
	char *p;

	if (value[0] == '/')
		return strdup(value);
	if (asprintf(&p, "%s/%s", cfg->dir, value) < 0)
		return NULL;
	return p;
}

/* ---- values */

static void config_bad_value(struct config_ctx *ctx,
			     const struct config_keyword *kw, const char *value,
			     const char *expected)
{
	config_error(ctx, ctx->lineno, "bad value '%s' for %s: expected %s",
		     value, kw->name, expected);
}

static void config_bad_enum(struct config_ctx *ctx,
			    const struct config_keyword *kw, const char *value)
{
	char list[256] = "";
	size_t len = 0;

	for (const struct config_enum *e = kw->values; e->name; e++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
					len ? ", " : "one of ", e->name);
	config_bad_value(ctx, kw, value, list);
}

static const struct config_enum *config_find_enum(const struct config_enum *e,
						  const char *value)
{
	for (; e->name; e++)
		if (!strcmp(e->name, value))
			return e;
	return NULL;
}

static int config_strlist_add(struct config_strlist *l, const char *s)
{
	char **items = realloc(l->items, (l->count + 1) * sizeof(*items));

	if (!items)
		return -1;
	l->items = items;
	items[l->count] = strdup(s);
	if (!items[l->count])
		return -1;
	l->count++;
	return 0;
}

static void config_set_string(struct config_ctx *ctx, char **dst, char *s)
{
	if (!s) {
		config_oom(ctx);
		return;
	}
	free(*dst);
	*dst = s;
}

static void config_set_file(struct config_ctx *ctx,
			    const struct config_keyword *kw, char *base,
			    const char *value)
{
	char *path = config_resolve(ctx->cfg, value), *real;
	struct stat st;
	int fd;

	if (!path) {
		config_oom(ctx);
		return;
	}
	if (kw->type == T_DIR) {
		if (stat(path, &st)) {
			config_error(ctx, ctx->lineno, "%s: cannot use %s: %s",
				     kw->name, path, strerror(errno));
			goto out;
		}
		if (!S_ISDIR(st.st_mode)) {
			config_error(ctx, ctx->lineno,
				     "%s: %s is not a directory", kw->name,
				     path);
			goto out;
		}
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			config_error(ctx, ctx->lineno, "%s: cannot read %s: %s",
				     kw->name, path, strerror(errno));
			goto out;
		}
		if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
			close(fd);
			config_error(ctx, ctx->lineno,
				     "%s: %s is not a regular file", kw->name,
				     path);
			goto out;
		}
		close(fd);
	}
	real = realpath(path, NULL);
	if (!real) {
		config_error(ctx, ctx->lineno, "%s: cannot resolve %s: %s",
			     kw->name, path, strerror(errno));
		goto out;
	}
	config_set_string(ctx, (char **)(base + kw->offset), real);
	if (kw->flags & KW_LINE)
		*(int *)((char *)ctx->cfg + kw->line_offset) = ctx->lineno;
out:
	free(path);
}

static void config_set_listen(struct config_ctx *ctx, const char *value)
{
	struct config *cfg = ctx->cfg;
	struct config_listen l = {.line = ctx->lineno};
	char buf[INI_MAX_LINE], *addr, *flag;
	const char *why;

	snprintf(buf, sizeof(buf), "%s", value);
	addr = strtok(buf, " \t");
	flag = strtok(NULL, " \t");
	if (flag && (strcmp(flag, "proxy_protocol") || strtok(NULL, " \t"))) {
		config_error(ctx, ctx->lineno,
			     "bad value '%s' for listen: expected ADDRESS:PORT "
			     "[proxy_protocol]",
			     value);
		return;
	}
	if (config_parse_addr(addr, &l.addr, &why)) {
		config_error(ctx, ctx->lineno, "bad value '%s' for listen: %s",
			     value, why);
		return;
	}
	l.proxy_protocol = flag != NULL;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (cfg->listen[i].addr.len == l.addr.len &&
		    !memcmp(&cfg->listen[i].addr.ss, &l.addr.ss, l.addr.len)) {
			config_error(ctx, ctx->lineno,
				     "duplicate listen %s (first at line %d)",
				     addr, cfg->listen[i].line);
			return;
		}
	}
	if (cfg->n_listen == CONFIG_MAX_LISTEN) {
		config_error(ctx, ctx->lineno, "too many listen lines (max %d)",
			     CONFIG_MAX_LISTEN);
		return;
	}
	cfg->listen[cfg->n_listen++] = l;
}

/* One "ADDR" or "ADDR/BITS" of a proxy_from list; *WHY on failure. */
static int config_parse_cidr(const char *item, struct config_cidr *c,
			     const char **why)
{
	char s[INET6_ADDRSTRLEN + 8], *slash;
	unsigned max, full, i;
	uint64_t bits;

	memset(c, 0, sizeof(*c));
	if (strlen(item) >= sizeof(s)) {
		*why = "too long for an address";
		return -1;
	}
	strcpy(s, item);
	slash = strchr(s, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, s, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, s, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	bits = max;
	if (slash && (config_parse_u64(slash + 1, &bits) || bits > max)) {
		*why = max == 32 ? "prefix length must be 0 to 32"
				 : "prefix length must be 0 to 128";
		return -1;
	}
	c->prefix = (unsigned)bits;
	/* "10.0.0.1/8" is a typo more often than a choice: name it. */
	full = c->prefix / 8;
	for (i = full; i < max / 8; i++) {
		unsigned char mask =
			i == full && c->prefix % 8
				? (unsigned char)(0xff >> (c->prefix % 8))
				: 0xff;

		if (c->addr[i] & mask) {
			*why = "host bits are set after the prefix length";
			return -1;
		}
	}
	return 0;
}

/* "proxy_from = 10.0.0.0/8, 192.0.2.7, 2001:db8::/32"; repeatable. */
static void config_set_proxy_from(struct config_ctx *ctx, const char *value)
{
	struct config *cfg = ctx->cfg;
	char buf[INI_MAX_LINE], *item, *save = NULL;
	const char *why;
	struct config_cidr c;

	snprintf(buf, sizeof(buf), "%s", value);
	if (!buf[0] || buf[0] == ',' || buf[strlen(buf) - 1] == ',' ||
	    strstr(buf, ",,")) {
		config_error(ctx, ctx->lineno,
			     "bad value '%s' for proxy_from: empty item in the "
			     "list",
			     value);
		return;
	}
	for (item = strtok_r(buf, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*item))
			item++;
		for (char *e = item + strlen(item);
		     e > item && isspace((unsigned char)e[-1]);)
			*--e = '\0';
		if (!*item) {
			config_error(ctx, ctx->lineno,
				     "bad value '%s' for proxy_from: empty "
				     "item in the list",
				     value);
			return;
		}
		if (config_parse_cidr(item, &c, &why)) {
			config_error(ctx, ctx->lineno,
				     "bad value '%s' for proxy_from: '%s': %s "
				     "(expected ADDRESS or ADDRESS/BITS, as "
				     "10.0.0.0/8 or 2001:db8::/32)",
				     value, item, why);
			return;
		}
		if (cfg->n_proxy_from == CONFIG_MAX_PROXY_FROM) {
			config_error(ctx, ctx->lineno,
				     "too many proxy_from networks (max %d)",
				     CONFIG_MAX_PROXY_FROM);
			return;
		}
		c.line = ctx->lineno;
		cfg->proxy_from[cfg->n_proxy_from++] = c;
	}
}

static void config_set_server(struct config_ctx *ctx, const char *value)
{
	struct config_upstream *u = &ctx->cfg->upstreams[ctx->cur];
	const char *why;

	if (u->n_servers == CONFIG_MAX_UPSTREAM_SERVERS) {
		config_error(ctx, ctx->lineno,
			     "too many servers in [upstream %s] (max %d)",
			     u->name, CONFIG_MAX_UPSTREAM_SERVERS);
		return;
	}
	if (config_parse_addr(value, &u->servers[u->n_servers], &why)) {
		config_error(ctx, ctx->lineno, "bad value '%s' for server: %s",
			     value, why);
		return;
	}
	u->n_servers++;
}

static void config_set_return(struct config_ctx *ctx,
			      const struct config_keyword *kw,
			      const char *value)
{
	struct config_location *loc = &ctx->cfg->locations[ctx->cur];
	uint64_t status;
	const char *p;

	if (config_parse_digits(value, &status, &p) || p - value != 3 ||
	    status < 100 || status > 599 ||
	    (*p && !isspace((unsigned char)*p))) {
		config_bad_value(ctx, kw, value,
				 "a status from 100 to 599 and an optional "
				 "body, as '200 ok'");
		return;
	}
	while (isspace((unsigned char)*p))
		p++;
	loc->return_status = (int)status;
	config_set_string(ctx, &loc->return_body, strdup(p));
}

static void config_set_proxy_pass(struct config_ctx *ctx,
				  const struct config_keyword *kw,
				  const char *value)
{
	struct config *cfg = ctx->cfg;
	struct config_location *loc = &cfg->locations[ctx->cur];
	char name[64];
	const char *auth, *path, *why;
	struct config_addr addr;
	size_t len;
	int i;

	if (!strncasecmp(value, "https://", 8)) {
		config_bad_value(ctx, kw, value,
				 "http://NAME_OR_HOST:PORT[/path] (TLS to "
				 "upstreams is not supported)");
		return;
	}
	if (strncasecmp(value, "http://", 7) ||
	    config_has_space_or_ctl(value)) {
		config_bad_value(ctx, kw, value,
				 "http://NAME_OR_HOST:PORT[/path]");
		return;
	}
	auth = value + 7;
	path = strchr(auth, '/');
	if (!path)
		path = auth + strlen(auth);
	len = (size_t)(path - auth);
	if (!len || len >= sizeof(name) || strpbrk(path, "?#")) {
		config_bad_value(ctx, kw, value,
				 "http://NAME_OR_HOST:PORT[/path]");
		return;
	}
	memcpy(name, auth, len);
	name[len] = '\0';

	if (name[0] == '[' || strchr(name, ':')) {
		/* An inline host:port becomes an upstream of its own. */
		if (config_parse_addr(name, &addr, &why)) {
			config_error(ctx, ctx->lineno,
				     "bad value '%s' for proxy_pass: %s", value,
				     why);
			return;
		}
		if (!config_find_upstream(cfg, name)) {
			i = config_add_upstream(ctx, name, ctx->lineno);
			if (i < 0)
				return;
			cfg->upstreams[i].servers[0] = addr;
			cfg->upstreams[i].n_servers = 1;
			loc = &cfg->locations[ctx->cur];
		}
	} else if (!config_name_ok(name, "_.-", 64)) {
		config_bad_value(ctx, kw, value,
				 "http://NAME_OR_HOST:PORT[/path]");
		return;
	}
	config_set_string(ctx, &loc->proxy_upstream, strdup(name));
	config_set_string(ctx, &loc->proxy_path, strdup(path));
}

static void config_set_number(struct config_ctx *ctx,
			      const struct config_keyword *kw, char *base,
			      const char *value)
{
	uint64_t v;
	char expect[160];
	int rc;

	switch (kw->type) {
	case T_UINT:
	case T_U64:
		rc = config_parse_u64(value, &v);
		snprintf(expect, sizeof(expect), "a number from %llu to %llu",
			 (unsigned long long)kw->min,
			 (unsigned long long)kw->max);
		break;
	case T_WORKERS:
		if (!strcmp(value, "auto")) {
			*(unsigned *)(base + kw->offset) = 0;
			return;
		}
		rc = config_parse_u64(value, &v);
		snprintf(expect, sizeof(expect),
			 "auto or a number from %llu to %llu",
			 (unsigned long long)kw->min,
			 (unsigned long long)kw->max);
		break;
	case T_DURATION:
		rc = config_parse_duration(value, &v);
		snprintf(expect, sizeof(expect),
			 "a duration as 10s, 500ms, 2m or 1h (a bare number "
			 "is seconds) from %llums to %llums",
			 (unsigned long long)kw->min,
			 (unsigned long long)kw->max);
		break;
	case T_SIZE:
	case T_BANDWIDTH:
		rc = config_parse_size(value, &v, kw->type == T_BANDWIDTH);
		snprintf(expect, sizeof(expect),
			 "a size in bytes with an optional K, M or G suffix "
			 "(K = 1024)%s, at most %llu bytes",
			 kw->type == T_BANDWIDTH ? " per second, 0 = unlimited"
						 : "",
			 (unsigned long long)kw->max);
		break;
	case T_RATE:
		rc = config_parse_rate(value, &v);
		if (rc == -2) {
			config_bad_value(ctx, kw, value,
					 "a whole number per second (the "
					 "limiter counts per second)");
			return;
		}
		snprintf(expect, sizeof(expect),
			 "a rate as 50/s, 3000/m or 36000/h (a bare number is "
			 "per second, 0 = unlimited), at most %llu/s",
			 (unsigned long long)kw->max);
		break;
	default:
		return;
	}
	if (rc || v < kw->min || v > kw->max) {
		config_bad_value(ctx, kw, value, expect);
		return;
	}
	switch (kw->type) {
	case T_UINT:
	case T_WORKERS:
	case T_DURATION:
		*(unsigned *)(base + kw->offset) = (unsigned)v;
		break;
	case T_SIZE:
		*(size_t *)(base + kw->offset) = (size_t)v;
		break;
	default:
		*(uint64_t *)(base + kw->offset) = v;
		break;
	}
}

/* Strings: free text checked against kw->chars, a word of kw->values,
 * an enum, a path (a log file may also be "stderr" or "off"). */
static void config_set_text(struct config_ctx *ctx,
			    const struct config_keyword *kw, char *base,
			    const char *value)
{
	const struct config_enum *e;
	char **dst = (char **)(base + kw->offset);

	switch (kw->type) {
	case T_STRING:
		if (kw->chars &&
		    !config_name_ok(value, kw->chars, kw->max_len)) {
			char expect[128];

			snprintf(expect, sizeof(expect),
				 "1-%zu letters, digits or any of \"%s\"",
				 kw->max_len, kw->chars);
			config_bad_value(ctx, kw, value, expect);
			return;
		}
		config_set_string(ctx, dst, strdup(value));
		break;
	case T_WORD:
		if (!config_find_enum(kw->values, value)) {
			config_bad_enum(ctx, kw, value);
			return;
		}
		config_set_string(ctx, dst, strdup(value));
		break;
	case T_ENUM:
		e = config_find_enum(kw->values, value);
		if (!e) {
			config_bad_enum(ctx, kw, value);
			return;
		}
		*(int *)(base + kw->offset) = e->value;
		break;
	case T_LOGFILE:
		if (!strcmp(value, "stderr") ||
		    ((kw->flags & KW_ALLOW_OFF) && !strcmp(value, "off"))) {
			config_set_string(ctx, dst, strdup(value));
			break;
		}
		/* fall through */
	default: /* T_PATH */
		config_set_string(ctx, dst, config_resolve(ctx->cfg, value));
		break;
	}
}

/* Repeatable keys: allow lists of subjects, SANs and fingerprints. */
static void config_set_list(struct config_ctx *ctx,
			    const struct config_keyword *kw, char *base,
			    const char *value)
{
	struct config_strlist *list =
		(struct config_strlist *)(base + kw->offset);
	char fp[65];

	if (kw->type == T_SUBJECT && !strchr(value, '=')) {
		config_bad_value(ctx, kw, value,
				 "an RFC 2253 name such as "
				 "'CN=client1,O=corp' or 'CN=client1'");
		return;
	}
	if (kw->type == T_STRLIST && config_has_space_or_ctl(value)) {
		config_bad_value(ctx, kw, value,
				 "a DNS name or URI without spaces");
		return;
	}
	if (kw->type == T_FINGERPRINT) {
		if (config_normalise_fingerprint(value, fp)) {
			config_bad_value(
				ctx, kw, value,
				"a SHA-256 fingerprint: 64 hex digits, "
				"colons and a sha256: prefix allowed");
			return;
		}
		value = fp;
	}
	if (config_strlist_add(list, value))
		config_oom(ctx);
}

void config_set_value(struct config_ctx *ctx, const struct config_keyword *kw,
		      char *base, const char *value)
{
	bool b;

	switch (kw->type) {
	case T_STRING:
	case T_WORD:
	case T_ENUM:
	case T_LOGFILE:
	case T_PATH:
		config_set_text(ctx, kw, base, value);
		break;
	case T_FILE:
	case T_DIR:
		config_set_file(ctx, kw, base, value);
		break;
	case T_BOOL:
		if (config_parse_bool(value, &b)) {
			config_bad_value(ctx, kw, value,
					 "yes or no (also on/off, true/false)");
			return;
		}
		*(bool *)(base + kw->offset) = b;
		break;
	case T_UINT:
	case T_U64:
	case T_WORKERS:
	case T_DURATION:
	case T_SIZE:
	case T_BANDWIDTH:
	case T_RATE:
		config_set_number(ctx, kw, base, value);
		break;
	case T_LISTEN:
		config_set_listen(ctx, value);
		break;
	case T_SERVER:
		config_set_server(ctx, value);
		break;
	case T_CIDR:
		config_set_proxy_from(ctx, value);
		break;
	case T_RETURN:
		config_set_return(ctx, kw, value);
		break;
	case T_PROXY_PASS:
		config_set_proxy_pass(ctx, kw, value);
		break;
	case T_SUBJECT:
	case T_STRLIST:
	case T_FINGERPRINT:
		config_set_list(ctx, kw, base, value);
		break;
	}
}

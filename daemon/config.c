// SPDX-License-Identifier: MIT
/*
 * Configuration loader. libinih splits "key = value" lines and strips
 * comments; everything else is driven by config_keywords[] (name, section,
 * type, where the value goes, allowed values), as nginx declares its
 * directives as data. A separate check step (config_check) runs after the
 * whole file is read and catches combinations, naming both keys.
 *
 * Our own line reader sits in front of inih because the packaged inih is
 * built without INI_HANDLER_LINENO, truncates section names to 49 bytes
 * (too short for "[limits sha256:<64 hex>]") and silently splits lines
 * longer than INI_MAX_LINE. The reader counts lines, refuses long lines,
 * parses section headers itself and hands inih only key lines, with the
 * leading whitespace removed so that inih never treats an indented line
 * as the continuation of the previous value.
 *
 * Addresses: "127.0.0.1:8443", "[::1]:8443", "[::]:8443" (all IPv6),
 * "*:8443" (all IPv4, 0.0.0.0) or "name:port" (resolved once, at load,
 * first address returned).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/tls1.h>

#include "config.h"

#define CONFIG_LINE_MAX (INI_MAX_LINE - 1) /* characters, newline excluded */

enum config_section {
	SEC_NONE,    /* before the first section header */
	SEC_INVALID, /* after a refused header: its keys are skipped */
	SEC_SERVER,
	SEC_TLS,
	SEC_LOCATION,
	SEC_UPSTREAM,
	SEC_LIMITS,
	SEC_BPF,
};

enum config_type {
	T_STRING,      /* char *, optional charset and length limit */
	T_WORD,	       /* char *, one of .values */
	T_ENUM,	       /* int (or enum), one of .values */
	T_PATH,	       /* char *, absolute */
	T_LOGFILE,     /* char *, "stderr", "off" (KW_ALLOW_OFF) or a path */
	T_FILE,	       /* char *, a readable regular file, realpath()ed */
	T_DIR,	       /* char *, an existing directory, realpath()ed */
	T_BOOL,	       /* bool */
	T_UINT,	       /* unsigned */
	T_U64,	       /* uint64_t */
	T_WORKERS,     /* unsigned, "auto" => 0 until config_check */
	T_DURATION,    /* unsigned, milliseconds */
	T_SIZE,	       /* size_t, bytes */
	T_BANDWIDTH,   /* uint64_t, bytes per second */
	T_RATE,	       /* uint64_t, events per second */
	T_LISTEN,      /* appends to cfg->listen */
	T_SERVER,      /* appends to the upstream's servers */
	T_RETURN,      /* "STATUS [BODY]" */
	T_PROXY_PASS,  /* "http://NAME_OR_HOST:PORT[/path]" */
	T_STRLIST,     /* struct config_strlist, appends */
	T_SUBJECT,     /* T_STRLIST holding distinguished names */
	T_FINGERPRINT, /* T_STRLIST of normalised fingerprints */
};

#define KW_REPEAT    (1u << 0) /* every occurrence appends */
#define KW_LINE	     (1u << 1) /* store the line at .line_offset */
#define KW_ALLOW_OFF (1u << 2) /* T_LOGFILE: "off" is allowed */

struct config_enum {
	const char *name;
	int value;
};

struct config_keyword {
	const char *name;
	enum config_section section;
	enum config_type type;
	size_t offset; /* in struct config, config_location, _upstream, _limit
			*/
	unsigned flags;
	size_t line_offset; /* KW_LINE: int field in struct config */
	uint64_t min, max;  /* numeric types, in the stored unit */
	uint32_t limit_bit; /* CONFIG_LIMIT_* for [limits] keys */
	const struct config_enum *values; /* T_ENUM, T_WORD */
	const char *chars; /* T_STRING: allowed besides letters and digits */
	size_t max_len;	   /* T_STRING */
};

static const struct config_enum config_enum_log_level[] = {
	{"error", 0}, {"warn", 1}, {"info", 2}, {"debug", 3}, {NULL, 0}};
static const struct config_enum config_enum_min_version[] = {
	{"1.2", TLS1_2_VERSION}, {"1.3", TLS1_3_VERSION}, {NULL, 0}};
static const struct config_enum config_enum_ktls[] = {
	{"auto", CONFIG_KTLS_AUTO},
	{"on", CONFIG_KTLS_ON},
	{"off", CONFIG_KTLS_OFF},
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
	/* [tls] */
	KW("cert", SEC_TLS, T_FILE, CFG(cert), .flags = KW_LINE,
	   .line_offset = CFG(cert_line)),
	KW("key", SEC_TLS, T_FILE, CFG(key), .flags = KW_LINE,
	   .line_offset = CFG(key_line)),
	KW("client_ca", SEC_TLS, T_FILE, CFG(client_ca), .flags = KW_LINE,
	   .line_offset = CFG(client_ca_line)),
	KW("crl", SEC_TLS, T_FILE, CFG(crl), .flags = KW_LINE,
	   .line_offset = CFG(crl_line)),
	KW("verify_depth", SEC_TLS, T_UINT, CFG(verify_depth), .min = 0,
	   .max = 16),
	KW("min_version", SEC_TLS, T_ENUM, CFG(min_version),
	   .values = config_enum_min_version),
	KW("handshake_timeout", SEC_TLS, T_DURATION, CFG(handshake_timeout_ms),
	   .min = 1, .max = 3600000),
	KW("ktls", SEC_TLS, T_ENUM, CFG(ktls), .values = config_enum_ktls),
	KW("session_tickets", SEC_TLS, T_BOOL, CFG(session_tickets)),
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
	/* [bpf] */
	KW("mode", SEC_BPF, T_ENUM, CFG(bpf_mode),
	   .values = config_enum_bpf_mode),
	KW("instance", SEC_BPF, T_STRING, CFG(bpf_instance), .chars = "_-",
	   .max_len = 32),
};

#define CONFIG_NKW (sizeof(config_keywords) / sizeof(config_keywords[0]))

/* First line of each keyword within one section instance (0 = unset). */
struct config_seen {
	int line[CONFIG_NKW];
};

struct config_ctx {
	struct config *cfg;
	FILE *errors;
	FILE *in;
	char *buf; /* getline() buffer */
	size_t cap;
	int lineno;
	int n_errors;

	enum config_section sec;
	char section[INI_MAX_LINE]; /* header text between the brackets */
	int section_line;
	size_t cur;			/* location / upstream index */
	struct config_limit *cur_limit; /* [limits ...] being read */
	struct config_seen *seen;	/* of the current section */

	struct config_seen seen_server, seen_tls, seen_bpf;
	struct config_seen seen_limits, seen_anonymous;
	struct config_seen *loc_seen; /* parallel to cfg->locations */
	struct config_seen *up_seen;  /* parallel to cfg->upstreams */
	struct config_seen *lim_seen; /* parallel to cfg->limit_overrides */
	int tls_line, limits_line, anonymous_line;
};

static void config_error(struct config_ctx *ctx, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void config_error(struct config_ctx *ctx, int line, const char *fmt, ...)
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
static int config_seen_line(const struct config_seen *seen,
			    enum config_section sec, const char *name)
{
	int i = config_kw_index(sec, name);

	return i < 0 ? 0 : seen->line[i];
}

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
static int config_normalise_fingerprint(const char *in, char out[65])
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

static bool config_name_ok(const char *s, const char *extra, size_t max_len)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr(extra, s[n]))
			return false;
	return n > 0 && n <= max_len;
}

static bool config_has_space_or_ctl(const char *s)
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
static int config_parse_addr(const char *s, struct config_addr *a,
			     const char **why)
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

/* ---- sections */

static void config_location_init(struct config_location *loc)
{
	memset(loc, 0, sizeof(*loc));
	loc->client_cert = CONFIG_CLIENT_CERT_OPTIONAL;
	loc->index = strdup(CONFIG_DEFAULT_INDEX);
	loc->header_prefix = strdup(CONFIG_DEFAULT_HEADER_PREFIX);
	loc->proxy_path = strdup("");
}

static int config_oom(struct config_ctx *ctx)
{
	config_error(ctx, ctx->lineno, "out of memory");
	return -1;
}

/* Appends an upstream named NAME (and its seen table); its index or -1. */
static int config_add_upstream(struct config_ctx *ctx, const char *name,
			       int line)
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

static void config_open_location(struct config_ctx *ctx, const char *arg)
{
	struct config *cfg = ctx->cfg;
	struct config_location *locs;
	struct config_seen *seen;
	char prefix[INI_MAX_LINE];
	size_t n = 0, i;
	const char *p, *seg;

	if (!*arg) {
		config_error(
			ctx, ctx->lineno,
			"[location] needs a path prefix, as [location /app]");
		return;
	}
	if (arg[0] != '/') {
		config_error(ctx, ctx->lineno,
			     "location prefix '%s' must start with '/'", arg);
		return;
	}
	if (config_has_space_or_ctl(arg) || strpbrk(arg, "?#%\\")) {
		config_error(ctx, ctx->lineno,
			     "location prefix '%s': expected a plain path "
			     "(no spaces, '?', '#', '%%' or '\\')",
			     arg);
		return;
	}
	/* Collapse "//", drop the trailing '/', refuse "." and ".." segments:
	 * request paths are normalised the same way before matching. */
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
			return;
		}
		prefix[n++] = '/';
		memcpy(prefix + n, seg, (size_t)(p - seg));
		n += (size_t)(p - seg);
	}
	if (!n)
		prefix[n++] = '/';
	prefix[n] = '\0';

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
	ctx->section_line = ctx->lineno;
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
	    !strcmp(name, "bpf")) {
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
			     "location, upstream, limits or bpf",
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

static void config_set_value(struct config_ctx *ctx,
			     const struct config_keyword *kw, char *base,
			     const char *value)
{
	const struct config_enum *e;
	char fp[65];
	bool b;

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
		config_set_string(ctx, (char **)(base + kw->offset),
				  strdup(value));
		break;
	case T_WORD:
		if (!config_find_enum(kw->values, value)) {
			config_bad_enum(ctx, kw, value);
			return;
		}
		config_set_string(ctx, (char **)(base + kw->offset),
				  strdup(value));
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
			config_set_string(ctx, (char **)(base + kw->offset),
					  strdup(value));
			break;
		}
		/* fall through */
	case T_PATH:
		config_set_string(ctx, (char **)(base + kw->offset),
				  config_resolve(ctx->cfg, value));
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
	case T_RETURN:
		config_set_return(ctx, kw, value);
		break;
	case T_PROXY_PASS:
		config_set_proxy_pass(ctx, kw, value);
		break;
	case T_SUBJECT:
		if (!strchr(value, '=')) {
			config_bad_value(ctx, kw, value,
					 "an RFC 2253 name such as "
					 "'CN=client1,O=corp' or 'CN=client1'");
			return;
		}
		/* fall through */
	case T_STRLIST:
		if (kw->type == T_STRLIST && config_has_space_or_ctl(value)) {
			config_bad_value(ctx, kw, value,
					 "a DNS name or URI without spaces");
			return;
		}
		if (config_strlist_add(
			    (struct config_strlist *)(base + kw->offset),
			    value))
			config_oom(ctx);
		break;
	case T_FINGERPRINT:
		if (config_normalise_fingerprint(value, fp)) {
			config_bad_value(
				ctx, kw, value,
				"a SHA-256 fingerprint: 64 hex digits, "
				"colons and a sha256: prefix allowed");
			return;
		}
		if (config_strlist_add(
			    (struct config_strlist *)(base + kw->offset), fp))
			config_oom(ctx);
		break;
	}
}

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

/* ---- the check step: combinations, required keys, defaults */

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
}

static void config_check_location(struct config_ctx *ctx, size_t i)
{
	static const char *const handlers[] = {"root", "return", "proxy_pass",
					       "metrics"};
	static const char *const allows[] = {"allow_subject", "allow_san",
					     "allow_fingerprint"};
	struct config *cfg = ctx->cfg;
	struct config_location *loc = &cfg->locations[i];
	const struct config_seen *seen = &ctx->loc_seen[i];
	const char *first = NULL;
	int first_line = 0, line, cc_line;

	/* The first handler in the file stands; each later one is named.
	 * "metrics = no" is no handler. */
	for (size_t h = 0; h < 4; h++) {
		line = config_seen_line(seen, SEC_LOCATION, handlers[h]);
		if (h == 3 && !loc->metrics)
			line = 0;
		if (line && (!first || line < first_line)) {
			first = handlers[h];
			first_line = line;
		}
	}
	for (size_t h = 0; h < 4; h++) {
		line = config_seen_line(seen, SEC_LOCATION, handlers[h]);
		if (h == 3 && !loc->metrics)
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
			     "proxy_pass or metrics",
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

static void config_check(struct config_ctx *ctx)
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

	if (!cfg->workers) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
		if (n > CONFIG_MAX_WORKERS)
			n = CONFIG_MAX_WORKERS;
		cfg->workers = (unsigned)n;
	}

	config_inherit(&cfg->limit_anonymous, &cfg->limit_default);
	for (size_t i = 0; i < cfg->n_limit_overrides; i++)
		config_inherit(&cfg->limit_overrides[i], &cfg->limit_default);
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
	cfg->verify_depth = CONFIG_DEFAULT_VERIFY_DEPTH;
	cfg->min_version = TLS1_2_VERSION;
	cfg->handshake_timeout_ms = CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	cfg->ktls = CONFIG_KTLS_AUTO;
	cfg->session_tickets = true;
	strcpy(cfg->limit_default.key, "default");
	strcpy(cfg->limit_anonymous.key, "anonymous");
	cfg->bpf_mode = CONFIG_BPF_AUTO;
	cfg->bpf_instance = strdup(CONFIG_DEFAULT_BPF_INSTANCE);
	if (!cfg->dir || !cfg->access_log || !cfg->error_log ||
	    !cfg->log_level || !cfg->bpf_instance)
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
	free(cfg->bpf_instance);
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

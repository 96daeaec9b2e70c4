/* SPDX-License-Identifier: MIT */
/*
 * Private to the configuration loader: shared by config.c (line reader,
 * sections, keyword table, dispatch), config_values.c (value parsers) and
 * config_check.c (the check step after the whole file is read). Nothing
 * outside config*.c includes it; the interface is config.h.
 */
#ifndef MTLSGW_CONFIG_PRIVATE_H
#define MTLSGW_CONFIG_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ini.h>

#include "config.h"

enum config_section {
	SEC_NONE,    /* before the first section header */
	SEC_INVALID, /* after a refused header: its keys are skipped */
	SEC_SERVER,
	SEC_TLS,
	SEC_LOCATION,
	SEC_UPSTREAM,
	SEC_LIMITS,
	SEC_BPF,
	SEC_FLEET,
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
	T_CIDR,	       /* appends to cfg->proxy_from; comma lists too */
};

#define KW_REPEAT    (1u << 0) /* every occurrence appends */
#define KW_LINE	     (1u << 1) /* store the line at .line_offset */
#define KW_ALLOW_OFF (1u << 2) /* T_LOGFILE: "off" is allowed */
#define KW_CONFIG    (1u << 3) /* [limits] key stored in struct config */

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

/* Entries in config_keywords[] (config.c); a _Static_assert there keeps
 * the two in step. */
#define CONFIG_NKW 69

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
	char section[INI_MAX_LINE];	/* header text between the brackets */
	size_t cur;			/* location / upstream index */
	struct config_limit *cur_limit; /* [limits ...] being read */
	struct config_seen *seen;	/* of the current section */

	struct config_seen seen_server, seen_tls, seen_bpf, seen_fleet;
	struct config_seen seen_limits, seen_anonymous;
	struct config_seen *loc_seen; /* parallel to cfg->locations */
	struct config_seen *up_seen;  /* parallel to cfg->upstreams */
	struct config_seen *lim_seen; /* parallel to cfg->limit_overrides */
	int tls_line, limits_line, anonymous_line;
};

/* config.c */
void config_error(struct config_ctx *ctx, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int config_oom(struct config_ctx *ctx);
int config_seen_line(const struct config_seen *seen, enum config_section sec,
		     const char *name);
int config_add_upstream(struct config_ctx *ctx, const char *name, int line);

/* config_values.c */
bool config_name_ok(const char *s, const char *extra, size_t max_len);
bool config_has_space_or_ctl(const char *s);
int config_parse_addr(const char *s, struct config_addr *a, const char **why);
void config_set_value(struct config_ctx *ctx, const struct config_keyword *kw,
		      char *base, const char *value);

/* config_check.c */
void config_check(struct config_ctx *ctx);

#endif

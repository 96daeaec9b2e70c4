/* SPDX-License-Identifier: MIT */
/*
 * Error log (leveled text lines) and access log (JSON lines). Each line
 * goes out in one write(2) on an O_APPEND fd, so worker threads need no
 * lock.
 */
#ifndef MTLSGW_LOG_H
#define MTLSGW_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* TARGET: "stderr", "off" or a path. Returns 0 or -1 (message on stderr). */
int log_open(const char *error_target, const char *level,
	     const char *access_target);
void log_close(void);
/* Reopen file targets (after logrotate moved them): the new file takes the
 * old descriptor's number with dup2(), so writers on other threads never
 * see a closed fd. Returns 0 or -1 (the old file stays in use). */
int log_reopen(void);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
int log_enabled(enum log_level lvl);

/*
 * For lines a client can trigger once per connection (or per request): at
 * most one line per LOG_RATELIMIT_NS per call site, the next one saying
 * how many were suppressed meanwhile. One static struct log_ratelimit per
 * call site ("kind"), zero-initialised; lock-free, any thread:
 *     static struct log_ratelimit rl;
 *     log_ratelimited(&rl, LOG_LVL_WARN, "client %s: ...", peer);
 */
#define LOG_RATELIMIT_NS 1000000000ULL
struct log_ratelimit {
	_Atomic uint64_t next_ns; /* CLOCK_MONOTONIC; 0: log now */
	_Atomic unsigned long suppressed;
};
void log_ratelimited(struct log_ratelimit *rl, enum log_level lvl,
		     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Now, UTC, "2026-11-27T03:35:10.194Z", into BUF; returns its length.
 * The one time format of both logs. */
size_t log_timestamp(char *buf, size_t len);

/* Append one line (LINE has no newline) to the access log. */
void log_access_line(const char *line, size_t len);
int log_access_enabled(void);

/*
 * A small JSON object builder for access-log lines: keys and strings are
 * escaped (control characters, quotes, backslash, non-UTF-8 bytes as
 * \u00XX), so a hostile path or subject cannot break the line.
 */
struct json_buf {
	char buf[4096];
	size_t len;
	int first;
	int truncated;
};
void json_begin(struct json_buf *j);
void json_str(struct json_buf *j, const char *key, const char *value);
void json_u64(struct json_buf *j, const char *key, unsigned long long v);
void json_bool(struct json_buf *j, const char *key, int v);
void json_end(struct json_buf *j);

/* Log the whole OpenSSL error queue in one line at LVL, prefixed by what
 * failed, then clear it. */
void log_ssl_errors(enum log_level lvl, const char *what);

#endif

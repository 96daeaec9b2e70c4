// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static int log_error_fd = STDERR_FILENO;
static char *log_error_path; /* NULL: not a file */
static char *log_access_path;
static int log_access_fd = STDERR_FILENO;
static enum log_level log_threshold = LOG_LVL_INFO;

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

static int log_open_target(const char *target)
{
	int fd;

	if (!target || strcmp(target, "stderr") == 0)
		return STDERR_FILENO;
	if (strcmp(target, "off") == 0)
		return -1;
	fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "mtlsgw: cannot open log %s: %s\n", target,
			strerror(errno));
		return -2;
	}
	return fd;
}

int log_open(const char *error_target, const char *level,
	     const char *access_target)
{
	int efd, afd;
	size_t i;

	if (level) {
		for (i = 0; i < 4; i++)
			if (strcmp(level, log_level_names[i]) == 0)
				break;
		if (i == 4) {
			fprintf(stderr, "mtlsgw: unknown log level %s\n",
				level);
			return -1;
		}
		log_threshold = (enum log_level)i;
	}
	efd = log_open_target(error_target);
	if (efd == -2)
		return -1;
	afd = log_open_target(access_target);
	if (afd == -2) {
		if (efd > STDERR_FILENO)
			close(efd);
		return -1;
	}
	log_close();
	log_error_fd = efd;
	log_access_fd = afd;
	if (efd > STDERR_FILENO)
		log_error_path = strdup(error_target);
	if (afd > STDERR_FILENO && afd != efd)
		log_access_path = strdup(access_target);
	return 0;
}

static int log_reopen_one(int fd, const char *path)
{
	int nfd;

	if (fd <= STDERR_FILENO || !path)
		return 0;
	nfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (nfd < 0) {
		log_error("cannot reopen log %s: %s", path, strerror(errno));
		return -1;
	}
	if (dup3(nfd, fd, O_CLOEXEC) < 0) {
		log_error("cannot reopen log %s: %s", path, strerror(errno));
		close(nfd);
		return -1;
	}
	close(nfd);
	return 0;
}

int log_reopen(void)
{
	int r = log_reopen_one(log_error_fd, log_error_path);

	if (log_reopen_one(log_access_fd, log_access_path) < 0)
		r = -1;
	return r;
}

void log_close(void)
{
	free(log_error_path);
	free(log_access_path);
	log_error_path = log_access_path = NULL;
	if (log_error_fd > STDERR_FILENO)
		close(log_error_fd);
	if (log_access_fd > STDERR_FILENO && log_access_fd != log_error_fd)
		close(log_access_fd);
	log_error_fd = STDERR_FILENO;
	log_access_fd = STDERR_FILENO;
}

int log_enabled(enum log_level lvl)
{
	return lvl <= log_threshold && log_error_fd >= 0;
}

size_t log_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03ldZ",
			      ts.tv_nsec / 1000000);
	return n;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t n;
	int r;
	va_list ap;

	if (!log_enabled(lvl))
		return;
	n = log_timestamp(line, sizeof(line));
	n += (size_t)snprintf(line + n, sizeof(line) - n, " [%s] ",
			      log_level_names[lvl]);
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	n += (size_t)r;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(log_error_fd, line, n) < 0) {
		/* nowhere left to report it */
	}
}

int log_access_enabled(void)
{
	return log_access_fd >= 0;
}

void log_access_line(const char *line, size_t len)
{
	if (log_access_fd < 0)
		return;
	if (write(log_access_fd, line, len) < 0) {
		/* nowhere left to report it */
	}
}

void json_begin(struct json_buf *j)
{
	j->buf[0] = '{';
	j->len = 1;
	j->first = 1;
	j->truncated = 0;
}

/* Room kept free for the closing ',"truncated":true}\n'. */
#define JSON_RESERVE 24

static int json_raw(struct json_buf *j, const char *s, size_t n)
{
	if (j->len + n + JSON_RESERVE >= sizeof(j->buf))
		return -1;
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	return 0;
}

static int json_escaped(struct json_buf *j, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	char esc[6];
	int r = json_raw(j, "\"", 1);

	for (; *p && r == 0; p++) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			r = json_raw(j, esc, 2);
		} else if (*p < 0x20 || *p >= 0x7f) {
			/* bytes, not code points: a hostile path cannot
			 * smuggle invalid UTF-8 into the log */
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			r = json_raw(j, esc, 6);
		} else {
			r = json_raw(j, (const char *)p, 1);
		}
	}
	return r ? r : json_raw(j, "\"", 1);
}

/* Write one member; if it does not fit, drop it whole. */
static void json_member(struct json_buf *j, const char *key, const char *str,
			const char *raw)
{
	size_t saved = j->len;
	int r = 0;

	if (!j->first)
		r = json_raw(j, ",", 1);
	if (r == 0)
		r = json_escaped(j, key);
	if (r == 0)
		r = json_raw(j, ":", 1);
	if (r == 0)
		r = str ? json_escaped(j, str) : json_raw(j, raw, strlen(raw));
	if (r) {
		j->len = saved;
		j->truncated = 1;
		return;
	}
	j->first = 0;
}

void json_str(struct json_buf *j, const char *key, const char *value)
{
	json_member(j, key, value, "null");
}

void json_u64(struct json_buf *j, const char *key, unsigned long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", v);
	json_member(j, key, NULL, num);
}

void json_bool(struct json_buf *j, const char *key, int v)
{
	json_member(j, key, NULL, v ? "true" : "false");
}

void json_end(struct json_buf *j)
{
	static const char tail[] = ",\"truncated\":true";

	if (j->truncated) {
		memcpy(j->buf + j->len, tail, sizeof(tail) - 1);
		j->len += sizeof(tail) - 1;
	}
	j->buf[j->len++] = '}';
	j->buf[j->len++] = '\n';
}

static int log_ssl_error_cb(const char *str, size_t len, void *u)
{
	char *out = u;
	size_t have = strlen(out);

	while (len > 0 && (str[len - 1] == '\n'))
		len--;
	if (have + len + 3 >= 1024)
		return 0;
	if (have) {
		memcpy(out + have, " | ", 3);
		have += 3;
	}
	memcpy(out + have, str, len);
	out[have + len] = '\0';
	return 1;
}

void log_ssl_errors(enum log_level lvl, const char *what)
{
	char queue[1024] = "";

	ERR_print_errors_cb(log_ssl_error_cb, queue);
	ERR_clear_error();
	log_msg(lvl, "%s: %s", what, queue[0] ? queue : "no OpenSSL error");
}

static uint64_t log_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void log_ratelimited(struct log_ratelimit *rl, enum log_level lvl,
		     const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	uint64_t now, next;
	unsigned long n;
	va_list ap;

	if (!log_enabled(lvl))
		return;
	now = log_now_ns();
	next = atomic_load_explicit(&rl->next_ns, memory_order_relaxed);
	/* One thread wins the second; the others count themselves. */
	if (now < next ||
	    !atomic_compare_exchange_strong(&rl->next_ns, &next,
					    now + LOG_RATELIMIT_NS)) {
		atomic_fetch_add_explicit(&rl->suppressed, 1,
					  memory_order_relaxed);
		return;
	}
	n = atomic_exchange_explicit(&rl->suppressed, 0, memory_order_relaxed);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n)
		log_msg(lvl, "%s (%lu more like this suppressed)", buf, n);
	else
		log_msg(lvl, "%s", buf);
}

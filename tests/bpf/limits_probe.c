// SPDX-License-Identifier: MIT
/*
 * limits_probe: daemon/limits.c on real TCP sockets, without TLS, so that
 * the BPF programs can be tested on their own (tests/bpf/test_probe_*.py).
 * It calls limits_new/admit/request/release/reload exactly where the
 * gateway does, one thread per connection, and speaks a line protocol:
 *
 *   client: HELLO <fingerprint|-> <cn|->   probe: ADMIT | REFUSED <s> | ERROR
 * <errno> client: REQ                            probe: OK | LIMIT <s> | ERROR
 * <errno> client: GET <n>                        probe: n bytes of 'x' client:
 * PUT <n> then n bytes           probe: GOT EOF: limits_release(), close().
 *
 * Bulk admissions, without a client connection per identity (each on a
 * fresh unconnected TCP socket of the probe, as the gateway's accepted
 * sockets are bound):
 *   BULK <first> <n> <hold>  identities first..first+n-1 (fingerprint =
 *                            the number in 64 hex digits); hold 1 keeps
 *                            admitted sockets open until DROP
 *                            probe: BULK admitted=A refused=R full=F error=E
 *   DROP                     close held sockets (limits_release first)
 *   GC <idle_ns>             set the GC idle time, clear the GC totals
 *                            probe: GC calls=C scanned=S reclaimed=R max=M
 *   GCSTATS                  probe: GC calls=C scanned=S reclaimed=R max=M
 *
 * usage: limits_probe --instance NAME [--mode auto|required|off]
 *                     [--limits FILE] [--addr IP] [--port N]
 * IP defaults to 127.0.0.1; "::1" or "::ffff:127.0.0.1" listen on IPv6.
 * FILE lines: KEY field=value...  (KEY default, anonymous or 64 hex;
 * fields max_conns conn_rate conn_burst req_rate req_burst bandwidth_out
 * bandwidth_in), or "prefix v4=N v6=N" (anonymous_prefix_v4/_v6). SIGHUP
 * re-reads FILE and calls limits_reload(). Prints "READY port=N mode=M" once
 * listening; exits 1 if limits_new fails.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <linux/bpf.h>

#include "daemon/config.h"
#include "daemon/identity.h"
#include "daemon/limits.h"
#include "daemon/limits_private.h" /* GC knobs and totals, for tests */
#include "daemon/log.h"

static struct limits *probe_limits;
static pthread_mutex_t probe_bulk_lock = PTHREAD_MUTEX_INITIALIZER;
static int *probe_held;
static size_t probe_n_held, probe_cap_held;
static const char *probe_limits_file;
static volatile sig_atomic_t probe_hup;

/* The daemon's log.c is not linked: lines go to stderr. */
void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "probe %s: %s\n", names[lvl], buf);
}

int log_enabled(enum log_level lvl)
{
	return lvl <= LOG_LVL_INFO;
}

/* Not rate-limited here: the tests count the lines. */
void log_ratelimited(struct log_ratelimit *rl, enum log_level lvl,
		     const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	(void)rl;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(lvl, "%s", buf);
}

static int probe_field(struct config_limit *c, const char *name,
		       unsigned long long v)
{
	static const struct {
		const char *name;
		size_t off;
		uint32_t bit;
	} f[] = {
		{"max_conns", offsetof(struct config_limit, max_conns),
		 CONFIG_LIMIT_MAX_CONNS},
		{"conn_rate", offsetof(struct config_limit, conn_rate),
		 CONFIG_LIMIT_CONN_RATE},
		{"conn_burst", offsetof(struct config_limit, conn_burst),
		 CONFIG_LIMIT_CONN_BURST},
		{"req_rate", offsetof(struct config_limit, req_rate),
		 CONFIG_LIMIT_REQ_RATE},
		{"req_burst", offsetof(struct config_limit, req_burst),
		 CONFIG_LIMIT_REQ_BURST},
		{"bandwidth_out", offsetof(struct config_limit, bandwidth_out),
		 CONFIG_LIMIT_BW_OUT},
		{"bandwidth_in", offsetof(struct config_limit, bandwidth_in),
		 CONFIG_LIMIT_BW_IN},
	};
	size_t i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (!strcmp(f[i].name, name)) {
			*(uint64_t *)((char *)c + f[i].off) = v;
			c->set |= f[i].bit;
			return 0;
		}
	}
	return -1;
}

/* Fill CFG's limits from the probe's limits file (as config.c would:
 * anonymous and overrides inherit what they do not set from default). */
static int probe_read_limits(struct config *cfg, const char *path)
{
	char line[512];
	FILE *f;
	size_t i;

	free(cfg->limit_overrides);
	cfg->limit_overrides = NULL;
	cfg->n_limit_overrides = 0;
	memset(&cfg->limit_default, 0, sizeof(cfg->limit_default));
	memset(&cfg->limit_anonymous, 0, sizeof(cfg->limit_anonymous));
	strcpy(cfg->limit_default.key, "default");
	strcpy(cfg->limit_anonymous.key, "anonymous");
	cfg->anonymous_prefix_v4 = CONFIG_DEFAULT_ANONYMOUS_PREFIX_V4;
	cfg->anonymous_prefix_v6 = CONFIG_DEFAULT_ANONYMOUS_PREFIX_V6;
	if (!path)
		return 0;
	f = fopen(path, "r");
	if (!f) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok = strtok_r(line, " \t\n", &save);
		struct config_limit *c;

		if (!tok || tok[0] == '#')
			continue;
		if (!strcmp(tok, "prefix")) {
			while ((tok = strtok_r(NULL, " \t\n", &save))) {
				unsigned v;

				if (sscanf(tok, "v4=%u", &v) == 1)
					cfg->anonymous_prefix_v4 = v;
				else if (sscanf(tok, "v6=%u", &v) == 1)
					cfg->anonymous_prefix_v6 = v;
				else
					goto bad;
			}
			continue;
		}
		if (!strcmp(tok, "default")) {
			c = &cfg->limit_default;
		} else if (!strcmp(tok, "anonymous")) {
			c = &cfg->limit_anonymous;
		} else {
			c = realloc(cfg->limit_overrides,
				    (cfg->n_limit_overrides + 1) * sizeof(*c));
			if (!c)
				abort();
			cfg->limit_overrides = c;
			c = &c[cfg->n_limit_overrides++];
			memset(c, 0, sizeof(*c));
			snprintf(c->key, sizeof(c->key), "%s", tok);
		}
		while ((tok = strtok_r(NULL, " \t\n", &save))) {
			char *eq = strchr(tok, '=');

			if (!eq)
				goto bad;
			*eq = 0;
			if (probe_field(c, tok, strtoull(eq + 1, NULL, 10)))
				goto bad;
		}
	}
	fclose(f);
	for (i = 0; i <= cfg->n_limit_overrides; i++) {
		struct config_limit *c = i ? &cfg->limit_overrides[i - 1]
					   : &cfg->limit_anonymous;
		const struct config_limit *d = &cfg->limit_default;

		if (!(c->set & CONFIG_LIMIT_MAX_CONNS))
			c->max_conns = d->max_conns;
		if (!(c->set & CONFIG_LIMIT_CONN_RATE))
			c->conn_rate = d->conn_rate;
		if (!(c->set & CONFIG_LIMIT_CONN_BURST))
			c->conn_burst = d->conn_burst;
		if (!(c->set & CONFIG_LIMIT_REQ_RATE))
			c->req_rate = d->req_rate;
		if (!(c->set & CONFIG_LIMIT_REQ_BURST))
			c->req_burst = d->req_burst;
		if (!(c->set & CONFIG_LIMIT_BW_OUT))
			c->bandwidth_out = d->bandwidth_out;
		if (!(c->set & CONFIG_LIMIT_BW_IN))
			c->bandwidth_in = d->bandwidth_in;
	}
	return 0;
bad:
	fprintf(stderr, "%s: bad line\n", path);
	fclose(f);
	return -1;
}

static int probe_write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static int probe_reply(int fd, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return probe_write_all(fd, buf, (size_t)n);
}

/* One line (without the newline) into BUF; byte by byte, so that data
 * after the line stays in the socket. */
static int probe_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		ssize_t r = recv(fd, buf + n, 1, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
	return 0;
}

struct probe_conn {
	int fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
};

static void probe_gc_reply(int fd)
{
	probe_reply(fd, "GC calls=%llu scanned=%llu reclaimed=%llu max=%llu\n",
		    (unsigned long long)probe_limits->gc_calls,
		    (unsigned long long)probe_limits->gc_scanned,
		    (unsigned long long)probe_limits->gc_reclaimed,
		    (unsigned long long)probe_limits->gc_max_scan);
}

/* BULK FIRST N HOLD: N identities, each on a socket of its own. */
static void probe_bulk(int fd, unsigned long long first, unsigned long long n,
		       int hold)
{
	unsigned long long i, counts[4] = {0}; /* admitted refused full err */
	struct sockaddr_in peer = {.sin_family = AF_INET};
	struct identity id;
	unsigned retry;
	int s, rc;

	pthread_mutex_lock(&probe_bulk_lock);
	for (i = first; i < first + n; i++) {
		s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0) {
			counts[3]++;
			continue;
		}
		memset(&id, 0, sizeof(id));
		id.verified = true;
		snprintf(id.fingerprint, sizeof(id.fingerprint), "%064llx", i);
		rc = limits_admit(probe_limits, s, &id,
				  (struct sockaddr *)&peer, sizeof(peer),
				  &retry);
		counts[rc == 0 ? 0 : rc == 1 ? 1 : rc == 2 ? 2 : 3]++;
		if (rc == 0 && hold) {
			if (probe_n_held == probe_cap_held) {
				size_t cap = probe_cap_held ? 2 * probe_cap_held
							    : 64;
				int *h = realloc(probe_held, cap * sizeof(*h));

				if (!h)
					abort();
				probe_held = h;
				probe_cap_held = cap;
			}
			probe_held[probe_n_held++] = s;
			continue;
		}
		if (rc == 0)
			limits_release(probe_limits, s);
		close(s);
	}
	pthread_mutex_unlock(&probe_bulk_lock);
	probe_reply(fd,
		    "BULK admitted=%llu refused=%llu full=%llu error=%llu\n",
		    counts[0], counts[1], counts[2], counts[3]);
}

static void probe_drop(int fd)
{
	size_t i;

	pthread_mutex_lock(&probe_bulk_lock);
	for (i = 0; i < probe_n_held; i++) {
		limits_release(probe_limits, probe_held[i]);
		close(probe_held[i]);
	}
	probe_n_held = 0;
	pthread_mutex_unlock(&probe_bulk_lock);
	probe_reply(fd, "DROPPED\n");
}

/* A control line instead of HELLO; 1 if it was one. */
static int probe_control(int fd, const char *line)
{
	unsigned long long a, b, idle;
	int hold;

	if (sscanf(line, "BULK %llu %llu %d", &a, &b, &hold) == 3) {
		probe_bulk(fd, a, b, hold);
	} else if (!strcmp(line, "DROP")) {
		probe_drop(fd);
	} else if (sscanf(line, "GC %llu", &idle) == 1) {
		atomic_store(&probe_limits->gc_idle_ns, idle);
		probe_limits->gc_calls = probe_limits->gc_scanned = 0;
		probe_limits->gc_reclaimed = probe_limits->gc_max_scan = 0;
		probe_limits->gc_next_ns = 0;
		probe_gc_reply(fd);
	} else if (!strcmp(line, "GCSTATS")) {
		probe_gc_reply(fd);
	} else {
		return 0;
	}
	return 1;
}

static void probe_serve(struct probe_conn *c)
{
	static char data[65536];
	struct identity id;
	char line[256], fp[IDENTITY_FP_HEX_LEN + 1], cn[128];
	unsigned retry = 0;
	int rc, fd = c->fd, admitted = 0;

	memset(data, 'x', sizeof(data));
	if (probe_line(fd, line, sizeof(line)) < 0)
		goto out;
	if (probe_control(fd, line))
		goto out;
	if (sscanf(line, "HELLO %64s %127s", fp, cn) != 2)
		goto out;
	memset(&id, 0, sizeof(id));
	if (strcmp(fp, "-") != 0) {
		id.verified = true;
		memcpy(id.fingerprint, fp, sizeof(id.fingerprint));
	}
	id.subject_cn = strcmp(cn, "-") ? cn : NULL;
	rc = limits_admit(probe_limits, fd, &id, (struct sockaddr *)&c->peer,
			  c->peer_len, &retry);
	if (rc == 1 || rc == 2) {
		probe_reply(fd, "REFUSED %u\n", retry);
		goto out;
	}
	if (rc < 0) {
		probe_reply(fd, "ERROR %d\n", errno);
		goto out;
	}
	admitted = 1;
	if (probe_reply(fd, "ADMIT\n") < 0)
		goto out;
	while (probe_line(fd, line, sizeof(line)) == 0) {
		unsigned long long n;

		if (!strcmp(line, "REQ")) {
			rc = limits_request(probe_limits, fd, &retry);
			if (rc == 0)
				probe_reply(fd, "OK\n");
			else if (rc == 1)
				probe_reply(fd, "LIMIT %u\n", retry);
			else
				probe_reply(fd, "ERROR %d\n", errno);
		} else if (sscanf(line, "GET %llu", &n) == 1) {
			while (n) {
				size_t k = n < sizeof(data) ? n : sizeof(data);

				if (probe_write_all(fd, data, k) < 0)
					goto out;
				n -= k;
			}
		} else if (sscanf(line, "PUT %llu", &n) == 1) {
			char buf[65536];

			while (n) {
				size_t k = n < sizeof(buf) ? n : sizeof(buf);
				ssize_t r = recv(fd, buf, k, 0);

				if (r <= 0)
					goto out;
				n -= (size_t)r;
			}
			probe_reply(fd, "GOT\n");
		} else {
			break;
		}
	}
out:
	if (admitted)
		limits_release(probe_limits, fd);
	close(fd);
	free(c);
}

static void *probe_thread(void *arg)
{
	probe_serve(arg);
	return NULL;
}

static void probe_on_hup(int sig)
{
	(void)sig;
	probe_hup = 1;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t slen;
	struct sigaction sa;
	int i, lfd, one = 1, zero = 0, port = 0;
	char instance[64] = "probe";
	const char *addr = "127.0.0.1";

	memset(&cfg, 0, sizeof(cfg));
	cfg.bpf_mode = CONFIG_BPF_AUTO;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--instance") && i + 1 < argc) {
			snprintf(instance, sizeof(instance), "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			const char *m = argv[++i];

			cfg.bpf_mode = !strcmp(m, "off") ? CONFIG_BPF_OFF
				       : !strcmp(m, "required")
					       ? CONFIG_BPF_REQUIRED
					       : CONFIG_BPF_AUTO;
		} else if (!strcmp(argv[i], "--limits") && i + 1 < argc) {
			probe_limits_file = argv[++i];
		} else if (!strcmp(argv[i], "--addr") && i + 1 < argc) {
			addr = argv[++i];
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else {
			fprintf(stderr,
				"usage: %s --instance NAME [--mode "
				"auto|required"
				"|off] [--limits FILE] [--addr IP] [--port "
				"N]\n",
				argv[0]);
			return 2;
		}
	}
	cfg.bpf_instance = instance;
	if (probe_read_limits(&cfg, probe_limits_file) < 0)
		return 2;

	/* As the daemon must: limits first, then the listening socket. */
	probe_limits = limits_new(&cfg);
	if (!probe_limits)
		return 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)port);
		slen = sizeof(*sin6);
	} else if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)port);
		slen = sizeof(*sin);
	} else {
		fprintf(stderr, "bad address %s\n", addr);
		return 2;
	}
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(lfd, (struct sockaddr *)&ss, slen) < 0 ||
	    listen(lfd, 512) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &slen) < 0) {
		perror("listen");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_on_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("READY port=%u mode=%s\n",
	       ntohs(ss.ss_family == AF_INET6 ? sin6->sin6_port
					      : sin->sin_port),
	       limits_mode_name(probe_limits));
	fflush(stdout);

	for (;;) {
		struct probe_conn *c = calloc(1, sizeof(*c));
		pthread_t t;

		if (!c)
			return 1;
		c->peer_len = sizeof(c->peer);
		c->fd = accept4(lfd, (struct sockaddr *)&c->peer, &c->peer_len,
				SOCK_CLOEXEC);
		if (probe_hup) {
			probe_hup = 0;
			if (probe_read_limits(&cfg, probe_limits_file) == 0 &&
			    limits_reload(probe_limits, &cfg) == 0)
				fprintf(stderr, "probe: reloaded\n");
		}
		if (c->fd < 0) {
			free(c);
			if (errno == EINTR)
				continue;
			perror("accept");
			return 1;
		}
		if (pthread_create(&t, NULL, probe_thread, c) != 0) {
			close(c->fd);
			free(c);
			continue;
		}
		pthread_detach(t);
	}
}

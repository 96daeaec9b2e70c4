// SPDX-License-Identifier: MIT
/*
 * mtlsgw-stat: per-identity counters of a running gateway, read from the
 * pinned cert_stats map (/sys/fs/bpf/mtlsgw/<instance>/cert_stats), as a
 * table sorted by activity or as JSON. Rates (req/s, bytes/s) come from
 * two readings: one second apart, or --watch SECONDS apart.
 *
 *   mtlsgw-stat [--instance NAME] [--json] [--watch SECONDS]
 *   mtlsgw-stat --fleet [-c CONFIG] [--json]
 *
 * --fleet reads the fleet's totals from the Redis named in CONFIG's
 * [fleet] instead: per certificate, the open connections, the requests
 * and bytes out of the current 1 s window and the bytes out in total of
 * the whole fleet, and which gateways contribute (key layout in
 * daemon/fleet_private.h).
 *
 * Exit 0, 1 when the maps are absent or unreadable, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <bpf/bpf.h>

#include "mtlsgw_abi.h"

#include "daemon/config.h"
#include "daemon/fleet_cluster.h"
#include "daemon/fleet_redis.h"

#define STAT_DEFAULT_INSTANCE	 "default"
#define STAT_ONESHOT_INTERVAL_MS 1000
#define STAT_SHORT_FP		 16 /* hex digits shown in the table */
#define STAT_DEFAULT_CONFIG	 "/etc/mtlsgw/mtlsgw.conf"
#define STAT_FLEET_TIMEOUT_MS	 5000

struct stat_row {
	struct mtlsgw_id id;
	struct mtlsgw_stats st;
	double req_s, in_s, out_s; /* over the interval */
};

struct stat_sample {
	struct stat_row *rows;
	size_t n;
	double t; /* CLOCK_MONOTONIC seconds */
};

static double stat_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Open the instance's cert_stats and check it is the layout we know. */
static int stat_open(const char *instance)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", MTLSGW_PIN_ROOT, instance,
		 MTLSGW_MAP_STATS);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		int err = errno;

		if (err == ENOENT)
			fprintf(stderr,
				"mtlsgw-stat: %s: no such map: is an mtlsgw "
				"gateway with instance '%s' running in bpf "
				"mode ([bpf] mode = auto or required, and "
				"its start-up log saying \"limits: bpf\")?\n",
				path, instance);
		else
			fprintf(stderr, "mtlsgw-stat: %s: cannot open: %s%s\n",
				path, strerror(err),
				err == EACCES || err == EPERM
					? " (reading BPF maps needs root)"
					: "");
		return -1;
	}
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 ||
	    info.key_size != sizeof(struct mtlsgw_id) ||
	    info.value_size != sizeof(struct mtlsgw_stats)) {
		fprintf(stderr,
			"mtlsgw-stat: %s: not a cert_stats map of this "
			"version of mtlsgw (key %u, value %u bytes)\n",
			path, info.key_size, info.value_size);
		close(fd);
		return -1;
	}
	return fd;
}

static int stat_read(int fd, struct stat_sample *s)
{
	struct mtlsgw_id key, next;
	void *prev = NULL;
	size_t cap = 0;

	s->n = 0;
	s->t = stat_now();
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (s->n == cap) {
			struct stat_row *r;

			cap = cap ? cap * 2 : 64;
			r = realloc(s->rows, cap * sizeof(*r));
			if (!r)
				return -1;
			s->rows = r;
		}
		memset(&s->rows[s->n], 0, sizeof(s->rows[s->n]));
		if (bpf_map_lookup_elem(fd, &key, &s->rows[s->n].st) != 0)
			continue; /* evicted meanwhile */
		s->rows[s->n].id = key;
		s->rows[s->n].id.name[MTLSGW_ID_LEN - 1] = 0;
		s->rows[s->n].st.fingerprint[MTLSGW_ID_LEN - 1] = 0;
		s->rows[s->n].st.subject[MTLSGW_SUBJECT_LEN - 1] = 0;
		s->n++;
	}
	if (errno != ENOENT) {
		fprintf(stderr, "mtlsgw-stat: reading cert_stats: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

static double stat_delta(__u64 now, __u64 before, double dt)
{
	return now >= before && dt > 0 ? (double)(now - before) / dt : 0;
}

/* Rates of CUR against PREV (identities new since PREV count from 0). */
static void stat_rates(struct stat_sample *cur, const struct stat_sample *prev)
{
	double dt = cur->t - prev->t;
	size_t i, j;

	for (i = 0; i < cur->n; i++) {
		struct stat_row *r = &cur->rows[i];
		static const struct mtlsgw_stats zero;
		const struct mtlsgw_stats *p = &zero;

		for (j = 0; j < prev->n; j++) {
			if (!memcmp(&prev->rows[j].id, &r->id, sizeof(r->id))) {
				p = &prev->rows[j].st;
				break;
			}
		}
		r->req_s = stat_delta(r->st.requests, p->requests, dt);
		r->in_s = stat_delta(r->st.bytes_in, p->bytes_in, dt);
		r->out_s = stat_delta(r->st.bytes_out, p->bytes_out, dt);
	}
}

/* Most active first: open connections, then request rate, then traffic,
 * then the most recently seen. */
static int stat_cmp(const void *a, const void *b)
{
	const struct stat_row *x = a, *y = b;

	if (x->st.conns_active != y->st.conns_active)
		return x->st.conns_active > y->st.conns_active ? -1 : 1;
	if (x->req_s != y->req_s)
		return x->req_s > y->req_s ? -1 : 1;
	if (x->in_s + x->out_s != y->in_s + y->out_s)
		return x->in_s + x->out_s > y->in_s + y->out_s ? -1 : 1;
	if (x->st.last_seen != y->st.last_seen)
		return x->st.last_seen > y->st.last_seen ? -1 : 1;
	return strcmp(x->id.name, y->id.name);
}

static const char *stat_bytes(double v, char *buf, size_t len)
{
	static const char units[] = " KMGTP";
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
	return buf;
}

static void stat_print_table(const char *instance, const struct stat_sample *s,
			     double interval)
{
	char in[16], out[16], ins[16], outs[16], fp[STAT_SHORT_FP + 2];
	size_t i;

	printf("mtlsgw instance %s: %zu identities (rates over %.1f s)\n",
	       instance, s->n, interval);
	printf("%-18s %-24s %7s %9s %8s %8s %9s %8s %8s %9s %9s\n",
	       "FINGERPRINT", "SUBJECT", "ACTIVE", "TOTAL", "REJECTED", "REQ/S",
	       "REQUESTS", "REQ_REJ", "BYTES_IN", "BYTES_OUT", "IN/S|OUT/S");
	for (i = 0; i < s->n; i++) {
		const struct stat_row *r = &s->rows[i];
		const char *subject = r->st.subject[0] ? r->st.subject : "-";

		if (r->st.fingerprint[0]) {
			snprintf(fp, sizeof(fp), "%.*s~", STAT_SHORT_FP,
				 r->st.fingerprint);
		} else {
			snprintf(fp, sizeof(fp), "%.*s", STAT_SHORT_FP + 1,
				 r->id.name);
			subject = "(no certificate)";
		}
		printf("%-18s %-24.24s %7llu %9llu %8llu %8.1f %9llu %8llu "
		       "%8s %9s %s|%s\n",
		       fp, subject, (unsigned long long)r->st.conns_active,
		       (unsigned long long)r->st.conns_total,
		       (unsigned long long)r->st.conns_rejected, r->req_s,
		       (unsigned long long)r->st.requests,
		       (unsigned long long)r->st.requests_rejected,
		       stat_bytes((double)r->st.bytes_in, in, sizeof(in)),
		       stat_bytes((double)r->st.bytes_out, out, sizeof(out)),
		       stat_bytes(r->in_s, ins, sizeof(ins)),
		       stat_bytes(r->out_s, outs, sizeof(outs)));
	}
	fflush(stdout);
}

static void stat_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void stat_print_json(const char *instance, const struct stat_sample *s,
			    double interval)
{
	size_t i;

	printf("{\"instance\":");
	stat_json_str(instance);
	printf(",\"time\":%lld,\"interval_s\":%.3f,\"identities\":[",
	       (long long)time(NULL), interval);
	for (i = 0; i < s->n; i++) {
		const struct stat_row *r = &s->rows[i];

		printf("%s{\"id\":", i ? "," : "");
		stat_json_str(r->id.name);
		printf(",\"fingerprint\":");
		stat_json_str(r->st.fingerprint);
		printf(",\"subject\":");
		stat_json_str(r->st.subject);
		printf(",\"anonymous\":%s,\"conns_active\":%llu,"
		       "\"conns_total\":%llu,\"conns_rejected\":%llu,"
		       "\"requests\":%llu,\"requests_rejected\":%llu,"
		       "\"bytes_in\":%llu,\"bytes_out\":%llu,"
		       "\"last_seen\":%llu,\"req_per_s\":%.2f,"
		       "\"bytes_in_per_s\":%.0f,\"bytes_out_per_s\":%.0f}",
		       r->st.fingerprint[0] ? "false" : "true",
		       (unsigned long long)r->st.conns_active,
		       (unsigned long long)r->st.conns_total,
		       (unsigned long long)r->st.conns_rejected,
		       (unsigned long long)r->st.requests,
		       (unsigned long long)r->st.requests_rejected,
		       (unsigned long long)r->st.bytes_in,
		       (unsigned long long)r->st.bytes_out,
		       (unsigned long long)r->st.last_seen, r->req_s, r->in_s,
		       r->out_s);
	}
	printf("]}\n");
	fflush(stdout);
}

/* ---- --fleet */

/* One gateway's entry in P{FP}:hosts: "ACTIVE CONNS REQUESTS UNTIL
 * [BYTES]" (BYTES since the fleet counts them). */
struct stat_fleet_host {
	long long active, conns, requests, until, bytes;
};

/* Parse S into H: false when malformed or stale (UNTIL before NOW_MS). */
static bool stat_fleet_host(const char *s, long long now_ms,
			    struct stat_fleet_host *h)
{
	h->bytes = 0;
	return sscanf(s, "%lld %lld %lld %lld %lld", &h->active, &h->conns,
		      &h->requests, &h->until, &h->bytes) >= 4 &&
	       h->until >= now_ms;
}

/* One P{FP}:hosts reply: print the fresh hosts, count their connections. */
static void stat_fleet_one(redisContext *c, const char *prefix, const char *fp,
			   long long now_ms, int json, int first)
{
	redisReply *h, *w;
	long long total = 0, win = 0, bwin = 0, bytes = 0;
	struct stat_fleet_host v;
	char key[200];
	size_t i;
	int n = 0;

	h = redisCommand(c, "HGETALL %s{%s}:hosts", prefix, fp);
	w = redisCommand(c, "HMGET %s{%s}:win w n b", prefix, fp);
	if (!h || h->type != REDIS_REPLY_ARRAY)
		goto out;
	if (w && w->type == REDIS_REPLY_ARRAY && w->elements == 3 &&
	    w->element[0]->type == REDIS_REPLY_STRING &&
	    w->element[1]->type == REDIS_REPLY_STRING &&
	    atoll(w->element[0]->str) == now_ms / 1000) {
		win = atoll(w->element[1]->str);
		if (w->element[2]->type == REDIS_REPLY_STRING)
			bwin = atoll(w->element[2]->str);
	}
	for (i = 0; i + 1 < h->elements; i += 2) {
		if (stat_fleet_host(h->element[i + 1]->str, now_ms, &v)) {
			total += v.active;
			bytes += v.bytes;
		}
	}
	if (json)
		printf("%s{\"fingerprint\":\"%s\",\"conns_active\":%lld,"
		       "\"requests_window\":%lld,\"bytes_out_window\":%lld,"
		       "\"bytes_out\":%lld,\"hosts\":{",
		       first ? "" : ",", fp, total, win, bwin, bytes);
	else
		printf("%-64s %8lld %8lld %12lld %14lld  ", fp, total, win,
		       bwin, bytes);
	for (i = 0; i + 1 < h->elements; i += 2) {
		if (!stat_fleet_host(h->element[i + 1]->str, now_ms, &v))
			continue;
		snprintf(key, sizeof(key), "%s", h->element[i]->str);
		if (json)
			printf("%s\"%s\":{\"conns_active\":%lld,"
			       "\"conns_total\":%lld,\"requests\":%lld,"
			       "\"bytes_out\":%lld}",
			       n ? "," : "", key, v.active, v.conns, v.requests,
			       v.bytes);
		else
			printf("%s%s=%lld/%lld/%lld", n ? " " : "", key,
			       v.active, v.requests, v.bytes);
		n++;
	}
	printf(json ? "}}" : "\n");
out:
	if (h)
		freeReplyObject(h);
	if (w)
		freeReplyObject(w);
}

/* Print the identities whose P{FP}:hosts key is on C (one node). */
static int stat_fleet_scan(redisContext *c, const char *prefix,
			   long long now_ms, int json, int *first)
{
	char cursor[32] = "0", match[160];
	redisReply *r = NULL;
	size_t i, plen = strlen(prefix);
	int rc = -1;

	snprintf(match, sizeof(match), "%s{*}:hosts", prefix);
	do {
		r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor,
				 match);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			fprintf(stderr, "mtlsgw-stat: redis: SCAN: %s\n",
				r && r->type == REDIS_REPLY_ERROR ? r->str
								  : c->errstr);
			goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (i = 0; i < r->element[1]->elements; i++) {
			const char *k = r->element[1]->element[i]->str;
			char fp[65];

			/* PREFIX{FP}:hosts */
			if (strlen(k) != plen + 1 + 64 + 7)
				continue;
			memcpy(fp, k + plen + 1, 64);
			fp[64] = 0;
			stat_fleet_one(c, prefix, fp, now_ms, json, *first);
			*first = 0;
		}
		freeReplyObject(r);
		r = NULL;
	} while (strcmp(cursor, "0"));
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	return rc;
}

/* In a Cluster, every primary holds a share of the keys: scan each. */
static int stat_fleet(const char *conf, int json)
{
	struct fleet_cluster *cl = NULL;
	struct config *cfg = NULL;
	redisContext *c = NULL;
	redisReply *t;
	char err[512];
	long long now_ms;
	size_t i, nodes = 1;
	int rc = 1, first = 1;

	if (config_load(conf, stderr, &cfg) < 0)
		return 1;
	if (cfg->fleet_cluster) {
		cl = fleet_cluster_from_config(cfg, STAT_FLEET_TIMEOUT_MS, err,
					       sizeof(err));
		nodes = cl ? fleet_cluster_n_nodes(cl) : 0;
		if (cl && fleet_cluster_connect(cl, 0, err, sizeof(err)) >= 0)
			c = fleet_cluster_ctx(cl, 0);
	} else {
		c = fleet_redis_from_config(cfg, STAT_FLEET_TIMEOUT_MS, err,
					    sizeof(err));
	}
	if (!c) {
		fprintf(stderr, "mtlsgw-stat: redis: %s\n", err);
		goto out;
	}
	t = redisCommand(c, "TIME");
	if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2) {
		fprintf(stderr, "mtlsgw-stat: redis: TIME: %s\n", c->errstr);
		if (t)
			freeReplyObject(t);
		goto out;
	}
	now_ms = atoll(t->element[0]->str) * 1000 +
		 atoll(t->element[1]->str) / 1000;
	freeReplyObject(t);
	if (json)
		printf("{\"fleet\":[");
	else
		printf("%-64s %8s %8s %12s %14s  %s\n", "IDENTITY", "CONNS",
		       "REQ/WIN", "BYTES/WIN", "BYTES",
		       "HOSTS (host=conns/requests/bytes)");
	for (i = 0; i < nodes; i++) {
		if (cl &&
		    fleet_cluster_connect(cl, (int)i, err, sizeof(err)) < 0) {
			fprintf(stderr, "mtlsgw-stat: redis: %s\n", err);
			goto out;
		}
		if (cl)
			c = fleet_cluster_ctx(cl, (int)i);
		if (stat_fleet_scan(c, cfg->fleet_key_prefix, now_ms, json,
				    &first) < 0)
			goto out;
	}
	if (json)
		printf("]}\n");
	rc = 0;
out:
	if (cl)
		fleet_cluster_free(cl); /* C is one of its connections */
	else if (c)
		redisFree(c);
	config_free(cfg);
	return rc;
}

static void stat_usage(FILE *f)
{
	fprintf(f,
		"usage: mtlsgw-stat [--instance NAME] [--json] "
		"[--watch SECONDS]\n"
		"       mtlsgw-stat --fleet [-c CONFIG] [--json]\n"
		"Per-client-certificate counters of a running mtlsgw, from "
		"%s/NAME/%s\n(NAME defaults to \"%s\", the [bpf] instance "
		"of the gateway's config).\n",
		MTLSGW_PIN_ROOT, MTLSGW_MAP_STATS, STAT_DEFAULT_INSTANCE);
}

static void stat_sleep(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"instance", required_argument, NULL, 'i'},
		{"json", no_argument, NULL, 'j'},
		{"watch", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{"fleet", no_argument, NULL, 'f'},
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0},
	};
	const char *conf = STAT_DEFAULT_CONFIG;
	int fleet = 0;
	struct stat_sample prev, cur, tmp;
	const char *instance = STAT_DEFAULT_INSTANCE;
	double watch = 0, interval;
	int json = 0, c, fd;
	char *end;

	memset(&prev, 0, sizeof(prev));
	memset(&cur, 0, sizeof(cur));
	while ((c = getopt_long(argc, argv, "i:jw:hc:", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fleet = 1;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'i':
			instance = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'w':
			watch = strtod(optarg, &end);
			if (*end || !(watch > 0) || watch > 86400) {
				fprintf(stderr,
					"mtlsgw-stat: --watch wants seconds "
					"(> 0), not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			stat_usage(stdout);
			return 0;
		default:
			stat_usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !instance[0] || strchr(instance, '/')) {
		stat_usage(stderr);
		return 2;
	}
	if (fleet)
		return stat_fleet(conf, json);
	fd = stat_open(instance);
	if (fd < 0)
		return 1;
	signal(SIGPIPE, SIG_DFL);
	interval = watch > 0 ? watch : STAT_ONESHOT_INTERVAL_MS / 1000.0;
	if (stat_read(fd, &prev) < 0)
		return 1;
	for (;;) {
		stat_sleep(interval);
		if (stat_read(fd, &cur) < 0)
			return 1;
		stat_rates(&cur, &prev);
		qsort(cur.rows, cur.n, sizeof(*cur.rows), stat_cmp);
		if (json)
			stat_print_json(instance, &cur, cur.t - prev.t);
		else
			stat_print_table(instance, &cur, cur.t - prev.t);
		if (watch <= 0)
			break;
		if (!json)
			putchar('\n');
		tmp = prev;
		prev = cur;
		cur = tmp;
	}
	free(prev.rows);
	free(cur.rows);
	close(fd);
	return 0;
}

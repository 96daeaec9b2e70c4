// SPDX-License-Identifier: MIT
/*
 * mtlsgw-ctl: the fleet's block list, in the Redis named by a gateway's
 * [fleet] section (key layout in daemon/fleet_private.h).
 *
 *   mtlsgw-ctl [-c CONFIG] block sha256:FP [--ttl 1h] [--reason TEXT]
 *   mtlsgw-ctl [-c CONFIG] unblock sha256:FP
 *   mtlsgw-ctl [-c CONFIG] list
 *
 * block and unblock write P{blocks}:list and publish on P{blocks}:events:
 * every gateway of the fleet answers 403 to that certificate and shuts
 * its open connections down. With [fleet] cluster = yes it asks the
 * Cluster which primary serves the {blocks} slot and talks to that one
 * (PUBLISH there reaches every node's subscribers). Exit 0, 1 on a Redis
 * or config error, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/config.h"
#include "daemon/fleet_cluster.h"
#include "daemon/fleet_redis.h"

#define CTL_DEFAULT_CONFIG "/etc/mtlsgw/mtlsgw.conf"
#define CTL_TIMEOUT_MS	   5000
#define CTL_REASON_MAX	   200
#define CTL_FP_LEN	   64

static void ctl_usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsgw-ctl [-c CONFIG] block sha256:FP [--ttl "
		"DURATION] "
		"[--reason TEXT]\n"
		"       mtlsgw-ctl [-c CONFIG] unblock sha256:FP\n"
		"       mtlsgw-ctl [-c CONFIG] list\n"
		"DURATION: N[s|m|h|d]; CONFIG (default %s) names Redis in "
		"[fleet]\n",
		CTL_DEFAULT_CONFIG);
}

/* "90", "90s", "15m", "1h", "7d" -> seconds; -1 if bad. */
static long long ctl_duration(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -1;
	if (!strcmp(end, "") || !strcmp(end, "s"))
		return v;
	if (!strcmp(end, "m"))
		return v * 60;
	if (!strcmp(end, "h"))
		return v * 3600;
	if (!strcmp(end, "d"))
		return v * 86400;
	return -1;
}

/* The cluster (NULL: one Redis) and the connection commands go to. */
static struct fleet_cluster *ctl_cl;
static redisContext *ctl_c;

static int ctl_check(redisReply *r, const char *what)
{
	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "mtlsgw-ctl: %s: %s\n", what,
			r		      ? r->str
			: ctl_c && ctl_c->err ? ctl_c->errstr
					      : "cluster redirection failed");
		if (r)
			freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}

static int ctl_list(const char *list)
{
	redisReply *r =
		fleet_cluster_command(ctl_cl, &ctl_c, list, "HGETALL %s", list);
	long long now = (long long)time(NULL), exp, created;
	char reason[CTL_REASON_MAX + 1], when[32];
	redisReply *r2;
	size_t i;
	int n;

	if (!r || r->type != REDIS_REPLY_ARRAY)
		return ctl_check(r, "HGETALL") ? 1 : 1;
	printf("%-71s %-20s %s\n", "IDENTITY", "EXPIRES", "REASON");
	for (i = 0; i + 1 < r->elements; i += 2) {
		reason[0] = 0;
		n = 0;
		exp = created = 0;
		sscanf(r->element[i + 1]->str, "%lld %lld %n", &exp, &created,
		       &n);
		if (n > 0)
			snprintf(reason, sizeof(reason), "%s",
				 r->element[i + 1]->str + n);
		if (exp && exp <= now) {
			/* expired: no gateway enforces it; tidy up */
			r2 = fleet_cluster_command(ctl_cl, &ctl_c, list,
						   "HDEL %s %s", list,
						   r->element[i]->str);
			if (r2)
				freeReplyObject(r2);
			continue;
		}
		if (exp) {
			time_t t = (time_t)exp;
			struct tm tm;

			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		} else {
			snprintf(when, sizeof(when), "never");
		}
		printf("sha256:%-64s %-20s %s\n", r->element[i]->str, when,
		       reason);
	}
	freeReplyObject(r);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"ttl", required_argument, NULL, 't'},
		{"reason", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *conf = CTL_DEFAULT_CONFIG, *reason = "", *cmd;
	char fp[CTL_FP_LEN + 1] = "", list[160], chan[160], val[300];
	char err[512];
	long long ttl = 0, now = (long long)time(NULL);
	struct config *cfg = NULL;
	int o, rc = 1;

	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			conf = optarg;
			break;
		case 't':
			ttl = ctl_duration(optarg);
			if (ttl < 0) {
				fprintf(stderr, "mtlsgw-ctl: bad --ttl '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'r':
			reason = optarg;
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		default:
			ctl_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		ctl_usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	if (!strcmp(cmd, "block") || !strcmp(cmd, "unblock")) {
		if (optind + 2 != argc ||
		    config_normalise_fingerprint(argv[optind + 1], fp)) {
			fprintf(stderr,
				"mtlsgw-ctl: %s needs one sha256:FP (64 "
				"hex digits)\n",
				cmd);
			return 2;
		}
	} else if (strcmp(cmd, "list") || optind + 1 != argc) {
		ctl_usage(stderr);
		return 2;
	}
	if (strlen(reason) > CTL_REASON_MAX || strpbrk(reason, "\r\n")) {
		fprintf(stderr,
			"mtlsgw-ctl: --reason: one line, at most %d "
			"bytes\n",
			CTL_REASON_MAX);
		return 2;
	}
	if (config_load(conf, stderr, &cfg) < 0)
		return 1;
	snprintf(list, sizeof(list), "%s{blocks}:list", cfg->fleet_key_prefix);
	snprintf(chan, sizeof(chan), "%s{blocks}:events",
		 cfg->fleet_key_prefix);
	if (cfg->fleet_cluster) {
		ctl_cl = fleet_cluster_from_config(cfg, CTL_TIMEOUT_MS, err,
						   sizeof(err));
		ctl_c = ctl_cl ? fleet_cluster_ctx_for(ctl_cl, list, err,
						       sizeof(err))
			       : NULL;
	} else {
		ctl_c = fleet_redis_from_config(cfg, CTL_TIMEOUT_MS, err,
						sizeof(err));
	}
	if (!ctl_c) {
		fprintf(stderr, "mtlsgw-ctl: redis: %s\n", err);
		goto out;
	}
	if (!strcmp(cmd, "list")) {
		rc = ctl_list(list);
		goto out;
	}
	if (!strcmp(cmd, "block")) {
		snprintf(val, sizeof(val), "%lld %lld %s", ttl ? now + ttl : 0,
			 now, reason);
		if (ctl_check(fleet_cluster_command(ctl_cl, &ctl_c, list,
						    "HSET %s %s %s", list, fp,
						    val),
			      "HSET"))
			goto out;
	} else if (ctl_check(fleet_cluster_command(ctl_cl, &ctl_c, list,
						   "HDEL %s %s", list, fp),
			     "HDEL")) {
		goto out;
	}
	/* In a Cluster, PUBLISH reaches every node's subscribers. */
	if (ctl_check(redisCommand(ctl_c, "PUBLISH %s %s:%s", chan, cmd, fp),
		      "PUBLISH"))
		goto out;
	printf("sha256:%s %s\n", fp,
	       !strcmp(cmd, "block") ? "blocked" : "unblocked");
	rc = 0;
out:
	if (ctl_cl)
		fleet_cluster_free(
			ctl_cl); /* ctl_c is one of its connections */
	else if (ctl_c)
		redisFree(ctl_c);
	config_free(cfg);
	return rc;
}

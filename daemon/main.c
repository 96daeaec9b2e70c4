// SPDX-License-Identifier: MIT
/*
 * mtlsgw: start-up (config, TLS context, listeners, privileges), the
 * worker threads, and signals: SIGHUP reloads, SIGTERM/SIGINT drain and
 * stop (a second one stops at once). The drain: /ready turns 503 at once,
 * listeners keep accepting for drain_delay (so a balancer's health check
 * notices and stops sending), then close, and running requests finish
 * within drain_timeout.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <microhttpd.h>
#include <openssl/ssl.h>
#include <pthread.h>

#include "config.h"
#include "crl.h"
#include "fleet.h"
#include "ktls.h"
#include "limits.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "ready.h"
#include "reload.h"
#include "tls.h"
#include "version.h" /* generated: build/version.h (MTLSGW_VERSION) */
#include "worker.h"

#define MAIN_DEFAULT_CONFIG "/etc/mtlsgw/mtlsgw.conf"
#define MAIN_SIGNAL_POLL_MS 100
/*
 * glibc gives the top of a thread's heap back to the kernel once more than
 * 128 KiB is free there. A proxied request allocates and frees some tens
 * of KiB (upstream buffers, MHD's response block), so under load each
 * worker's heap shrank and grew again per request: madvise, page faults
 * and TLB shootdowns were a third of the CPU of a proxied 1 KiB request
 * (perf). Free memory up to this much stays with the heap instead.
 */
#define MAIN_MALLOC_TRIM_THRESHOLD (4 * 1024 * 1024)

struct gateway {
	const char *config_path;
	struct gen *gen;
	struct worker_shared shared;
	struct worker *workers[CONFIG_MAX_WORKERS];
	unsigned n_workers;
};

static void main_usage(FILE *out)
{
	fprintf(out,
		"usage: mtlsgw [-t] [-c FILE]\n"
		"  -c, --config FILE  configuration (default %s)\n"
		"  -t, --test         check the configuration and exit\n"
		"  -V, --version      print the version\n"
		"  -h, --help         this help\n"
		"signals: HUP reloads, USR1 reopens log files, TERM/INT drain "
		"and stop\n",
		MAIN_DEFAULT_CONFIG);
}

/* Config and TLS context, both checked; errors on ERRORS as FILE:LINE.
 * KTLS: switch OpenSSL's kTLS on for the new context. */
static struct gen *main_load(const char *path, unsigned id, bool ktls,
			     FILE *errors)
{
	struct config *cfg = NULL;
	SSL_CTX *ctx;
	struct gen *g;

	if (config_load(path, errors, &cfg) < 0)
		return NULL;
	ctx = tls_ctx_new(cfg, errors);
	if (!ctx) {
		config_free(cfg);
		return NULL;
	}
	if (ktls_ctx_setup(ctx, ktls && cfg->ktls != CONFIG_KTLS_OFF) < 0) {
		log_error("cannot set up kTLS on the TLS context");
		SSL_CTX_free(ctx);
		config_free(cfg);
		return NULL;
	}
	g = gen_new(cfg, ctx, id);
	if (!g) {
		SSL_CTX_free(ctx);
		config_free(cfg);
	}
	return g;
}

static void main_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int main_drop_privileges(const char *user)
{
	struct passwd *pw;

	if (!user)
		return 0;
	pw = getpwnam(user);
	if (!pw) {
		log_error("user %s: no such user", user);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		log_error("cannot drop privileges to %s: %s", user,
			  strerror(errno));
		return -1;
	}
	log_info("running as user %s", user);
	return 0;
}

/* Written after the listeners are bound and before privileges are
 * dropped (its folder may be root's); removed at a clean exit where the
 * remaining privileges allow, else left as nginx leaves it. */
static int main_write_pid_file(const char *path)
{
	FILE *f;

	if (!path)
		return 0;
	f = fopen(path, "we");
	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
		log_error("pid_file %s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	return 0;
}

/* A reload re-reads these files as the unprivileged user: say so now, not
 * at the first SIGHUP. */
static void main_check_reload_access(const struct config *cfg)
{
	const char *files[] = {cfg->path, cfg->cert, cfg->key, cfg->client_ca,
			       cfg->crl};
	size_t i;

	if (!cfg->user)
		return;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i] && access(files[i], R_OK) < 0)
			log_warn("%s is not readable by user %s (%s): SIGHUP "
				 "reload will fail until it is",
				 files[i], cfg->user, strerror(errno));
}

static int main_start_workers(struct gateway *gw)
{
	const struct config *cfg = gw->gen->cfg;
	int fds[CONFIG_MAX_LISTEN];
	unsigned i;
	size_t k;

	for (i = 0; i < cfg->workers; i++) {
		for (k = 0; k < cfg->n_listen; k++) {
			fds[k] = listener_open(&cfg->listen[k]);
			if (fds[k] < 0) {
				while (k-- > 0)
					close(fds[k]);
				return -1;
			}
		}
		gw->workers[i] =
			worker_new(i, gw->gen, &gw->shared, fds, cfg->n_listen);
		if (!gw->workers[i])
			return -1;
		gw->n_workers++;
	}
	return 0;
}

static void main_reload(struct gateway *gw)
{
	const struct config *old, *cfg;
	char *errs = NULL;
	size_t errs_len = 0;
	FILE *errors = open_memstream(&errs, &errs_len);
	struct gen *g;
	unsigned i;
	size_t k;

	/* The load's FILE:LINE errors go to the error log, not to stderr. */
	g = main_load(gw->config_path, gw->gen->id + 1, gw->shared.ktls_usable,
		      errors ? errors : stderr);
	if (errors) {
		fclose(errors);
		reload_log_errors(errs, errs_len);
		free(errs);
	}
	if (!g) {
		log_error("reload of %s failed: still serving configuration "
			  "%u",
			  gw->config_path, gw->gen->id);
		return;
	}
	old = gw->gen->cfg;
	cfg = g->cfg;
	reload_warn_fixed(old, cfg);
	if (cfg->n_listen != old->n_listen || cfg->workers != old->workers)
		log_warn("reload: listen and workers changes need a restart");
	for (k = 0; k < cfg->n_listen && k < old->n_listen; k++)
		if (strcmp(cfg->listen[k].addr.text, old->listen[k].addr.text))
			log_warn("reload: listen %s needs a restart",
				 cfg->listen[k].addr.text);
	if (cfg->ktls != old->ktls)
		log_warn("reload: a ktls change needs a restart");
	fleet_reload(gw->shared.fleet, cfg);
	if (gw->shared.limits && limits_reload(gw->shared.limits, cfg) < 0)
		log_error("reload: limits not updated (see above); the old "
			  "limits stay in force");
	if (crl_configure(cfg->crl, cfg->crl_check_interval_ms) < 0)
		log_error("reload: crl not updated (see above)");
	for (i = 0; i < gw->n_workers; i++)
		worker_reload(gw->workers[i], g);
	gen_unref(gw->gen);
	gw->gen = g;
	log_info("reloaded %s: configuration %u", gw->config_path, g->id);
}

/* Probe the kernel once; `ktls = on` without it refuses to start. The
 * first generation was loaded before the probe, so set its context up. */
static int main_setup_ktls(struct gateway *gw)
{
	const struct config *cfg = gw->gen->cfg;
	char why[256] = "";

	gw->shared.ktls_usable = ktls_probe(cfg->ktls, why, sizeof(why)) == 1;
	gw->shared.no_ktls_reason = cfg->ktls == CONFIG_KTLS_OFF
					    ? "ktls off"
					    : "kernel has no ktls";
	if (gw->shared.ktls_usable) {
		log_info("kTLS available (%s): data path kTLS TX+RX, userspace "
			 "relay per connection where it cannot apply",
			 why);
	} else if (cfg->ktls == CONFIG_KTLS_ON) {
		log_error("ktls = on, but kTLS is not available: %s", why);
		return -1;
	} else {
		log_info("kTLS not in use (%s): data path userspace TLS relay",
			 why);
	}
	if (ktls_ctx_setup(gw->gen->ssl_ctx, gw->shared.ktls_usable) < 0) {
		log_error("cannot set up kTLS on the TLS context");
		return -1;
	}
	return 0;
}

static bool main_all_done(struct gateway *gw)
{
	unsigned i;

	for (i = 0; i < gw->n_workers; i++)
		if (!worker_done(gw->workers[i]))
			return false;
	return true;
}

/* Listeners close; running requests get drain_timeout. */
static void main_drain(struct gateway *gw)
{
	unsigned i;

	log_info("draining: listeners closed (deadline %u ms)",
		 gw->gen->cfg->drain_timeout_ms);
	for (i = 0; i < gw->n_workers; i++)
		worker_drain(gw->workers[i], gw->gen->cfg->drain_timeout_ms);
}

/* A listener trusting PROXY headers from anyone: say so once, at start. */
static void main_warn_proxy_from(const struct config *cfg)
{
	size_t i;

	if (cfg->n_proxy_from)
		return;
	for (i = 0; i < cfg->n_listen; i++)
		if (cfg->listen[i].proxy_protocol)
			log_warn("listen %s: proxy_protocol without proxy_from "
				 "trusts a PROXY header from every source: set "
				 "[server] proxy_from to the balancers' "
				 "addresses",
				 cfg->listen[i].addr.text);
}

static void main_serve(struct gateway *gw, const sigset_t *sigs)
{
	struct timespec poll = {0, MAIN_SIGNAL_POLL_MS * 1000000L};
	uint64_t drain_at = 0; /* in drain_delay: when to close listeners */
	bool draining = false;
	unsigned i;
	int sig;

	for (;;) {
		if (drain_at && loop_now_ms() >= drain_at) {
			drain_at = 0;
			main_drain(gw);
		}
		sig = sigtimedwait(sigs, NULL, &poll);
		crl_tick();
		if (sig < 0) {
			if (main_all_done(gw))
				break;
			continue;
		}
		if (sig == SIGHUP) {
			main_reload(gw);
			continue;
		}
		if (sig == SIGUSR1) {
			if (log_reopen() == 0)
				log_info("SIGUSR1: log files reopened");
			continue;
		}
		if (draining) {
			log_info("second stop signal: stopping now");
			for (i = 0; i < gw->n_workers; i++)
				worker_stop(gw->workers[i]);
			continue;
		}
		draining = true;
		ready_set_blocker(READY_DRAINING, true);
		if (!gw->gen->cfg->drain_delay_ms) {
			log_info("%s: /ready answers 503",
				 sig == SIGINT ? "SIGINT" : "SIGTERM");
			main_drain(gw);
			continue;
		}
		log_info("%s: /ready answers 503; still accepting for %u ms "
			 "(drain_delay), then draining",
			 sig == SIGINT ? "SIGINT" : "SIGTERM",
			 gw->gen->cfg->drain_delay_ms);
		drain_at = loop_now_ms() + gw->gen->cfg->drain_delay_ms;
	}
}

/* The command line: -1 to go on, else the exit status (-V, -h, usage). */
static int main_args(int argc, char **argv, struct gateway *gw,
		     bool *check_only)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"test", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			gw->config_path = optarg;
			break;
		case 't':
			*check_only = true;
			break;
		case 'V':
			printf("mtlsgw %s (%s, libmicrohttpd %s)\n",
			       MTLSGW_VERSION, OpenSSL_version(OPENSSL_VERSION),
			       MHD_get_version());
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		main_usage(stderr);
		return 2;
	}
	return -1;
}

/* Signals are read synchronously by main_serve; workers block them all. */
static void main_block_signals(sigset_t *sigs)
{
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(sigs);
	sigaddset(sigs, SIGHUP);
	sigaddset(sigs, SIGUSR1);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

static void main_log_listening(const struct gateway *gw)
{
	const struct config *cfg = gw->gen->cfg;
	size_t i;

	for (i = 0; i < cfg->n_listen; i++)
		log_info("mtlsgw %s listening on https://%s (%u workers, data "
			 "path: %s, limits: %s)",
			 MTLSGW_VERSION, cfg->listen[i].addr.text, cfg->workers,
			 gw->shared.ktls_usable ? "kTLS, userspace relay as "
						  "fallback"
						: "userspace TLS relay",
			 limits_mode_name(gw->shared.limits));
}

int main(int argc, char **argv)
{
	struct gateway gw = {.config_path = MAIN_DEFAULT_CONFIG};
	const struct config *cfg;
	bool check_only = false, wrote_pid = false;
	char *pid_file = NULL;
	sigset_t sigs;
	unsigned i;
	int status;

	mallopt(M_TRIM_THRESHOLD, MAIN_MALLOC_TRIM_THRESHOLD);
	status = main_args(argc, argv, &gw, &check_only);
	if (status >= 0)
		return status;
	status = 1;
	gw.gen = main_load(gw.config_path, 1, false, stderr);
	if (!gw.gen)
		return 1;
	cfg = gw.gen->cfg;
	if (check_only) {
		printf("%s: configuration ok\n", gw.config_path);
		gen_unref(gw.gen);
		return 0;
	}
	if (log_open(cfg->error_log, cfg->log_level, cfg->access_log) < 0)
		goto out;
	if (main_setup_ktls(&gw) < 0)
		goto out;
	cfg = gw.gen->cfg;
	if (crl_configure(cfg->crl, cfg->crl_check_interval_ms) < 0)
		goto out;
	/* Before dropping privileges: BPF needs them. */
	gw.shared.limits = limits_new(cfg);
	if (!gw.shared.limits)
		goto out;
	if (fleet_new(cfg, gw.shared.limits, &gw.shared.fleet) < 0)
		goto out;
	main_block_signals(&sigs);
	main_raise_nofile();

	gw.shared.max_connections = cfg->max_connections;
	atomic_init(&gw.shared.connections, 0);
	if (main_start_workers(&gw) < 0)
		goto out;
	if (main_write_pid_file(cfg->pid_file) < 0)
		goto out;
	wrote_pid = cfg->pid_file != NULL;
	pid_file = cfg->pid_file ? strdup(cfg->pid_file) : NULL;
	if (main_drop_privileges(cfg->user) < 0)
		goto out;
	main_check_reload_access(cfg);
	main_warn_proxy_from(cfg);
	metrics_set_info(gw.shared.ktls_usable,
			 limits_mode_name(gw.shared.limits), cfg->workers);
	for (i = 0; i < gw.n_workers; i++)
		if (worker_start(gw.workers[i]) < 0)
			goto out;
	main_log_listening(&gw);
	main_serve(&gw, &sigs);
	status = 0;
	log_info("stopped");
out:
	for (i = 0; i < gw.n_workers; i++) {
		worker_stop(gw.workers[i]);
		worker_join(gw.workers[i]);
		worker_free(gw.workers[i]);
	}
	gen_unref(gw.gen);
	crl_cleanup();
	fleet_free(gw.shared.fleet);
	limits_free(gw.shared.limits);
	if (wrote_pid && unlink(pid_file) < 0 && errno != ENOENT)
		log_info("pid_file %s left in place: %s", pid_file,
			 strerror(errno));
	free(pid_file);
	log_close();
	return status;
}

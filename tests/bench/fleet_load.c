// SPDX-License-Identifier: MIT
/*
 * Sync cost of the fleet with many active identities, for
 * scripts/bench-fleet.sh: the daemon's fleet module (daemon/fleet*.c) on
 * the config CONFIG, N identities each holding one (pretend) connection
 * and counting requests, so that every sync pushes all of them. Prints
 * the CPU the process used per second while the main thread only counts
 * requests (the rest is the sync thread), and the fleet's metrics.
 *
 *   fleet_load CONFIG N SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "daemon/config.h"
#include "daemon/fleet.h"
#include "daemon/log.h"

#define LOAD_FD_BASE 1000

static double load_cpu(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) /
		       1e6;
}

static double load_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct rlimit rl = {.rlim_cur = 1 << 20, .rlim_max = 1 << 20};
	struct config *cfg;
	struct fleet *f;
	double t0, c0, m0, el, secs;
	unsigned retry;
	char fp[65];
	long i, n;

	if (argc != 4)
		return 2;
	n = atol(argv[2]);
	secs = atof(argv[3]);
	setrlimit(RLIMIT_NOFILE, &rl); /* fleet's fd table covers N */
	if (config_load(argv[1], stderr, &cfg) < 0 ||
	    log_open("stderr", "warn", "off") < 0)
		return 1;
	if (fleet_new(cfg, NULL, &f) < 0 || !f)
		return 1;
	for (i = 0; i < n; i++) {
		snprintf(fp, sizeof(fp), "%064lx", i);
		fleet_conn_open(f, (int)(LOAD_FD_BASE + i), fp, &retry);
	}
	t0 = load_now();
	c0 = load_cpu(RUSAGE_SELF);
	m0 = load_cpu(RUSAGE_THREAD);
	while (load_now() - t0 < secs) {
		struct timespec ts = {0, 100000000};

		/* One request per identity every 100 ms: new deltas. */
		for (i = 0; i < n; i++)
			fleet_request(f, (int)(LOAD_FD_BASE + i), &retry);
		nanosleep(&ts, NULL);
	}
	el = load_now() - t0;
	/* The process minus the main thread (counting) = the sync thread. */
	printf("identities %ld seconds %.1f sync_thread_cpu_per_s %.3f "
	       "counting_cpu_per_s %.3f\n",
	       n, el,
	       (load_cpu(RUSAGE_SELF) - c0 - (load_cpu(RUSAGE_THREAD) - m0)) /
		       el,
	       (load_cpu(RUSAGE_THREAD) - m0) / el);
	fleet_metrics_write(stdout);
	for (i = 0; i < n; i++)
		fleet_conn_close(f, (int)(LOAD_FD_BASE + i));
	fleet_free(f);
	config_free(cfg);
	return 0;
}

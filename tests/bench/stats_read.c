// SPDX-License-Identifier: MIT
/*
 * What reading bytes per identity from a cert_stats-like map costs per
 * fleet sync, for scripts/bench-fleet.sh (needs root: it creates a BPF
 * map). A private LRU hash with cert_stats' key and value layout
 * (include/mtlsgw_abi.h) holding N identities; then, each repeated ROUNDS
 * times:
 *   batch  the whole map with bpf_map_lookup_batch, 1024 per call (what a
 *          sync that does not know which identities were active must do)
 *   keys   bpf_map_lookup_elem of K identities only (what the fleet does:
 *          its hooks give the identities active since the last sync), for
 *          K = 1000, 10000 and N
 * Prints milliseconds per sync for each.
 *
 *   stats_read [N [ROUNDS]]     (default 100000 5)
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "mtlsgw_abi.h"

#define READ_BATCH 1024

static double read_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void read_key(struct mtlsgw_id *k, long i)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%064lx", i);
}

/* The whole map, batch by batch; returns the entries read. */
static long read_batch(int fd, struct mtlsgw_id *keys, struct mtlsgw_stats *v,
		       unsigned long long *sum)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 out = 0, count;
	long total = 0;
	void *in = NULL;
	int rc;

	do {
		count = READ_BATCH;
		rc = bpf_map_lookup_batch(fd, in, &out, keys, v, &count, &opts);
		if (rc < 0 && errno != ENOENT)
			return -1;
		for (__u32 j = 0; j < count; j++)
			*sum += v[j].bytes_out;
		total += count;
		in = &out;
	} while (rc == 0);
	return total;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	long ks[3] = {1000, 10000, n};
	struct mtlsgw_stats *vals, v;
	unsigned long long sum = 0;
	struct mtlsgw_id *keys, k;
	double t0, ms;
	long i, got = 0;
	int fd, r, j;

	if (n < 1 || rounds < 1)
		return 2;
	fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "stats_read", sizeof(k),
			    sizeof(v), (__u32)n, NULL);
	keys = calloc(READ_BATCH, sizeof(*keys));
	vals = calloc(READ_BATCH, sizeof(*vals));
	if (fd < 0 || !keys || !vals) {
		fprintf(stderr, "stats_read: map: %s\n", strerror(errno));
		return 1;
	}
	memset(&v, 0, sizeof(v));
	for (i = 0; i < n; i++) {
		read_key(&k, i);
		v.bytes_out = (unsigned long long)i;
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) < 0) {
			fprintf(stderr, "stats_read: fill: %s\n",
				strerror(errno));
			return 1;
		}
	}
	t0 = read_now_ms();
	for (r = 0; r < rounds; r++)
		got = read_batch(fd, keys, vals, &sum);
	ms = (read_now_ms() - t0) / rounds;
	if (got < 0) {
		fprintf(stderr, "stats_read: batch: %s\n", strerror(errno));
		return 1;
	}
	printf("batch %ld entries: %.2f ms per sync\n", got, ms);
	for (j = 0; j < 3; j++) {
		if (ks[j] > n)
			continue;
		t0 = read_now_ms();
		for (r = 0; r < rounds; r++)
			for (i = 0; i < ks[j]; i++) {
				read_key(&k, i * (n / ks[j]));
				if (bpf_map_lookup_elem(fd, &k, &v) == 0)
					sum += v.bytes_out;
			}
		ms = (read_now_ms() - t0) / rounds;
		printf("keys %ld of %ld: %.2f ms per sync\n", ks[j], n, ms);
	}
	fprintf(stderr, "(checksum %llu)\n", sum);
	close(fd);
	free(keys);
	free(vals);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * log_ratelimited(): a flood from one call site gives at most one line per
 * second, and no event is lost from the count: every call is either a
 * line or counted in the "N more like this suppressed" of a later line
 * (or still pending in the struct). Call sites are independent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/log.h"

static char path[] = "/tmp/mtlsgw-test-log-XXXXXX";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Lines of the log containing WHAT, and the sum of their suppressed
 * counts. */
static int log_count(const char *what, unsigned long *suppressed)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int n = 0;

	assert_non_null(f);
	*suppressed = 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, what);
		unsigned long k;

		if (!p)
			continue;
		n++;
		p = strstr(line, " (");
		if (p && sscanf(p, " (%lu more like this suppressed)", &k) == 1)
			*suppressed += k;
	}
	fclose(f);
	return n;
}

static void test_log_ratelimited_counts_everything(void **state)
{
	static struct log_ratelimit a, b;
	unsigned long sup_a, sup_b;
	double t0, t1;
	int i, lines_a, lines_b;

	(void)state;
	t0 = now_s();
	for (i = 0; i < 5000; i++)
		log_ratelimited(&a, LOG_LVL_WARN, "kind-a %d", i);
	log_ratelimited(&b, LOG_LVL_WARN, "kind-b");
	t1 = now_s();
	lines_a = log_count("kind-a", &sup_a);
	lines_b = log_count("kind-b", &sup_b);
	/* One line per second at most, plus the first. */
	assert_true(lines_a >= 1 && lines_a <= 1 + (int)(t1 - t0));
	assert_int_equal((unsigned long)lines_a + sup_a + a.suppressed, 5000);
	assert_int_equal(lines_b, 1); /* another kind is not held back */

	/* After the second, the next line carries the count. */
	a.next_ns = 0;
	log_ratelimited(&a, LOG_LVL_WARN, "kind-a last");
	lines_a = log_count("kind-a", &sup_a);
	assert_int_equal((unsigned long)lines_a + sup_a, 5001);
	assert_int_equal(a.suppressed, 0);
	/* Below the threshold: nothing, not even counted. */
	log_ratelimited(&b, LOG_LVL_DEBUG, "kind-b debug");
	assert_int_equal(log_count("kind-b debug", &sup_b), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_ratelimited_counts_everything),
	};
	int fd = mkstemp(path), rc;

	if (fd < 0)
		return 1;
	close(fd);
	if (log_open(path, "info", "off") < 0)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_close();
	unlink(path);
	return rc;
}

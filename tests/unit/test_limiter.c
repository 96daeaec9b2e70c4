// SPDX-License-Identifier: MIT
/*
 * The token-bucket math of include/mtlsgw_limiter.h, the code the BPF
 * programs and the userspace fallback both run: buckets start full,
 * refill exactly at the rate, never exceed the burst, report the right
 * wait, survive extreme values, and the bandwidth meter holds a sender to
 * its rate over time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <linux/bpf.h>

#include "mtlsgw_abi.h"
#include "mtlsgw_limiter.h"

#define SEC_NS 1000000000ULL
#define T0     (1000 * SEC_NS) /* any start time but 0 */

static void test_limiter_starts_full_then_refuses(void **state)
{
	struct mtlsgw_bucket b = {0};
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		assert_int_equal(limiter_take(&b, 1, 5, 1, T0), 1);
	assert_int_equal(limiter_take(&b, 1, 5, 1, T0), 0);
	/* A refusal takes nothing. */
	assert_int_equal(b.credit, 0);
}

static void test_limiter_refills_at_rate(void **state)
{
	struct mtlsgw_bucket b = {0};
	int i;

	(void)state;
	for (i = 0; i < 10; i++)
		assert_int_equal(limiter_take(&b, 10, 10, 1, T0), 1);
	/* 10/s: one token every 100 ms, not a nanosecond earlier. */
	assert_int_equal(limiter_take(&b, 10, 10, 1, T0 + SEC_NS / 10 - 1), 0);
	assert_int_equal(limiter_take(&b, 10, 10, 1, T0 + SEC_NS / 10), 1);
	assert_int_equal(limiter_take(&b, 10, 10, 1, T0 + SEC_NS / 10), 0);
	/* A long pause refills to the burst and no further. */
	for (i = 0; i < 10; i++)
		assert_int_equal(
			limiter_take(&b, 10, 10, 1, T0 + 3600 * SEC_NS), 1);
	assert_int_equal(limiter_take(&b, 10, 10, 1, T0 + 3600 * SEC_NS), 0);
}

static void test_limiter_unlimited_and_default_burst(void **state)
{
	struct mtlsgw_bucket b = {0};
	int i;

	(void)state;
	for (i = 0; i < 100000; i++)
		assert_int_equal(limiter_take(&b, 0, 0, 1, T0), 1);
	assert_int_equal(b.last_ns, 0); /* never touched */
	assert_int_equal(limiter_wait_ns(&b, 0, 0, 1, T0), 0);
	/* Burst 0 means one second's worth of the rate. */
	assert_int_equal(limiter_burst(50, 0), 50);
	assert_int_equal(limiter_burst(50, 7), 7);
	for (i = 0; i < 50; i++)
		assert_int_equal(limiter_take(&b, 50, 0, 1, T0), 1);
	assert_int_equal(limiter_take(&b, 50, 0, 1, T0), 0);
}

static void test_limiter_wait(void **state)
{
	struct mtlsgw_bucket b = {0}, copy;
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		assert_int_equal(limiter_take(&b, 50, 3, 1, T0), 1);
	copy = b;
	/* 50/s: the next token in exactly 20 ms; asking changes nothing. */
	assert_int_equal(limiter_wait_ns(&b, 50, 3, 1, T0), 20000000);
	assert_memory_equal(&b, &copy, sizeof(b));
	assert_int_equal(limiter_wait_ns(&b, 50, 3, 1, T0 + 5000000), 15000000);
	assert_int_equal(limiter_wait_ns(&b, 50, 3, 1, T0 + 20000000), 0);
	assert_int_equal(limiter_wait_ns(&b, 50, 3, 2, T0), 40000000);
	/* More than the burst never fits. */
	assert_int_equal(limiter_take(&b, 50, 3, 4, T0 + 3600 * SEC_NS), 0);
	assert_true(limiter_wait_ns(&b, 50, 3, 4, T0) == ~0ULL);
	/* 3/s: 1/3 s is not a whole number of ns; the wait rounds up. */
	memset(&b, 0, sizeof(b));
	assert_int_equal(limiter_take(&b, 3, 1, 1, T0), 1);
	assert_int_equal(limiter_wait_ns(&b, 3, 1, 1, T0), 333333334);
	assert_int_equal(limiter_take(&b, 3, 1, 1, T0 + 333333333), 0);
	assert_int_equal(limiter_take(&b, 3, 1, 1, T0 + 333333334), 1);
}

static void test_limiter_lowered_burst_and_clock(void **state)
{
	struct mtlsgw_bucket b = {0};

	(void)state;
	assert_int_equal(limiter_take(&b, 100, 100, 1, T0), 1);
	/* An operator lowers the burst to 2: at most 2 pass at once. */
	assert_int_equal(limiter_take(&b, 100, 2, 1, T0), 1);
	assert_int_equal(limiter_take(&b, 100, 2, 1, T0), 1);
	assert_int_equal(limiter_take(&b, 100, 2, 1, T0), 0);
	/* A reading older than the last one (another CPU) earns nothing. */
	assert_int_equal(limiter_take(&b, 100, 2, 1, T0 - SEC_NS), 0);
	assert_int_equal(b.last_ns, T0);
}

static void test_limiter_extremes(void **state)
{
	struct mtlsgw_bucket b = {0};
	uint64_t big = UINT64_MAX / 2;

	(void)state;
	/* Huge bursts are clamped so the credit cannot overflow. */
	assert_int_equal(limiter_burst(big, big), MTLSGW_LIMITER_MAX_BURST);
	assert_int_equal(
		limiter_take(&b, big, big, MTLSGW_LIMITER_MAX_BURST, T0), 1);
	assert_int_equal(limiter_take(&b, big, big, 1, T0), 0);
	assert_int_equal(limiter_take(&b, big, big, 1, T0 + 1), 1);
	/* A year idle at the largest rate: full, not wrapped negative. */
	assert_int_equal(limiter_take(&b, big, big, MTLSGW_LIMITER_MAX_BURST,
				      T0 + 365 * 86400 * SEC_NS),
			 1);
	assert_true(b.credit >= 0);
	/* 1 per day. */
	memset(&b, 0, sizeof(b));
	assert_int_equal(limiter_take(&b, 1, 1, 1, T0), 1);
	assert_int_equal(limiter_take(&b, 1, 1, 1, T0 + 86399 * SEC_NS), 1);
}

static void test_limiter_meter_levels(void **state)
{
	const uint64_t rate = 1000000; /* 1 MB/s: burst 256 KiB */
	const uint64_t burst = limiter_bw_burst(rate);
	struct mtlsgw_bucket b = {0};
	uint64_t sent = 0;
	int v, marks = 0;

	(void)state;
	assert_int_equal(burst, MTLSGW_BW_MIN_BURST);
	assert_int_equal(limiter_bw_burst(100000000), 25000000);
	assert_int_equal(limiter_meter(&b, 0, 1 << 20, T0), MTLSGW_METER_PASS);
	/* The burst passes clean, then marked packets up to half a burst of
	 * debt, then drops; a dropped packet is not charged. */
	while ((v = limiter_meter(&b, rate, 1000, T0)) == MTLSGW_METER_PASS)
		sent += 1000;
	assert_true(sent >= burst && sent < burst + 1000);
	while (v == MTLSGW_METER_MARK) {
		marks++;
		v = limiter_meter(&b, rate, 1000, T0);
	}
	assert_int_equal(v, MTLSGW_METER_DROP);
	assert_true(marks >= (int)(burst / 2 / 1000) - 1);
	assert_int_equal(limiter_meter(&b, rate, 1000, T0), MTLSGW_METER_DROP);
	/* A big GSO packet passes once the credit is positive again. */
	assert_int_equal(limiter_meter(&b, rate, 65536, T0 + SEC_NS),
			 MTLSGW_METER_PASS);
}

/* A greedy sender offering 64 KiB packets every 100 us for 20 s is held
 * to the rate: what passes is at most burst + debt + rate * time, and
 * not much less than rate * time. */
static void test_limiter_meter_long_run(void **state)
{
	const uint64_t rate = 1000000;
	struct mtlsgw_bucket b = {0};
	uint64_t t, passed = 0;
	double avg;

	(void)state;
	for (t = 0; t < 20 * SEC_NS; t += 100000) {
		if (limiter_meter(&b, rate, 65536, T0 + t) != MTLSGW_METER_DROP)
			passed += 65536;
	}
	avg = (double)passed / 20.0;
	assert_true(passed <=
		    limiter_bw_burst(rate) * 3 / 2 + 65536 + rate * 20);
	assert_true(avg > 0.95 * (double)rate);
	assert_true(avg < 1.05 * (double)rate);
}

/* Whatever the timing, takes never exceed burst + rate * elapsed. */
static void test_limiter_conservation(void **state)
{
	struct mtlsgw_bucket b = {0};
	uint64_t t = T0, taken = 0, seed = 12345;
	int i;

	(void)state;
	for (i = 0; i < 200000; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		t += (seed >> 33) % 3000000; /* 0..3 ms */
		taken += (uint64_t)limiter_take(&b, 200, 20, 1, t);
	}
	assert_true(taken <= 20 + 200 * (t - T0) / SEC_NS + 1);
	assert_true(taken >= 200 * (t - T0) / SEC_NS * 99 / 100);
}

/* GC may drop a state only when a fresh one would give nothing more:
 * no open connection, idle long enough, every bucket full again. */
static void test_limiter_state_idle(void **state)
{
	struct mtlsgw_limit lim = {
		.conn_rate = 1, .conn_burst = 10, .bandwidth_out = 1000000};
	struct mtlsgw_state s;
	uint64_t idle = 10 * SEC_NS;
	int i;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(limiter_state_idle(&s, &lim, T0, idle), 1);
	assert_int_equal(limiter_state_idle(&s, NULL, T0, idle), 1);
	s.active = 1;
	assert_int_equal(limiter_state_idle(&s, NULL, T0 + 3600 * SEC_NS, 0),
			 0);
	s.active = 0;

	/* Ten connections at once: 10 s to refill at 1/s. */
	for (i = 0; i < 10; i++)
		assert_int_equal(limiter_take(&s.conn, 1, 10, 1, T0), 1);
	assert_int_equal(limiter_state_idle(&s, &lim, T0 + idle - 1, idle), 0);
	assert_int_equal(limiter_state_idle(&s, &lim, T0 + idle, idle), 1);
	/* Idle long enough but not full: a burst of 100 needs 100 s. */
	lim.conn_burst = 100;
	memset(&s.conn, 0, sizeof(s.conn));
	for (i = 0; i < 100; i++)
		assert_int_equal(limiter_take(&s.conn, 1, 100, 1, T0), 1);
	assert_int_equal(limiter_state_idle(&s, &lim, T0 + idle, idle), 0);
	assert_int_equal(limiter_state_idle(&s, &lim, T0 + 100 * SEC_NS, idle),
			 1);
	/* A clock reading from another CPU ahead of ours: not idle. */
	assert_int_equal(limiter_state_idle(&s, &lim, T0 - 1, 0), 0);

	/* Bandwidth debt counts too. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(limiter_meter(&s.bw_out, 1000000, 400000, T0),
			 MTLSGW_METER_PASS);
	assert_int_equal(limiter_state_idle(&s, &lim, T0, 0), 0);
	assert_int_equal(limiter_state_idle(&s, &lim, T0 + SEC_NS, 0), 1);
	assert_int_equal(sizeof(struct mtlsgw_state), 152);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limiter_starts_full_then_refuses),
		cmocka_unit_test(test_limiter_refills_at_rate),
		cmocka_unit_test(test_limiter_unlimited_and_default_burst),
		cmocka_unit_test(test_limiter_wait),
		cmocka_unit_test(test_limiter_lowered_burst_and_clock),
		cmocka_unit_test(test_limiter_extremes),
		cmocka_unit_test(test_limiter_meter_levels),
		cmocka_unit_test(test_limiter_meter_long_run),
		cmocka_unit_test(test_limiter_conservation),
		cmocka_unit_test(test_limiter_state_idle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

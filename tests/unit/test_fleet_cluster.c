// SPDX-License-Identifier: MIT
/*
 * daemon/fleet_cluster.c without a server: the key slot of the Redis
 * Cluster spec (CRC16, hash tag rules), CLUSTER SLOTS replies built by
 * hand (good ones, and malformed ones that must be refused, never
 * crash), and MOVED / ASK errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/fleet_cluster.h"

static unsigned slot(const char *k)
{
	return fleet_cluster_keyslot(k, strlen(k));
}

static void test_keyslot(void **state)
{
	(void)state;
	/* CRC16/XMODEM check value of "123456789" is 0x31c3. */
	assert_int_equal(slot("123456789"), 0x31c3);
	assert_int_equal(slot("foo"), 12182);
	assert_int_equal(slot("bar"), 5061);
	assert_int_equal(slot("{user1000}.following"), slot("user1000"));
	assert_int_equal(slot("a{user1000}:win"), slot("b{user1000}:hosts"));
	assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
	assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
	/* "{}" is no tag: the whole key counts. */
	assert_int_equal(slot("foo{}{bar}"),
			 fleet_cluster_keyslot("foo{}{bar}", 10));
	assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
	assert_int_equal(slot("foo{bar"), fleet_cluster_keyslot("foo{bar", 7));
	assert_int_equal(slot(""), 0);
}

static redisReply *mk_int(long long v)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = REDIS_REPLY_INTEGER;
	r->integer = v;
	return r;
}

static redisReply *mk_str(int type, const char *s)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = type;
	r->str = strdup(s);
	r->len = strlen(s);
	return r;
}

/* An array of N replies (NULL-terminated arguments). */
static redisReply *mk_arr(size_t n, ...)
{
	redisReply *r = calloc(1, sizeof(*r));
	va_list ap;
	size_t i;

	r->type = REDIS_REPLY_ARRAY;
	r->elements = n;
	r->element = calloc(n ? n : 1, sizeof(*r->element));
	va_start(ap, n);
	for (i = 0; i < n; i++)
		r->element[i] = va_arg(ap, redisReply *);
	va_end(ap);
	return r;
}

static void rfree(redisReply *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->elements; i++)
		rfree(r->element[i]);
	free(r->element);
	free(r->str);
	free(r);
}

static redisReply *entry(long long a, long long b, const char *ip, long long p)
{
	return mk_arr(3, mk_int(a), mk_int(b),
		      mk_arr(3, mk_str(REDIS_REPLY_STRING, ip), mk_int(p),
			     mk_str(REDIS_REPLY_STRING, "id")));
}

static void test_parse_good(void **state)
{
	struct fleet_cluster_map m;
	char err[256];
	redisReply *r = mk_arr(3, entry(0, 5460, "127.0.0.1", 7000),
			       entry(5461, 10922, "", 7001),
			       entry(10923, 16383, "::1", 7002));

	(void)state;
	assert_int_equal(fleet_cluster_parse_slots(r, "10.0.0.9:7001", &m, err,
						   sizeof(err)),
			 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.addr[m.slot[0]], "127.0.0.1:7000");
	assert_string_equal(m.addr[m.slot[5460]], "127.0.0.1:7000");
	/* "": the node that answered */
	assert_string_equal(m.addr[m.slot[5461]], "10.0.0.9:7001");
	assert_string_equal(m.addr[m.slot[16383]], "[::1]:7002");
	fleet_cluster_map_clear(&m);
	rfree(r);

	/* A primary listed twice is one node; unlisted slots have none. */
	r = mk_arr(2, entry(0, 0, "127.0.0.1", 7000),
		   entry(9, 9, "127.0.0.1", 7000));
	assert_int_equal(
		fleet_cluster_parse_slots(r, "x:1", &m, err, sizeof(err)), 0);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.slot[9], 0);
	assert_int_equal(m.slot[5], FLEET_CLUSTER_NONE);
	fleet_cluster_map_clear(&m);
	rfree(r);
}

static void expect_bad(redisReply *r)
{
	struct fleet_cluster_map m;
	char err[256] = "";

	assert_int_equal(
		fleet_cluster_parse_slots(r, "h:1", &m, err, sizeof(err)), -1);
	assert_true(err[0] != 0);
	assert_null(m.addr);
	rfree(r);
}

static void test_parse_malformed(void **state)
{
	(void)state;
	expect_bad(NULL);
	expect_bad(mk_str(REDIS_REPLY_ERROR, "ERR This instance has cluster "
					     "support disabled"));
	expect_bad(mk_arr(0));
	expect_bad(mk_int(3));
	expect_bad(mk_arr(1, mk_int(1)));
	expect_bad(mk_arr(1, mk_arr(2, mk_int(0), mk_int(1))));
	expect_bad(mk_arr(1, entry(5, 4, "a", 1)));	/* start > end */
	expect_bad(mk_arr(1, entry(-1, 4, "a", 1)));	/* negative */
	expect_bad(mk_arr(1, entry(0, 16384, "a", 1))); /* past the last */
	expect_bad(mk_arr(1, entry(0, 1, "a", 0)));	/* port */
	expect_bad(mk_arr(1, entry(0, 1, "a", 65536)));
	expect_bad(mk_arr(1, entry(0, 1, "?", 7000))); /* unknown endpoint */
	expect_bad(mk_arr(
		1, mk_arr(3, mk_int(0), mk_int(1), mk_int(7)))); /* primary */
	expect_bad(mk_arr(
		1, mk_arr(3, mk_int(0), mk_int(1), mk_arr(1, mk_int(7)))));
	expect_bad(mk_arr(1, mk_arr(3, mk_int(0), mk_int(1),
				    mk_arr(2, mk_int(1), mk_int(7000)))));
	expect_bad(
		mk_arr(1, mk_arr(3, mk_str(REDIS_REPLY_STRING, "0"), mk_int(1),
				 mk_arr(2, mk_str(REDIS_REPLY_STRING, "a"),
					mk_int(7000)))));
	/* One bad entry spoils the reply. */
	expect_bad(mk_arr(2, entry(0, 1, "a", 1), entry(2, 1, "a", 1)));
}

static void test_redirect(void **state)
{
	redisReply *r;
	char addr[FLEET_CLUSTER_ADDR_LEN];
	unsigned s = 0;

	(void)state;
	r = mk_str(REDIS_REPLY_ERROR, "MOVED 3999 127.0.0.1:6381");
	assert_int_equal(fleet_cluster_redirect(r, &s, addr, sizeof(addr)), 1);
	assert_int_equal(s, 3999);
	assert_string_equal(addr, "127.0.0.1:6381");
	rfree(r);
	r = mk_str(REDIS_REPLY_ERROR, "ASK 12 ::1:7000");
	assert_int_equal(fleet_cluster_redirect(r, &s, addr, sizeof(addr)), 2);
	assert_int_equal(s, 12);
	assert_string_equal(addr, "[::1]:7000");
	rfree(r);
	r = mk_str(REDIS_REPLY_ERROR, "MOVED 1 :6379"); /* endpoint unknown */
	assert_int_equal(fleet_cluster_redirect(r, &s, addr, sizeof(addr)), 1);
	assert_string_equal(addr, "?");
	rfree(r);
	{
		static const char *const bad[] = {
			"MOVED",
			"MOVED x 1.2.3.4:5",
			"MOVED 16384 a:1",
			"MOVED 1 a:0",
			"MOVED 1 a:70000",
			"MOVED 1 a",
			"ASK 1 a:1x",
			"TRYAGAIN Multiple keys",
			"NOSCRIPT No matching script",
		};
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			r = mk_str(REDIS_REPLY_ERROR, bad[i]);
			assert_int_equal(fleet_cluster_redirect(r, &s, addr,
								sizeof(addr)),
					 0);
			rfree(r);
		}
	}
	r = mk_str(REDIS_REPLY_STRING, "MOVED 1 a:1"); /* not an error */
	assert_int_equal(fleet_cluster_redirect(r, &s, addr, sizeof(addr)), 0);
	rfree(r);
	assert_int_equal(fleet_cluster_redirect(NULL, &s, addr, sizeof(addr)),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyslot),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_redirect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

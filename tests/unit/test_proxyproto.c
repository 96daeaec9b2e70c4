// SPDX-License-Identifier: MIT
/* PROXY protocol v1/v2 header parsing: addresses, lengths, partial input,
 * and every malformed form refused. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/config.h"
#include "daemon/proxyproto.h"

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static enum proxyproto_result parse(const void *buf, size_t len, size_t *used,
				    struct sockaddr_storage *ss, socklen_t *sl)
{
	const char *why = NULL;
	enum proxyproto_result r =
		proxyproto_parse(buf, len, used, ss, sl, &why);

	if (r == PROXYPROTO_INVALID)
		assert_non_null(why);
	return r;
}

static void test_v1_tcp4(void **state)
{
	const char *h = "PROXY TCP4 192.0.2.1 192.0.2.2 5000 443\r\nTLSDATA";
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	socklen_t sl = 0;
	size_t used = 0;
	char ip[32];

	(void)state;
	assert_int_equal(parse(h, strlen(h), &used, &ss, &sl), PROXYPROTO_DONE);
	assert_int_equal(used, strlen(h) - strlen("TLSDATA"));
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 5000);
	inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
	assert_string_equal(ip, "192.0.2.1");
	assert_int_equal(sl, sizeof(struct sockaddr_in));
}

static void test_v1_tcp6_and_unknown(void **state)
{
	const char *h6 = "PROXY TCP6 2001:db8::1 ::1 65535 443\r\n";
	const char *hu = "PROXY UNKNOWN ffff::1 ::1 1 2\r\n";
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl = 0;
	size_t used = 0;

	(void)state;
	assert_int_equal(parse(h6, strlen(h6), &used, &ss, &sl),
			 PROXYPROTO_DONE);
	assert_int_equal(in6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(in6->sin6_port), 65535);
	memset(&ss, 0x5a, sizeof(ss));
	sl = 7;
	assert_int_equal(parse(hu, strlen(hu), &used, &ss, &sl),
			 PROXYPROTO_DONE);
	assert_int_equal(used, strlen(hu));
	assert_int_equal(sl, 7); /* untouched: keep the socket's address */
}

static void test_v1_partial_and_bad(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"GET / HTTP/1.1\r\n",
		"\x16\x03\x01\x02\x00",
	};
	char longline[200];
	struct sockaddr_storage ss;
	socklen_t sl;
	size_t used, i;

	(void)state;
	assert_int_equal(parse("PROX", 4, &used, &ss, &sl), PROXYPROTO_MORE);
	assert_int_equal(parse("PROXY TCP4 1.2", 14, &used, &ss, &sl),
			 PROXYPROTO_MORE);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], strlen(bad[i]), &used, &ss, &sl),
				 PROXYPROTO_INVALID);
	memset(longline, 'A', sizeof(longline));
	memcpy(longline, "PROXY ", 6);
	assert_int_equal(parse(longline, sizeof(longline), &used, &ss, &sl),
			 PROXYPROTO_INVALID);
}

static void test_v2(void **state)
{
	unsigned char b[64];
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	socklen_t sl = 0;
	size_t used = 0;

	(void)state;
	memcpy(b, v2sig, 12);
	b[12] = 0x21; /* v2, PROXY */
	b[13] = 0x11; /* TCP over IPv4 */
	b[14] = 0;
	b[15] = 12 + 3; /* addresses + a 3-byte TLV */
	memcpy(b + 16, "\xc6\x33\x64\x09", 4);
	memcpy(b + 20, "\x7f\x00\x00\x01", 4);
	b[24] = 0x17;
	b[25] = 0x70; /* 6000 */
	b[26] = 0x01;
	b[27] = 0xbb;
	memcpy(b + 28, "\x04\x00\x00", 3);
	assert_int_equal(parse(b, 20, &used, &ss, &sl), PROXYPROTO_MORE);
	assert_int_equal(parse(b, 31, &used, &ss, &sl), PROXYPROTO_DONE);
	assert_int_equal(used, 31);
	assert_int_equal(ntohs(in->sin_port), 6000);
	assert_int_equal(ntohl(in->sin_addr.s_addr), 0xc6336409);

	b[15] = 4; /* too short for IPv4 addresses */
	assert_int_equal(parse(b, 20, &used, &ss, &sl), PROXYPROTO_INVALID);
	b[12] = 0x20; /* LOCAL */
	b[13] = 0x00;
	b[15] = 0;
	sl = 9;
	assert_int_equal(parse(b, 16, &used, &ss, &sl), PROXYPROTO_DONE);
	assert_int_equal(used, 16);
	assert_int_equal(sl, 9);
	b[12] = 0x31; /* version 3 */
	assert_int_equal(parse(b, 16, &used, &ss, &sl), PROXYPROTO_INVALID);
	b[12] = 0x2f; /* unknown command */
	assert_int_equal(parse(b, 16, &used, &ss, &sl), PROXYPROTO_INVALID);
}

static bool allowed(const struct config_cidr *nets, size_t n, const char *ip)
{
	struct sockaddr_storage ss = {0};

	if (strchr(ip, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
	}
	return proxyproto_source_allowed(nets, n, (struct sockaddr *)&ss);
}

static void test_source_allowed(void **state)
{
	struct config_cidr nets[4] = {
		{.family = AF_INET, .addr = {127, 0, 0, 1}, .prefix = 32},
		{.family = AF_INET, .addr = {10, 64}, .prefix = 10},
		{.family = AF_INET6,
		 .addr = {0x20, 0x01, 0x0d, 0xb8},
		 .prefix = 32},
		{.family = AF_INET6, .addr = {[15] = 1}, .prefix = 128},
	};

	(void)state;
	assert_true(allowed(nets, 0, "203.0.113.1")); /* none set: anyone */
	assert_true(allowed(nets, 4, "127.0.0.1"));
	assert_false(allowed(nets, 4, "127.0.0.2"));
	assert_true(allowed(nets, 4, "10.64.0.1"));
	assert_true(allowed(nets, 4, "10.127.255.255"));
	assert_false(allowed(nets, 4, "10.128.0.0"));
	assert_false(allowed(nets, 4, "10.63.255.255"));
	assert_true(allowed(nets, 4, "2001:db8:ffff::1"));
	assert_false(allowed(nets, 4, "2001:db9::1"));
	assert_true(allowed(nets, 4, "::1"));
	assert_false(allowed(nets, 4, "::2"));
	assert_true(allowed(nets, 4, "::ffff:10.100.0.1")); /* v4-mapped */
	assert_false(allowed(nets, 4, "::ffff:11.0.0.1"));
	/* An IPv6 address never matches an IPv4 network of the same bytes. */
	assert_false(allowed(nets, 1, "7f00:1::"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6_and_unknown),
		cmocka_unit_test(test_v1_partial_and_bad),
		cmocka_unit_test(test_v2),
		cmocka_unit_test(test_source_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

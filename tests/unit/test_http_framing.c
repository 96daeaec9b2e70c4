// SPDX-License-Identifier: MIT
/* Strict HTTP/1.1 framing: every rule of http_framing_check with the
 * status and note it gives, sound requests accepted, and the MHD 0.9.75
 * layout glue finding an obs-fold and a NUL hidden in a value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "daemon/http_framing.h"

#define F(n, v)                                                                \
	{                                                                      \
		n, sizeof(n) - 1, v, sizeof(v) - 1, false                      \
	}

static unsigned check(const char *method, const char *version,
		      const struct http_framing_field *f, size_t n,
		      const char **note)
{
	struct http_framing_req r = {.method = method,
				     .target = "/x",
				     .version = version,
				     .fields = f,
				     .n_fields = n};
	unsigned status = http_framing_check(&r, note);

	if (status)
		assert_non_null(*note);
	else
		assert_null(*note);
	return status;
}

static void expect(unsigned want, const char *want_note, const char *method,
		   const char *version, const struct http_framing_field *f,
		   size_t n)
{
	const char *note;

	assert_int_equal(check(method, version, f, n, &note), want);
	if (want_note)
		assert_string_equal(note, want_note);
}

static void test_sound_requests(void **state)
{
	const struct http_framing_field get[] = {F("Host", "a"),
						 F("Accept", "*/*")};
	const struct http_framing_field post[] = {
		F("Host", "a"), F("content-length", "5"), F("X", "tab\tok")};
	const struct http_framing_field chunked[] = {
		F("Host", "a"), F("Transfer-Encoding", "Chunked")};

	(void)state;
	expect(0, NULL, "GET", "HTTP/1.1", get, 2);
	expect(0, NULL, "POST", "HTTP/1.1", post, 3);
	expect(0, NULL, "PATCH", "HTTP/1.1", chunked, 2);
	/* HTTP/1.0 needs no Host */
	expect(0, NULL, "GET", "HTTP/1.0", NULL, 0);
}

static void test_names_and_values(void **state)
{
	const struct http_framing_field ws[] = {
		F("Host", "a"), F("Transfer-Encoding ", "chunked")};
	const struct http_framing_field empty[] = {F("Host", "a"), F("", "v")};
	const struct http_framing_field cr[] = {F("Host", "a"), F("X", "a\rb")};
	const struct http_framing_field nul[] = {F("Host", "a\0b")};
	const struct http_framing_field del[] = {F("Host", "a\x7f")};
	struct http_framing_field fold[] = {F("Host", "a"), F("X-Folded", "b")};

	(void)state;
	expect(400, "header name not a token", "GET", "HTTP/1.1", ws, 2);
	expect(400, "header name not a token", "GET", "HTTP/1.1", empty, 2);
	expect(400, "control character in header value", "GET", "HTTP/1.1", cr,
	       2);
	expect(400, "control character in header value", "GET", "HTTP/1.1", nul,
	       1);
	expect(400, "control character in header value", "GET", "HTTP/1.1", del,
	       1);
	fold[1].folded = true;
	expect(400, "obs-fold", "GET", "HTTP/1.1", fold, 2);
}

static void test_request_line(void **state)
{
	const struct http_framing_field host[] = {F("Host", "a")};
	struct http_framing_req r = {.method = "GET",
				     .target = "/a b",
				     .version = "HTTP/1.1",
				     .fields = host,
				     .n_fields = 1};
	const char *note;

	(void)state;
	expect(400, "method not a token", "G\x01T", "HTTP/1.1", host, 1);
	expect(400, "method not a token", "GE@T", "HTTP/1.1", host, 1);
	expect(400, "method not a token", "", "HTTP/1.1", host, 1);
	assert_int_equal(http_framing_check(&r, &note), 400);
	assert_string_equal(note, "space or control character in target");
	r.target = "/a\tb";
	assert_int_equal(http_framing_check(&r, &note), 400);
	r.target = "/a?b=%20";
	assert_int_equal(http_framing_check(&r, &note), 0);
}

static void test_host(void **state)
{
	const struct http_framing_field two[] = {F("Host", "a"),
						 F("host", "b")};
	const struct http_framing_field none[] = {F("Accept", "*/*")};

	(void)state;
	expect(400, "duplicate host", "GET", "HTTP/1.1", two, 2);
	expect(400, "duplicate host", "GET", "HTTP/1.0", two, 2);
	expect(400, "missing host", "GET", "HTTP/1.1", none, 1);
}

static void test_lengths_and_codings(void **state)
{
	const struct http_framing_field two_cl[] = {F("Host", "a"),
						    F("Content-Length", "5"),
						    F("Content-Length", "5")};
	const struct http_framing_field bad_cl[] = {
		F("Host", "a"), F("Content-Length", "5, 5")};
	const struct http_framing_field huge_cl[] = {
		F("Host", "a"), F("Content-Length", "99999999999999999999")};
	const struct http_framing_field cl_te[] = {
		F("Host", "a"), F("Transfer-Encoding", "chunked"),
		F("Content-Length", "5")};
	const struct http_framing_field xchunked[] = {
		F("Host", "a"), F("Transfer-Encoding", "xchunked")};
	const struct http_framing_field stacked[] = {
		F("Host", "a"), F("Transfer-Encoding", "chunked, identity")};
	const struct http_framing_field two_te[] = {
		F("Host", "a"), F("Transfer-Encoding", "gzip"),
		F("Transfer-Encoding", "chunked")};

	(void)state;
	expect(400, "duplicate content-length", "POST", "HTTP/1.1", two_cl, 3);
	expect(400, "bad content-length", "POST", "HTTP/1.1", bad_cl, 2);
	expect(400, "bad content-length", "POST", "HTTP/1.1", huge_cl, 2);
	expect(400, "content-length with transfer-encoding", "POST", "HTTP/1.1",
	       cl_te, 3);
	expect(501, "transfer coding not supported", "POST", "HTTP/1.1",
	       xchunked, 2);
	expect(501, "transfer coding not supported", "POST", "HTTP/1.1",
	       stacked, 2);
	expect(501, "transfer coding not supported", "POST", "HTTP/1.1", two_te,
	       3);
	expect(400, "transfer-encoding in HTTP/1.0", "POST", "HTTP/1.0",
	       xchunked, 2);
}

static void test_tokens(void **state)
{
	(void)state;
	assert_true(http_framing_is_token("X-Forwarded-For", 15));
	assert_true(http_framing_is_token("!#$%&'*+-.^_`|~09azAZ", 21));
	assert_false(http_framing_is_token("", 0));
	assert_false(http_framing_is_token("a b", 3));
	assert_false(http_framing_is_token("a:b", 3));
	assert_false(http_framing_is_token("a\0b", 3));
	assert_false(http_framing_is_token("\xc3\xa9", 2));
}

/* A header block as MHD 0.9.75 leaves it after parsing in place. */
static void test_layout(void **state)
{
	/* "GET / HTTP/1.1\r\nHost: a\r\nX: v\0w\r\nY:\tz\r\n\r\n" */
	static char blk[] = "GET\0/\0HTTP/1.1\0\0Host\0 a\0\0X\0 v\0w\0\0"
			    "Y\0\tz\0\0\0";
	size_t size = sizeof(blk) - 1;
	char *host = blk + 16, *x = host + 9, *y = x + 8;
	struct http_framing_field f[] = {
		{host, 4, host + 6, 1, false},
		{x, 1, x + 3, 1, false}, /* MHD measured "v" */
		{y, 1, y + 3, 1, false},
	};
	struct http_framing_field g[3];
	static char folded_name[] = "Xcontinued";

	(void)state;
	assert_memory_equal(host, "Host", 4);
	assert_memory_equal(y, "Y", 1);
	memcpy(g, f, sizeof(f));
	http_framing_layout(f, 3, blk, size);
	assert_false(f[0].folded || f[1].folded || f[2].folded);
	assert_int_equal(f[0].value_len, 1);
	assert_int_equal(f[1].value_len, 3); /* "v\0w" */
	assert_int_equal(f[2].value_len, 1);
	/* The name was moved elsewhere by the fold. */
	g[1].name = folded_name;
	g[1].name_len = strlen(folded_name);
	http_framing_layout(g, 3, blk, size);
	assert_true(g[1].folded);
	assert_int_equal(g[0].value_len, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sound_requests),
		cmocka_unit_test(test_names_and_values),
		cmocka_unit_test(test_request_line),
		cmocka_unit_test(test_host),
		cmocka_unit_test(test_lengths_and_codings),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

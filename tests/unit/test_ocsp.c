// SPDX-License-Identifier: MIT
/* OCSP responder URLs (url_parse_http): host, [IPv6], port, path, and the
 * forms refused; CRL files (crl_read_file): good, empty, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon/crl.h"
#include "daemon/ocsp.h"

static void test_url_forms(void **state)
{
	struct url_http u;
	const char *why = NULL;

	(void)state;
	assert_int_equal(url_parse_http("http://127.0.0.1:8888/", &u, &why), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "8888");
	assert_string_equal(u.path, "/");
	assert_int_equal(url_parse_http("http://ocsp.example", &u, &why), 0);
	assert_string_equal(u.host, "ocsp.example");
	assert_string_equal(u.port, "80");
	assert_string_equal(u.path, "/");
	assert_int_equal(url_parse_http("http://[::1]:9/a/b", &u, &why), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "9");
	assert_string_equal(u.path, "/a/b");
}

static void test_url_refused(void **state)
{
	static const char *const bad[] = {
		"https://127.0.0.1/", "127.0.0.1:8888", "http://",
		"http://:80/",	      "http://h:0/",	"http://h:65536/",
		"http://h:12a/",      "http://[::1/",	"http://[]:80/",
		"http://h:/",
	};
	struct url_http u;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		if (url_parse_http(bad[i], &u, &why) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(why);
	}
}

static int write_file(char *path, const char *text)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static void test_crl_bad_files(void **state)
{
	static const char *const texts[] = {
		"", "hello\n",
		"-----BEGIN X509 CRL-----\nbm90IGEgY3Js\n-----END X509 "
		"CRL-----\n"};
	STACK_OF(X509_CRL) *list = NULL;
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char path[] = "/tmp/mtlsgw-crl-XXXXXX";

		assert_int_equal(write_file(path, texts[i]), 0);
		why[0] = '\0';
		assert_int_equal(crl_read_file(path, &list, why, sizeof(why)),
				 -1);
		assert_null(list);
		assert_true(why[0] != '\0');
		unlink(path);
	}
	assert_int_equal(
		crl_read_file("/nonexistent/crl.pem", &list, why, sizeof(why)),
		-1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_forms),
		cmocka_unit_test(test_url_refused),
		cmocka_unit_test(test_crl_bad_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

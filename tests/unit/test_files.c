// SPDX-License-Identifier: MIT
/*
 * files.c without a server: the Range parser (every form, the edges, the
 * garbage it must ignore, numbers too long for 64 bits) and the
 * Content-Type table. files_handle itself runs in the integration tests.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "daemon/files.h"

#define IGNORE 0
#define UNSAT  (-1)

struct range_case {
	const char *value;
	unsigned long long size;
	int want;
	unsigned long long first, last; /* when want == 1 */
};

static void check_ranges(const struct range_case *c, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned long long first = 12345, last = 67890;
		int r = files_parse_range(c[i].value, c[i].size, &first, &last);

		if (r != c[i].want ||
		    (r == 1 && (first != c[i].first || last != c[i].last)))
			print_message("range \"%s\" size %llu: %d %llu-%llu\n",
				      c[i].value ? c[i].value : "(null)",
				      c[i].size, r, first, last);
		assert_int_equal(r, c[i].want);
		if (r == 1) {
			assert_int_equal(first, c[i].first);
			assert_int_equal(last, c[i].last);
			assert_true(first <= last);
			assert_true(last < c[i].size);
		}
	}
}

static void test_range_forms(void **state)
{
	static const struct range_case c[] = {
		{"bytes=0-0", 10, 1, 0, 0},
		{"bytes=0-9", 10, 1, 0, 9},
		{"bytes=2-5", 10, 1, 2, 5},
		{"bytes=9-9", 10, 1, 9, 9},
		{"bytes=5-", 10, 1, 5, 9},
		{"bytes=0-", 10, 1, 0, 9},
		{"bytes=9-", 10, 1, 9, 9},
		{"bytes=-3", 10, 1, 7, 9},
		{"bytes=-1", 10, 1, 9, 9},
		{"bytes=-10", 10, 1, 0, 9},
		/* a suffix longer than the file is the whole file */
		{"bytes=-100", 10, 1, 0, 9},
		/* a last position past the end is clamped */
		{"bytes=3-100", 10, 1, 3, 9},
		{"bytes=0-0", 1, 1, 0, 0},
		/* the unit is case-insensitive; blanks around are allowed */
		{"Bytes=1-2", 10, 1, 1, 2},
		{"BYTES=1-2", 10, 1, 1, 2},
		{" bytes = 1-2 ", 10, 1, 1, 2},
		{"bytes=\t-2", 10, 1, 8, 9},
		/* leading zeros are digits like others */
		{"bytes=0002-0004", 10, 1, 2, 4},
		/* beyond 32 bits */
		{"bytes=4294967296-4294967300", 5000000000ULL, 1, 4294967296ULL,
		 4294967300ULL},
		{"bytes=-1", 5000000000ULL, 1, 4999999999ULL, 4999999999ULL},
	};

	(void)state;
	check_ranges(c, sizeof(c) / sizeof(c[0]));
}

static void test_range_unsatisfiable(void **state)
{
	static const struct range_case c[] = {
		/* first position at or past the end */
		{"bytes=10-", 10, UNSAT, 0, 0},
		{"bytes=10-20", 10, UNSAT, 0, 0},
		{"bytes=11-11", 10, UNSAT, 0, 0},
		/* inverted */
		{"bytes=5-3", 10, UNSAT, 0, 0},
		{"bytes=1-0", 10, UNSAT, 0, 0},
		/* an empty suffix */
		{"bytes=-0", 10, UNSAT, 0, 0},
		/* nothing in an empty file can be satisfied */
		{"bytes=0-", 0, UNSAT, 0, 0},
		{"bytes=0-0", 0, UNSAT, 0, 0},
		{"bytes=-5", 0, UNSAT, 0, 0},
	};

	(void)state;
	check_ranges(c, sizeof(c) / sizeof(c[0]));
}

static void test_range_ignored(void **state)
{
	static const struct range_case c[] = {
		{NULL, 10, IGNORE, 0, 0},
		{"", 10, IGNORE, 0, 0},
		{"bytes", 10, IGNORE, 0, 0},
		{"bytes=", 10, IGNORE, 0, 0},
		{"bytes=-", 10, IGNORE, 0, 0},
		{"bytes 0-5", 10, IGNORE, 0, 0},
		{"bytes:0-5", 10, IGNORE, 0, 0},
		{"bytesx=0-5", 10, IGNORE, 0, 0},
		{"items=0-5", 10, IGNORE, 0, 0},
		{"bytes=abc", 10, IGNORE, 0, 0},
		{"bytes=5", 10, IGNORE, 0, 0},
		{"bytes=1-2x", 10, IGNORE, 0, 0},
		{"bytes=1--2", 10, IGNORE, 0, 0},
		{"bytes=-1-2", 10, IGNORE, 0, 0},
		{"bytes=+1-2", 10, IGNORE, 0, 0},
		{"bytes=1-+2", 10, IGNORE, 0, 0},
		{"bytes= -1-", 10, IGNORE, 0, 0},
		{"bytes=0x1-2", 10, IGNORE, 0, 0},
		{"bytes=1 -2", 10, IGNORE, 0, 0},
		{"bytes=1- 2", 10, IGNORE, 0, 0},
		/* several ranges: the whole file (200), never multipart */
		{"bytes=0-1,3-4", 10, IGNORE, 0, 0},
		{"bytes=0-1, 3-4", 10, IGNORE, 0, 0},
		{"bytes=0-1,", 10, IGNORE, 0, 0},
		{"bytes=,0-1", 10, IGNORE, 0, 0},
		/* garbage stays garbage for an empty file too */
		{"bytes=x", 0, IGNORE, 0, 0},
	};

	(void)state;
	check_ranges(c, sizeof(c) / sizeof(c[0]));
}

/* Numbers too long for 64 bits saturate, they never wrap around. */
static void test_range_overflow(void **state)
{
	static const struct range_case c[] = {
		{"bytes=99999999999999999999999-", 10, UNSAT, 0, 0},
		{"bytes=18446744073709551616-", 10, UNSAT, 0, 0},
		/* 2^64 + 1 would wrap to 1 */
		{"bytes=18446744073709551617-", 10, UNSAT, 0, 0},
		{"bytes=0-99999999999999999999999", 10, 1, 0, 9},
		/* 2^64 + 3 as a last position would wrap to 3 */
		{"bytes=0-18446744073709551619", 10, 1, 0, 9},
		{"bytes=-99999999999999999999999", 10, 1, 0, 9},
		/* 2^64 + 2 as a suffix would wrap to 2 */
		{"bytes=-18446744073709551618", 10, 1, 0, 9},
		{"bytes=5-99999999999999999999999", 10, 1, 5, 9},
		{"bytes=99999999999999999999999-99999999999999999999999", 10,
		 UNSAT, 0, 0},
		/* the largest sizes still work */
		{"bytes=18446744073709551613-", ULLONG_MAX, 1, ULLONG_MAX - 2,
		 ULLONG_MAX - 1},
		{"bytes=18446744073709551614-", ULLONG_MAX, 1, ULLONG_MAX - 1,
		 ULLONG_MAX - 1},
		{"bytes=18446744073709551615-", ULLONG_MAX, UNSAT, 0, 0},
		{"bytes=-2", ULLONG_MAX, 1, ULLONG_MAX - 2, ULLONG_MAX - 1},
	};

	(void)state;
	check_ranges(c, sizeof(c) / sizeof(c[0]));
}

static void test_mime_types(void **state)
{
	static const struct {
		const char *name;
		const char *type;
	} c[] = {
		{"index.html", "text/html; charset=utf-8"},
		{"INDEX.HTML", "text/html; charset=utf-8"},
		{"page.htm", "text/html; charset=utf-8"},
		{"style.css", "text/css; charset=utf-8"},
		{"app.js", "text/javascript; charset=utf-8"},
		{"mod.mjs", "text/javascript; charset=utf-8"},
		{"data.json", "application/json"},
		{"notes.txt", "text/plain; charset=utf-8"},
		{"feed.xml", "text/xml; charset=utf-8"},
		{"logo.svg", "image/svg+xml"},
		{"a.png", "image/png"},
		{"a.jpg", "image/jpeg"},
		{"a.JPEG", "image/jpeg"},
		{"a.gif", "image/gif"},
		{"a.webp", "image/webp"},
		{"favicon.ico", "image/x-icon"},
		{"doc.pdf", "application/pdf"},
		{"m.wasm", "application/wasm"},
		{"f.woff", "font/woff"},
		{"f.woff2", "font/woff2"},
		{"v.mp4", "video/mp4"},
		{"a.tar.gz", "application/gzip"},
		{"a.zip", "application/zip"},
		{"a.tar", "application/x-tar"},
		{"blob.bin", "application/octet-stream"},
		{"/var/www/sub/page.css", "text/css; charset=utf-8"},
		{"protected/secret.html", "text/html; charset=utf-8"},
		/* no or unknown extension */
		{"README", "application/octet-stream"},
		{".htaccess", "application/octet-stream"},
		{"dir/.html", "application/octet-stream"},
		{"trailing.", "application/octet-stream"},
		{"a.html.bak", "application/octet-stream"},
		{"a.unknown", "application/octet-stream"},
		{"dir.html/file", "application/octet-stream"},
		{"", "application/octet-stream"},
		{NULL, "application/octet-stream"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		assert_string_equal(files_mime_type(c[i].name), c[i].type);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_forms),
		cmocka_unit_test(test_range_unsatisfiable),
		cmocka_unit_test(test_range_ignored),
		cmocka_unit_test(test_range_overflow),
		cmocka_unit_test(test_mime_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

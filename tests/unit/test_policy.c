// SPDX-License-Identifier: MIT
/*
 * policy.c: request path normalisation (traversal attempts in every
 * spelling are refused), longest-prefix location matching on segment
 * boundaries, and the certificate policy matrix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/policy.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define FP1 "1111111111111111111111111111111111111111111111111111111111111111"
#define FP2 "2222222222222222222222222222222222222222222222222222222222222222"

/* ---- path_normalise */

static void test_path_accepted(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"/", "/"},
		{"//", "/"},
		{"/./", "/"},
		{"/.", "/"},
		{"/index.html", "/index.html"},
		{"/protected/", "/protected/"},
		{"/protected", "/protected"},
		{"//a///b/./c/", "/a/b/c/"},
		{"/a/.", "/a/"},
		{"/a/./", "/a/"},
		{"/./a", "/a"},
		{"/a/./b", "/a/b"},
		{"/a/%2e/b", "/a/b"},  /* an encoded "." is still "." */
		{"/a?x=../../", "/a"}, /* the query is not part of the path */
		{"/a/?%2e%2e", "/a/"},
		{"/a#../../etc", "/a"},
		{"/?", "/"},
		{"/%7Euser/a%20b", "/~user/a b"},
		{"/caf%C3%A9", "/caf\xc3\xa9"},
		{"/a/.../b", "/a/.../b"}, /* three dots is a name */
		{"/a/..b/c..", "/a/..b/c.."},
		{"/a/%2e%2e%2e", "/a/..."},
		{"/%41%62", "/Ab"},
		{"/a+b", "/a+b"}, /* '+' is not a space in a path */
	};
	char out[256];
	const char *why;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		why = NULL;
		if (path_normalise(cases[i].in, out, sizeof(out), &why)) {
			print_error("'%s' refused: %s\n", cases[i].in, why);
			fail();
		}
		if (strcmp(out, cases[i].out)) {
			print_error("'%s' -> '%s', wanted '%s'\n", cases[i].in,
				    out, cases[i].out);
			fail();
		}
	}
}

static void test_path_refused(void **state)
{
	static const struct {
		const char *in, *why;
	} cases[] = {
		{"/../etc/passwd", "dot-dot segment"},
		{"/..", "dot-dot segment"},
		{"/a/..", "dot-dot segment"},
		{"/a/../b", "dot-dot segment"},
		{"/a/../../../etc/passwd", "dot-dot segment"},
		{"//..//etc", "dot-dot segment"},
		{"/%2e%2e/", "dot-dot segment"},
		{"/%2E%2E/etc/passwd", "dot-dot segment"},
		{"/a/%2E./b", "dot-dot segment"},
		{"/a/.%2E", "dot-dot segment"},
		{"/a/.%2e/", "dot-dot segment"},
		{"/a%2fb", "encoded slash"},
		{"/a%2Fb", "encoded slash"},
		{"/%2f%2e%2e%2fetc", "encoded slash"},
		{"/a%5cb", "encoded backslash"},
		{"/a%5C..%5Cb", "encoded backslash"},
		{"/a\\b", "backslash"},
		{"/..\\x", "backslash"},
		{"/a%00b", "encoded NUL"},
		{"/a%00", "encoded NUL"},
		{"/a%0ab", "encoded control byte"},
		{"/a%7F", "encoded control byte"},
		{"/a\x01"
		 "b",
		 "control byte"},
		{"/a\tb", "control byte"},
		{"/a\x7f", "control byte"},
		{"/a%zz", "bad percent escape"},
		{"/a%4", "bad percent escape"},
		{"/a%", "bad percent escape"},
		{"/a%%41", "bad percent escape"},
		{"/a%g1", "bad percent escape"},
		{"a/b", "path does not start with '/'"},
		{"", "path does not start with '/'"},
		{"*", "path does not start with '/'"},
		{"http://host/a", "path does not start with '/'"},
		{"%2fetc/passwd", "path does not start with '/'"},
	};
	char out[256];
	const char *why;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		why = NULL;
		strcpy(out, "untouched");
		if (!path_normalise(cases[i].in, out, sizeof(out), &why)) {
			print_error("'%s' accepted as '%s'\n", cases[i].in,
				    out);
			fail();
		}
		assert_non_null(why);
		if (strcmp(why, cases[i].why)) {
			print_error("'%s': reason '%s', wanted '%s'\n",
				    cases[i].in, why, cases[i].why);
			fail();
		}
	}
	/* the reason is optional */
	assert_int_equal(path_normalise("/..", out, sizeof(out), NULL), -1);
	assert_int_equal(path_normalise(NULL, out, sizeof(out), &why), -1);
}

static void test_path_out_size(void **state)
{
	char out[8];
	const char *why = NULL;

	(void)state;
	/* "/abcdef" + NUL fits exactly in 8 */
	assert_int_equal(path_normalise("/abcdef", out, sizeof(out), &why), 0);
	assert_string_equal(out, "/abcdef");
	assert_int_equal(path_normalise("/abcdefg", out, sizeof(out), &why),
			 -1);
	assert_string_equal(why, "path too long");
	assert_int_equal(path_normalise("/abcdef/", out, sizeof(out), &why),
			 -1);
	/* decoding shrinks: 9 raw bytes give "/%" + 5 */
	assert_int_equal(path_normalise("/%25abcde", out, sizeof(out), &why),
			 0);
	assert_string_equal(out, "/%abcde");
	assert_int_equal(path_normalise("/", out, 1, &why), -1);
	assert_int_equal(path_normalise("/", out, 2, &why), 0);
	assert_string_equal(out, "/");
}

/* ---- policy_match_location */

static struct config_location *make_locs(const char *const *prefixes, size_t n)
{
	static struct config_location locs[8];

	assert_true(n <= ARRAY_LEN(locs));
	memset(locs, 0, sizeof(locs));
	for (size_t i = 0; i < n; i++)
		locs[i].prefix = (char *)prefixes[i];
	return locs;
}

static const char *match(const struct config *cfg, const char *path)
{
	const struct config_location *loc = policy_match_location(cfg, path);

	return loc ? loc->prefix : "(none)";
}

static void test_match_location(void **state)
{
	/* deliberately not sorted: the longest prefix wins, not the first */
	static const char *const prefixes[] = {
		"/protected/deep", "/", "/protected", "/health", "/a/b",
	};
	struct config cfg = {0};

	(void)state;
	cfg.locations = make_locs(prefixes, ARRAY_LEN(prefixes));
	cfg.n_locations = ARRAY_LEN(prefixes);

	assert_string_equal(match(&cfg, "/"), "/");
	assert_string_equal(match(&cfg, "/main.html"), "/");
	assert_string_equal(match(&cfg, "/protected"), "/protected");
	assert_string_equal(match(&cfg, "/protected/"), "/protected");
	assert_string_equal(match(&cfg, "/protected/x"), "/protected");
	assert_string_equal(match(&cfg, "/protected/x/y"), "/protected");
	assert_string_equal(match(&cfg, "/protectedx"), "/");
	assert_string_equal(match(&cfg, "/protected.html"), "/");
	assert_string_equal(match(&cfg, "/protecte"), "/");
	assert_string_equal(match(&cfg, "/protected/deep"), "/protected/deep");
	assert_string_equal(match(&cfg, "/protected/deep/1"),
			    "/protected/deep");
	assert_string_equal(match(&cfg, "/protected/deeper"), "/protected");
	assert_string_equal(match(&cfg, "/health"), "/health");
	assert_string_equal(match(&cfg, "/healthz"), "/");
	assert_string_equal(match(&cfg, "/a/b/c"), "/a/b");
	assert_string_equal(match(&cfg, "/a/bc"), "/");
	assert_string_equal(match(&cfg, "/a"), "/");
	assert_string_equal(match(&cfg, "relative"), "(none)");
	assert_null(policy_match_location(&cfg, NULL));
	assert_null(policy_match_location(NULL, "/"));
}

static void test_match_without_root(void **state)
{
	static const char *const prefixes[] = {"/protected", "/unprotected"};
	struct config cfg = {0};

	(void)state;
	cfg.locations = make_locs(prefixes, ARRAY_LEN(prefixes));
	cfg.n_locations = ARRAY_LEN(prefixes);
	assert_string_equal(match(&cfg, "/unprotected/a"), "/unprotected");
	assert_string_equal(match(&cfg, "/protected"), "/protected");
	assert_string_equal(match(&cfg, "/"), "(none)");
	assert_string_equal(match(&cfg, "/main.html"), "(none)");
	assert_string_equal(match(&cfg, "/unprotectedx"), "(none)");
	cfg.n_locations = 0;
	assert_string_equal(match(&cfg, "/protected"), "(none)");
}

/* ---- policy_check */

static const struct identity id_client1 = {
	.verified = true,
	.fingerprint = FP1,
	.subject = "CN=client1,O=mtlsgw demo",
	.subject_cn = "client1",
	.san_dns = {"client1.example.com", "Client1.Internal"},
	.n_san_dns = 2,
	.san_uri = {"spiffe://corp/ns/web/sa/frontend"},
	.n_san_uri = 1,
};

static const struct identity id_client2 = {
	.verified = true,
	.fingerprint = FP2,
	.subject = "CN=client2,O=mtlsgw demo",
	.subject_cn = "client2",
	.san_dns = {"*.example.com"},
	.n_san_dns = 1,
	.san_uri = {"spiffe://corp/ns/web/sa/frontend-evil"},
	.n_san_uri = 1,
};

/* A certificate was presented, but it did not verify: no identity. */
static const struct identity id_unverified = {
	.verified = false,
	.fingerprint = FP1,
	.subject = "CN=client1,O=mtlsgw demo",
	.subject_cn = "client1",
};

static const struct identity id_none = {.verified = false, .subject_cn = ""};

static void loc_init(struct config_location *loc, enum config_client_cert cc)
{
	memset(loc, 0, sizeof(*loc));
	loc->prefix = "/x";
	loc->client_cert = cc;
}

static void set_list(struct config_strlist *l, char **items, size_t n)
{
	l->items = items;
	l->count = n;
}

static void test_check_no_lists(void **state)
{
	struct config_location loc;

	(void)state;
	loc_init(&loc, CONFIG_CLIENT_CERT_NONE);
	assert_int_equal(policy_check(&loc, NULL), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_none), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_unverified), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_client1), POLICY_ALLOW);

	loc_init(&loc, CONFIG_CLIENT_CERT_OPTIONAL);
	assert_int_equal(policy_check(&loc, NULL), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_none), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_unverified), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_client1), POLICY_ALLOW);

	loc_init(&loc, CONFIG_CLIENT_CERT_REQUIRE);
	assert_int_equal(policy_check(&loc, NULL), POLICY_DENY_NO_CERT);
	assert_int_equal(policy_check(&loc, &id_none), POLICY_DENY_NO_CERT);
	assert_int_equal(policy_check(&loc, &id_unverified),
			 POLICY_DENY_NO_CERT);
	assert_int_equal(policy_check(&loc, &id_client1), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_client2), POLICY_ALLOW);

	assert_int_equal(policy_check(NULL, &id_client1),
			 POLICY_DENY_NOT_ALLOWED);
}

static void test_check_subject(void **state)
{
	static char *cn_only[] = {"CN=client1"};
	static char *full_dn[] = {"CN=client1,O=mtlsgw demo"};
	static char *near_misses[] = {
		"CN=client",		     /* a prefix of the CN */
		"CN=client1 ",		     /* trailing space */
		"cn=Client1",		     /* CN values are case-sensitive */
		"CN=client1,O=other",	     /* another DN with the same CN */
		"CN=client1, O=mtlsgw demo", /* not the RFC 2253 spelling */
		"O=mtlsgw demo,CN=client1",  /* reversed order */
		"CN=client1+OU=x",	     /* multi-valued RDN */
		"O=mtlsgw demo",	     /* one RDN, not a CN */
	};
	struct config_location loc;

	(void)state;
	for (int cc = CONFIG_CLIENT_CERT_OPTIONAL;
	     cc <= CONFIG_CLIENT_CERT_REQUIRE; cc++) {
		loc_init(&loc, (enum config_client_cert)cc);
		set_list(&loc.allow_subject, cn_only, 1);
		assert_int_equal(policy_check(&loc, &id_client1), POLICY_ALLOW);
		assert_int_equal(policy_check(&loc, &id_client2),
				 POLICY_DENY_NOT_ALLOWED);
		/* with an allow list, "optional" needs a certificate too */
		assert_int_equal(policy_check(&loc, NULL), POLICY_DENY_NO_CERT);
		assert_int_equal(policy_check(&loc, &id_none),
				 POLICY_DENY_NO_CERT);
		assert_int_equal(policy_check(&loc, &id_unverified),
				 POLICY_DENY_NO_CERT);

		set_list(&loc.allow_subject, full_dn, 1);
		assert_int_equal(policy_check(&loc, &id_client1), POLICY_ALLOW);
		assert_int_equal(policy_check(&loc, &id_client2),
				 POLICY_DENY_NOT_ALLOWED);
	}

	loc_init(&loc, CONFIG_CLIENT_CERT_REQUIRE);
	for (size_t i = 0; i < ARRAY_LEN(near_misses); i++) {
		set_list(&loc.allow_subject, &near_misses[i], 1);
		if (policy_check(&loc, &id_client1) !=
		    POLICY_DENY_NOT_ALLOWED) {
			print_error("'%s' matched client1\n", near_misses[i]);
			fail();
		}
	}
	/* any entry of the list may match (OR) */
	set_list(&loc.allow_subject, near_misses, ARRAY_LEN(near_misses));
	assert_int_equal(policy_check(&loc, &id_client1),
			 POLICY_DENY_NOT_ALLOWED);
	static char *mixed[] = {"CN=nobody", "CN=client2"};
	set_list(&loc.allow_subject, mixed, 2);
	assert_int_equal(policy_check(&loc, &id_client2), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_client1),
			 POLICY_DENY_NOT_ALLOWED);
}

static void test_check_subject_escapes(void **state)
{
	static char *escaped[] = {"CN=Smith\\, John"};
	static char *hex_escaped[] = {"CN=Smith\\2C John"};
	static char *unescaped[] = {"CN=Smith, John"};
	struct identity id = id_client1;
	struct config_location loc;

	(void)state;
	id.subject = "CN=Smith\\, John,O=corp";
	id.subject_cn = "Smith, John";
	loc_init(&loc, CONFIG_CLIENT_CERT_REQUIRE);
	set_list(&loc.allow_subject, escaped, 1);
	assert_int_equal(policy_check(&loc, &id), POLICY_ALLOW);
	set_list(&loc.allow_subject, hex_escaped, 1);
	assert_int_equal(policy_check(&loc, &id), POLICY_ALLOW);
	/* an unescaped ',' starts a second RDN: not a single CN */
	set_list(&loc.allow_subject, unescaped, 1);
	assert_int_equal(policy_check(&loc, &id), POLICY_DENY_NOT_ALLOWED);
}

static void test_check_san(void **state)
{
	static const struct {
		const char *entry;
		enum policy_verdict client1, client2;
	} cases[] = {
		{"spiffe://corp/ns/web/sa/frontend", POLICY_ALLOW,
		 POLICY_DENY_NOT_ALLOWED},
		{"spiffe://corp/ns/web/sa/frontend-evil",
		 POLICY_DENY_NOT_ALLOWED, POLICY_ALLOW},
		{"spiffe://corp/ns/web/sa/front", POLICY_DENY_NOT_ALLOWED,
		 POLICY_DENY_NOT_ALLOWED},
		{"SPIFFE://corp/ns/web/sa/frontend", POLICY_DENY_NOT_ALLOWED,
		 POLICY_DENY_NOT_ALLOWED},
		{"client1.example.com", POLICY_ALLOW, POLICY_DENY_NOT_ALLOWED},
		{"CLIENT1.example.COM", POLICY_ALLOW, POLICY_DENY_NOT_ALLOWED},
		{"client1.internal", POLICY_ALLOW, POLICY_DENY_NOT_ALLOWED},
		{"client1.example", POLICY_DENY_NOT_ALLOWED,
		 POLICY_DENY_NOT_ALLOWED},
		/* the entry's wildcard covers one leftmost label */
		{"*.example.com", POLICY_ALLOW, POLICY_ALLOW},
		{"*.com", POLICY_DENY_NOT_ALLOWED, POLICY_DENY_NOT_ALLOWED},
		{"*.internal", POLICY_ALLOW, POLICY_DENY_NOT_ALLOWED},
		/* a certificate's wildcard never widens an exact entry */
		{"x.example.com", POLICY_DENY_NOT_ALLOWED,
		 POLICY_DENY_NOT_ALLOWED},
		{"client1", POLICY_DENY_NOT_ALLOWED, POLICY_DENY_NOT_ALLOWED},
	};
	struct config_location loc;
	char *entry;

	(void)state;
	loc_init(&loc, CONFIG_CLIENT_CERT_OPTIONAL);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		entry = (char *)cases[i].entry;
		set_list(&loc.allow_san, &entry, 1);
		if (policy_check(&loc, &id_client1) != cases[i].client1 ||
		    policy_check(&loc, &id_client2) != cases[i].client2) {
			print_error("allow_san = %s: client1 %d, client2 %d\n",
				    cases[i].entry,
				    policy_check(&loc, &id_client1),
				    policy_check(&loc, &id_client2));
			fail();
		}
		assert_int_equal(policy_check(&loc, &id_none),
				 POLICY_DENY_NO_CERT);
	}

	/* "*.example.com" does not match a deeper name or the bare domain */
	struct identity id = id_client1;
	static char *deep[] = {"a.b.example.com", "example.com",
			       ".example.com"};
	static char *wild[] = {"*.example.com"};
	memcpy(id.san_dns, deep, sizeof(deep));
	id.n_san_dns = 3;
	id.n_san_uri = 0;
	set_list(&loc.allow_san, wild, 1);
	assert_int_equal(policy_check(&loc, &id), POLICY_DENY_NOT_ALLOWED);
}

static void test_check_fingerprint(void **state)
{
	static char *fp1[] = {FP1};
	static char *fp2[] = {FP2};
	struct config_location loc;
	struct identity id = id_client1;

	(void)state;
	loc_init(&loc, CONFIG_CLIENT_CERT_REQUIRE);
	set_list(&loc.allow_fingerprint, fp1, 1);
	assert_int_equal(policy_check(&loc, &id_client1), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_client2),
			 POLICY_DENY_NOT_ALLOWED);
	/* the fingerprint of an unverified certificate proves nothing */
	assert_int_equal(policy_check(&loc, &id_unverified),
			 POLICY_DENY_NO_CERT);
	set_list(&loc.allow_fingerprint, fp2, 1);
	assert_int_equal(policy_check(&loc, &id_client1),
			 POLICY_DENY_NOT_ALLOWED);
	/* a verified identity without a fingerprint matches nothing */
	id.fingerprint[0] = '\0';
	static char *empty[] = {""};
	set_list(&loc.allow_fingerprint, empty, 1);
	assert_int_equal(policy_check(&loc, &id), POLICY_DENY_NOT_ALLOWED);
}

static void test_check_lists_or(void **state)
{
	static char *subj[] = {"CN=nobody"};
	static char *san[] = {"nobody.example.com"};
	static char *fp[] = {FP2};
	struct config_location loc;

	(void)state;
	loc_init(&loc, CONFIG_CLIENT_CERT_OPTIONAL);
	set_list(&loc.allow_subject, subj, 1);
	set_list(&loc.allow_san, san, 1);
	set_list(&loc.allow_fingerprint, fp, 1);
	/* client2 matches only by fingerprint, client1 by nothing */
	assert_int_equal(policy_check(&loc, &id_client2), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, &id_client1),
			 POLICY_DENY_NOT_ALLOWED);
	assert_int_equal(policy_check(&loc, NULL), POLICY_DENY_NO_CERT);
	/* client_cert = none ignores the lists (config refuses the mix) */
	loc.client_cert = CONFIG_CLIENT_CERT_NONE;
	assert_int_equal(policy_check(&loc, &id_client1), POLICY_ALLOW);
	assert_int_equal(policy_check(&loc, NULL), POLICY_ALLOW);
}

static void test_verdict_text(void **state)
{
	const char *a = policy_verdict_text(POLICY_ALLOW);
	const char *b = policy_verdict_text(POLICY_DENY_NO_CERT);
	const char *c = policy_verdict_text(POLICY_DENY_NOT_ALLOWED);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_string_not_equal(a, b);
	assert_string_not_equal(b, c);
	assert_string_not_equal(a, c);
	assert_non_null(policy_verdict_text((enum policy_verdict)42));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_accepted),
		cmocka_unit_test(test_path_refused),
		cmocka_unit_test(test_path_out_size),
		cmocka_unit_test(test_match_location),
		cmocka_unit_test(test_match_without_root),
		cmocka_unit_test(test_check_no_lists),
		cmocka_unit_test(test_check_subject),
		cmocka_unit_test(test_check_subject_escapes),
		cmocka_unit_test(test_check_san),
		cmocka_unit_test(test_check_fingerprint),
		cmocka_unit_test(test_check_lists_or),
		cmocka_unit_test(test_verdict_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

// SPDX-License-Identifier: MIT
/*
 * identity.c against certificates built in memory: every field of a
 * leaf with CN, O, DNS and URI SANs and a known serial; RFC 2253 escaping;
 * names that carry NUL or control characters; a real TLS handshake over a
 * BIO pair for identity_from_ssl (verified, unverified, no certificate,
 * resumed session).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "daemon/identity.h"

struct pki {
	EVP_PKEY *root_key, *inter_key, *server_key, *client_key;
	X509 *root, *inter, *server, *client;
};

static struct pki pki;

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void add_name(X509_NAME *n, const char *field, const char *value)
{
	assert_int_equal(X509_NAME_add_entry_by_txt(
				 n, field, MBSTRING_UTF8,
				 (const unsigned char *)value, -1, -1, 0),
			 1);
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for KEY with subject NAME (taken over), signed by
 * ISSUER/ISSUER_KEY (NULL: self-signed), serial SERIAL (taken over).
 */
static X509 *new_cert(EVP_PKEY *key, X509_NAME *name, ASN1_INTEGER *serial,
		      X509 *issuer, EVP_PKEY *issuer_key, int ca,
		      const char *san, const char *eku)
{
	X509 *x = X509_new();

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(X509_set_serialNumber(x, serial), 1);
	ASN1_INTEGER_free(serial);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(
		X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
					       : name),
		1);
	X509_NAME_free(name);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
		ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	if (ca)
		add_ext(x, issuer ? issuer : x, NID_key_usage,
			"critical,keyCertSign,cRLSign");
	if (san)
		add_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
	if (eku)
		add_ext(x, issuer ? issuer : x, NID_ext_key_usage, eku);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) >
		    0);
	return x;
}

static ASN1_INTEGER *serial_of(long v)
{
	ASN1_INTEGER *s = ASN1_INTEGER_new();

	assert_non_null(s);
	assert_int_equal(ASN1_INTEGER_set(s, v), 1);
	return s;
}

static ASN1_INTEGER *serial_hex(const char *hex)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *s;

	assert_true(BN_hex2bn(&bn, hex) > 0);
	s = BN_to_ASN1_INTEGER(bn, NULL);
	assert_non_null(s);
	BN_free(bn);
	return s;
}

static X509_NAME *name2(const char *o, const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	assert_non_null(n);
	if (o)
		add_name(n, "O", o);
	if (cn)
		add_name(n, "CN", cn);
	return n;
}

static int pki_setup(void **state)
{
	(void)state;
	pki.root_key = new_key();
	pki.inter_key = new_key();
	pki.server_key = new_key();
	pki.client_key = new_key();
	pki.root = new_cert(pki.root_key, name2("mtlsgw test", "Test Root CA"),
			    serial_of(1), NULL, NULL, 1, NULL, NULL);
	pki.inter = new_cert(
		pki.inter_key, name2("mtlsgw test", "Test Intermediate CA"),
		serial_of(2), pki.root, pki.root_key, 1, NULL, NULL);
	pki.server = new_cert(pki.server_key, name2(NULL, "localhost"),
			      serial_of(3), pki.inter, pki.inter_key, 0,
			      "DNS:localhost", "serverAuth");
	pki.client = new_cert(pki.client_key, name2("mtlsgw demo", "client1"),
			      serial_hex("0123456789ABCDEF"), pki.inter,
			      pki.inter_key, 0,
			      "DNS:client1.example.org,email:c1@example.org,"
			      "URI:spiffe://example.org/ns/default/sa/client1,"
			      "IP:127.0.0.1,DNS:alt.example.org",
			      "clientAuth");
	return 0;
}

static int pki_teardown(void **state)
{
	(void)state;
	X509_free(pki.root);
	X509_free(pki.inter);
	X509_free(pki.server);
	X509_free(pki.client);
	EVP_PKEY_free(pki.root_key);
	EVP_PKEY_free(pki.inter_key);
	EVP_PKEY_free(pki.server_key);
	EVP_PKEY_free(pki.client_key);
	return 0;
}

/* The SHA-256 of CERT as OpenSSL computes it, lowercase hex. */
static void x509_sha256_hex(X509 *cert, char out[IDENTITY_FP_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;

	assert_int_equal(X509_digest(cert, EVP_sha256(), md, &len), 1);
	assert_int_equal(len, 32);
	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void check_client1(const struct identity *id)
{
	char fp[IDENTITY_FP_HEX_LEN + 1];
	unsigned char *der = NULL;
	int der_len;

	x509_sha256_hex(pki.client, fp);
	assert_string_equal(id->fingerprint, fp);
	assert_string_equal(id->subject, "CN=client1,O=mtlsgw demo");
	assert_string_equal(id->subject_cn, "client1");
	assert_string_equal(id->issuer,
			    "CN=Test Intermediate CA,O=mtlsgw test");
	assert_string_equal(id->serial, "0123456789ABCDEF");
	assert_int_equal(id->n_san_dns, 2);
	assert_string_equal(id->san_dns[0], "client1.example.org");
	assert_string_equal(id->san_dns[1], "alt.example.org");
	assert_int_equal(id->n_san_uri, 1);
	assert_string_equal(id->san_uri[0],
			    "spiffe://example.org/ns/default/sa/client1");
	der_len = i2d_X509(pki.client, &der);
	assert_true(der_len > 0);
	assert_int_equal(id->der_len, (size_t)der_len);
	assert_memory_equal(id->der, der, (size_t)der_len);
	OPENSSL_free(der);
}

static void test_from_x509_fields(void **state)
{
	struct identity id;

	(void)state;
	assert_int_equal(identity_from_x509(pki.client, &id), 0);
	check_client1(&id);
	assert_false(id.verified); /* the caller decides */
	assert_null(id.chain_pem);
	identity_clear(&id);
	identity_clear(&id);
	assert_null(id.subject);
	assert_null(id.der);
	assert_int_equal(id.n_san_dns, 0);
	assert_string_equal(id.fingerprint, "");
}

static void test_from_x509_null(void **state)
{
	struct identity id;

	(void)state;
	memset(&id, 0xa5, sizeof(id));
	assert_int_equal(identity_from_x509(NULL, &id), 0);
	assert_false(id.verified);
	assert_string_equal(id.fingerprint, "");
	assert_null(id.subject);
	identity_clear(&id);
	identity_clear(NULL);
}

static void test_rfc2253_escaping(void **state)
{
	X509_NAME *n = X509_NAME_new();
	EVP_PKEY *k = new_key();
	struct identity id;
	X509 *x;

	(void)state;
	add_name(n, "C", "FR");
	add_name(n, "O", "Acme, Inc.");
	add_name(n, "OU", "R+D");
	add_name(n, "CN", "a\"b;c<d>e\\f");
	/* A multi-valued RDN: UID joins the CN's RDN. */
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "UID", MBSTRING_UTF8,
						    (const unsigned char *)"u1",
						    -1, -1, -1),
			 1);
	x = new_cert(k, n, serial_of(0x100), pki.root, pki.root_key, 0, NULL,
		     NULL);
	assert_int_equal(identity_from_x509(x, &id), 0);
	assert_string_equal(id.subject, "CN=a\\\"b\\;c\\<d\\>e\\\\f+UID=u1,"
					"OU=R\\+D,O=Acme\\, Inc.,C=FR");
	assert_string_equal(id.subject_cn, "a\"b;c<d>e\\f");
	assert_string_equal(id.issuer, "CN=Test Root CA,O=mtlsgw test");
	assert_string_equal(id.serial, "0100");
	assert_int_equal(id.n_san_dns, 0);
	assert_int_equal(id.n_san_uri, 0);
	identity_clear(&id);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_utf8_and_bmp_cn(void **state)
{
	X509_NAME *n = X509_NAME_new();
	EVP_PKEY *k = new_key();
	struct identity id;
	X509 *x;
	/* "Zoë" in UCS-2 big endian, as a BMPString. */
	static const unsigned char bmp[] = {0, 'Z', 0, 'o', 0, 0xeb};

	(void)state;
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_BMP, bmp,
						    sizeof(bmp), -1, 0),
			 1);
	add_name(n, "OU", "Zo\xc3\xab");
	x = new_cert(k, n, serial_of(7), pki.root, pki.root_key, 0, NULL, NULL);
	assert_int_equal(identity_from_x509(x, &id), 0);
	assert_string_equal(id.subject_cn, "Zo\xc3\xab");
	/* XN_FLAG_RFC2253 escapes bytes above 0x7f as \XX. */
	assert_string_equal(id.subject, "OU=Zo\\C3\\AB,CN=Zo\\C3\\AB");
	identity_clear(&id);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_serial_forms(void **state)
{
	static const struct {
		const char *hex; /* NULL: use v */
		long v;
		const char *want;
	} cases[] = {
		{NULL, 0, "0"},
		{NULL, 0xff, "FF"},
		{NULL, 0x100, "0100"},
		{NULL, -5, "-05"},
		{"00000A", 0, "0A"},
		{"7FEDCBA98765432100112233445566778899AABB", 0,
		 "7FEDCBA98765432100112233445566778899AABB"},
	};
	EVP_PKEY *k = new_key();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct identity id;
		X509 *x;

		x = new_cert(k, name2(NULL, "s"),
			     cases[i].hex ? serial_hex(cases[i].hex)
					  : serial_of(cases[i].v),
			     pki.root, pki.root_key, 0, NULL, NULL);
		assert_int_equal(identity_from_x509(x, &id), 0);
		assert_string_equal(id.serial, cases[i].want);
		identity_clear(&id);
		X509_free(x);
	}
	EVP_PKEY_free(k);
}

static void push_ia5(GENERAL_NAMES *gens, int type, const char *s, int len)
{
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *v = ASN1_IA5STRING_new();

	assert_non_null(g);
	assert_non_null(v);
	assert_int_equal(ASN1_STRING_set(v, s, len), 1);
	GENERAL_NAME_set0_value(g, type, v);
	assert_true(sk_GENERAL_NAME_push(gens, g) > 0);
}

/* Odd certificates: SANs with NUL, control, non-ASCII bytes or empty; more
 * SANs than fit; a CN with an embedded NUL; an empty subject. */
static void test_odd_names(void **state)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	X509_NAME *n = X509_NAME_new();
	EVP_PKEY *k = new_key();
	struct identity id;
	char buf[32];
	X509 *x;
	int i;

	(void)state;
	push_ia5(gens, GEN_DNS, "good.example", -1);
	push_ia5(gens, GEN_DNS, "evil.example\0.good.example", 25);
	push_ia5(gens, GEN_DNS, "ctl\n.example", -1);
	push_ia5(gens, GEN_DNS, "del\x7f.example", -1);
	push_ia5(gens, GEN_DNS, "hi\xc3\xa9.example", -1);
	push_ia5(gens, GEN_DNS, "", 0);
	push_ia5(gens, GEN_URI, "spiffe://a/b\0c", 14);
	push_ia5(gens, GEN_URI, "spiffe://ok/1", -1);
	for (i = 0; i < IDENTITY_MAX_SANS + 4; i++) {
		snprintf(buf, sizeof(buf), "n%d.example", i);
		push_ia5(gens, GEN_DNS, buf, -1);
	}
	assert_int_equal(
		X509_NAME_add_entry_by_txt(n, "CN", V_ASN1_UTF8STRING,
					   (const unsigned char *)"admin\0evil",
					   10, -1, 0),
		1);
	x = new_cert(k, n, serial_of(9), pki.root, pki.root_key, 0, NULL, NULL);
	assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
					   X509V3_ADD_DEFAULT),
			 1);
	assert_true(X509_sign(x, pki.root_key, EVP_sha256()) > 0);
	GENERAL_NAMES_free(gens);

	assert_int_equal(identity_from_x509(x, &id), 0);
	/* A CN that would need truncating is dropped; the DN escapes it. */
	assert_string_equal(id.subject_cn, "");
	assert_string_equal(id.subject, "CN=admin\\00evil");
	assert_int_equal(id.n_san_dns, IDENTITY_MAX_SANS);
	assert_string_equal(id.san_dns[0], "good.example");
	for (i = 1; i < IDENTITY_MAX_SANS; i++) {
		snprintf(buf, sizeof(buf), "n%d.example", i - 1);
		assert_string_equal(id.san_dns[i], buf);
	}
	assert_int_equal(id.n_san_uri, 1);
	assert_string_equal(id.san_uri[0], "spiffe://ok/1");
	identity_clear(&id);
	X509_free(x);

	/* Empty subject, no extensions at all. */
	x = X509_new();
	assert_non_null(x);
	assert_int_equal(X509_set_pubkey(x, k), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_int_equal(identity_from_x509(x, &id), 0);
	assert_string_equal(id.subject, "");
	assert_string_equal(id.subject_cn, "");
	assert_string_equal(id.issuer, "");
	assert_string_equal(id.serial, "0");
	assert_int_equal(strlen(id.fingerprint), IDENTITY_FP_HEX_LEN);
	identity_clear(&id);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* --- identity_from_ssl over a real handshake on a BIO pair --- */

static int accept_all(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1;
}

static SSL_CTX *server_ctx(int trust_root, int let_through)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	X509_STORE *store;

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, pki.server), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pki.server_key), 1);
	assert_int_equal(SSL_CTX_add1_chain_cert(ctx, pki.inter), 1);
	store = SSL_CTX_get_cert_store(ctx);
	if (trust_root)
		assert_int_equal(X509_STORE_add_cert(store, pki.root), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER,
			   let_through ? accept_all : NULL);
	assert_int_equal(SSL_CTX_set_session_id_context(
				 ctx, (const unsigned char *)"t", 1),
			 1);
	return ctx;
}

static SSL_CTX *client_ctx(int with_cert, int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (max_version)
		assert_int_equal(
			SSL_CTX_set_max_proto_version(ctx, max_version), 1);
	if (with_cert) {
		assert_int_equal(SSL_CTX_use_certificate(ctx, pki.client), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pki.client_key),
				 1);
		assert_int_equal(SSL_CTX_add1_chain_cert(ctx, pki.inter), 1);
	}
	return ctx;
}

/* Run both handshakes to completion; returns 1 when both succeed. */
static int handshake(SSL *srv, SSL *cli)
{
	BIO *a = NULL, *b = NULL;
	int i, s_done = 0, c_done = 0;

	assert_int_equal(BIO_new_bio_pair(&a, 0, &b, 0), 1);
	SSL_set_bio(srv, a, a);
	SSL_set_bio(cli, b, b);
	SSL_set_accept_state(srv);
	SSL_set_connect_state(cli);
	for (i = 0; i < 100 && !(s_done && c_done); i++) {
		int r;

		if (!c_done) {
			r = SSL_do_handshake(cli);
			if (r == 1)
				c_done = 1;
			else if (SSL_get_error(cli, r) != SSL_ERROR_WANT_READ)
				break;
		}
		if (!s_done) {
			r = SSL_do_handshake(srv);
			if (r == 1)
				s_done = 1;
			else if (SSL_get_error(srv, r) != SSL_ERROR_WANT_READ)
				break;
		}
	}
	ERR_clear_error();
	return s_done && c_done;
}

static void test_from_ssl_verified(void **state)
{
	SSL_CTX *sctx = server_ctx(1, 0), *cctx = client_ctx(1, 0);
	SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
	struct identity id;
	BIO *bio;
	X509 *x;
	char fp[IDENTITY_FP_HEX_LEN + 1];

	(void)state;
	assert_true(handshake(srv, cli));
	assert_int_equal(identity_from_ssl(srv, &id), 0);
	assert_true(id.verified);
	check_client1(&id);

	/* The chain is the intermediate alone: not the leaf. */
	assert_non_null(id.chain_pem);
	bio = BIO_new_mem_buf(id.chain_pem, -1);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(x);
	assert_int_equal(X509_cmp(x, pki.inter), 0);
	X509_free(x);
	assert_null(PEM_read_bio_X509(bio, NULL, NULL, NULL));
	ERR_clear_error();
	BIO_free(bio);

	x509_sha256_hex(pki.client, fp);
	assert_string_equal(id.fingerprint, fp);
	identity_clear(&id);
	identity_clear(&id);
	SSL_free(srv);
	SSL_free(cli);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void test_from_ssl_no_cert(void **state)
{
	SSL_CTX *sctx = server_ctx(1, 0), *cctx = client_ctx(0, 0);
	SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
	struct identity id;

	(void)state;
	assert_true(handshake(srv, cli));
	assert_int_equal(identity_from_ssl(srv, &id), 0);
	assert_false(id.verified);
	assert_string_equal(id.fingerprint, "");
	assert_null(id.subject);
	assert_null(id.der);
	assert_null(id.chain_pem);
	identity_clear(&id);
	SSL_free(srv);
	SSL_free(cli);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* A verify callback lets an unknown issuer through: still not verified. */
static void test_from_ssl_unverified(void **state)
{
	SSL_CTX *sctx = server_ctx(0, 1), *cctx = client_ctx(1, 0);
	SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
	struct identity id;

	(void)state;
	assert_true(handshake(srv, cli));
	assert_non_null(SSL_get0_peer_certificate(srv));
	assert_int_not_equal(SSL_get_verify_result(srv), X509_V_OK);
	assert_int_equal(identity_from_ssl(srv, &id), 0);
	assert_false(id.verified);
	assert_string_equal(id.fingerprint, "");
	assert_null(id.subject);
	assert_null(id.der);
	identity_clear(&id);
	SSL_free(srv);
	SSL_free(cli);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* A resumed TLS 1.2 session: no certificates on the wire, the identity
 * comes from the session. */
static void test_from_ssl_resumed(void **state)
{
	SSL_CTX *sctx = server_ctx(1, 0), *cctx = client_ctx(1, TLS1_2_VERSION);
	SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
	SSL_SESSION *sess;
	struct identity id;

	(void)state;
	assert_true(handshake(srv, cli));
	sess = SSL_get1_session(cli);
	assert_non_null(sess);
	/* SSL_free() of a connection not shut down drops its session. */
	SSL_set_shutdown(srv, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_set_shutdown(cli, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(srv);
	SSL_free(cli);

	srv = SSL_new(sctx);
	cli = SSL_new(cctx);
	assert_int_equal(SSL_set_session(cli, sess), 1);
	assert_true(handshake(srv, cli));
	assert_true(SSL_session_reused(srv));
	assert_int_equal(identity_from_ssl(srv, &id), 0);
	assert_true(id.verified);
	check_client1(&id);
	if (id.chain_pem)
		assert_null(strstr(id.chain_pem, "client1"));
	identity_clear(&id);
	SSL_SESSION_free(sess);
	SSL_free(srv);
	SSL_free(cli);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void test_fingerprint_hex(void **state)
{
	char out[IDENTITY_FP_HEX_LEN + 1];

	(void)state;
	identity_fingerprint_hex((const unsigned char *)"abc", 3, out);
	assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223"
				 "b00361a396177a9cb410ff61f20015ad");
	identity_fingerprint_hex((const unsigned char *)"", 0, out);
	assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
				 "27ae41e4649b934ca495991b7852b855");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_x509_fields),
		cmocka_unit_test(test_from_x509_null),
		cmocka_unit_test(test_rfc2253_escaping),
		cmocka_unit_test(test_utf8_and_bmp_cn),
		cmocka_unit_test(test_serial_forms),
		cmocka_unit_test(test_odd_names),
		cmocka_unit_test(test_from_ssl_verified),
		cmocka_unit_test(test_from_ssl_no_cert),
		cmocka_unit_test(test_from_ssl_unverified),
		cmocka_unit_test(test_from_ssl_resumed),
		cmocka_unit_test(test_fingerprint_hex),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}

// SPDX-License-Identifier: MIT
/*
 * ktls.c without a kTLS kernel (the VM tests cover the kernel side).
 * The TLS 1.3 RX key and IV derivation is checked against OpenSSL's own
 * record layer: a real handshake over a BIO pair, the client traffic
 * secret from the keylog, then a record sealed by hand with the derived
 * key and IV at sequence 0 must decrypt in the server's SSL_read. A wrong
 * key would fail the AEAD tag. Done for each TLS 1.3 AEAD the kernel can
 * take. Also: the probe with ktls = off, and the hand-off refusals on a
 * connection that has no socket under it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "daemon/ktls.h"

static EVP_PKEY *server_key;
static X509 *server_cert;

/* The client's CLIENT_TRAFFIC_SECRET_0, as the keylog shows it. */
static unsigned char client_secret[EVP_MAX_MD_SIZE];
static size_t client_secret_len;

static int setup_pki(void **state)
{
	X509_NAME *n;

	(void)state;
	server_key = EVP_EC_gen("P-256");
	server_cert = X509_new();
	if (!server_key || !server_cert)
		return -1;
	X509_set_version(server_cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(server_cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(server_cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(server_cert), 3600);
	X509_set_pubkey(server_cert, server_key);
	n = X509_get_subject_name(server_cert);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(server_cert, n);
	return X509_sign(server_cert, server_key, EVP_sha256()) > 0 ? 0 : -1;
}

static int teardown_pki(void **state)
{
	(void)state;
	X509_free(server_cert);
	EVP_PKEY_free(server_key);
	return 0;
}

static void client_keylog(const SSL *ssl, const char *line)
{
	static const char label[] = "CLIENT_TRAFFIC_SECRET_0 ";
	const char *p;
	size_t i, n;

	(void)ssl;
	if (strncmp(line, label, sizeof(label) - 1) != 0)
		return;
	p = strchr(line + sizeof(label) - 1, ' ');
	assert_non_null(p);
	p++;
	n = strlen(p) / 2;
	assert_true(n <= sizeof(client_secret));
	for (i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(p + 2 * i, "%2x", &v), 1);
		client_secret[i] = (unsigned char)v;
	}
	client_secret_len = n;
}

struct pair {
	SSL_CTX *sctx, *cctx;
	SSL *server, *client;
	BIO *client_bio; /* client's end: writing here feeds the server */
};

static void handshake(struct pair *p, const char *suite, bool ktls)
{
	BIO *sb, *cb;
	int sdone = 0, cdone = 0, rounds;

	p->sctx = SSL_CTX_new(TLS_server_method());
	p->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p->sctx);
	assert_non_null(p->cctx);
	assert_int_equal(SSL_CTX_use_certificate(p->sctx, server_cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, server_key), 1);
	SSL_CTX_set_min_proto_version(p->sctx, TLS1_3_VERSION);
	SSL_CTX_set_min_proto_version(p->cctx, TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_set_ciphersuites(p->sctx, suite), 1);
	assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, suite), 1);
	SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_keylog_callback(p->cctx, client_keylog);
	assert_int_equal(ktls_ctx_setup(p->sctx, ktls), 0);

	p->server = SSL_new(p->sctx);
	p->client = SSL_new(p->cctx);
	assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
	SSL_set_bio(p->server, sb, sb);
	SSL_set_bio(p->client, cb, cb);
	p->client_bio = cb;
	SSL_set_accept_state(p->server);
	SSL_set_connect_state(p->client);
	client_secret_len = 0;
	for (rounds = 0; rounds < 100 && !(sdone && cdone); rounds++) {
		if (!cdone)
			cdone = SSL_do_handshake(p->client) == 1;
		if (!sdone)
			sdone = SSL_do_handshake(p->server) == 1;
	}
	assert_true(sdone && cdone);
	assert_true(client_secret_len > 0);
}

static void pair_free(struct pair *p)
{
	SSL_free(p->server);
	SSL_free(p->client);
	SSL_CTX_free(p->sctx);
	SSL_CTX_free(p->cctx);
}

/* Seal MSG as the client's first TLS 1.3 application record (sequence 0)
 * with KEY/IV, and feed it to the server. */
static void send_sealed(struct pair *p, const EVP_CIPHER *aead,
			const unsigned char *key, const unsigned char *iv,
			const char *msg)
{
	unsigned char rec[5 + 256 + 16], inner[256];
	size_t mlen = strlen(msg), ilen = mlen + 1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int outl, fin;

	memcpy(inner, msg, mlen);
	inner[mlen] = 0x17; /* content type: application_data */
	rec[0] = 0x17;
	rec[1] = 0x03;
	rec[2] = 0x03;
	rec[3] = (unsigned char)((ilen + 16) >> 8);
	rec[4] = (unsigned char)(ilen + 16);
	assert_non_null(c);
	/* nonce = iv XOR 64-bit sequence number 0 = iv */
	assert_int_equal(EVP_EncryptInit_ex(c, aead, NULL, NULL, NULL), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN,
					     KTLS_TLS13_IV_LEN, NULL),
			 1);
	assert_int_equal(EVP_EncryptInit_ex(c, NULL, NULL, key, iv), 1);
	assert_int_equal(EVP_EncryptUpdate(c, NULL, &outl, rec, 5), 1);
	assert_int_equal(EVP_EncryptUpdate(c, rec + 5, &outl, inner, (int)ilen),
			 1);
	assert_int_equal(EVP_EncryptFinal_ex(c, rec + 5 + outl, &fin), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16,
					     rec + 5 + ilen),
			 1);
	EVP_CIPHER_CTX_free(c);
	assert_int_equal(BIO_write(p->client_bio, rec, (int)(5 + ilen + 16)),
			 (int)(5 + ilen + 16));
}

static void check_suite(const char *suite, const EVP_CIPHER *aead,
			size_t key_len)
{
	static const char msg[] = "GET / HTTP/1.1\r\n\r\n";
	unsigned char key[32], iv[KTLS_TLS13_IV_LEN];
	char buf[64];
	struct pair p;
	const SSL_CIPHER *sc;
	int n;

	handshake(&p, suite, false);
	sc = SSL_get_current_cipher(p.server);
	assert_int_equal(ktls_tls13_key_iv(SSL_CIPHER_get_handshake_digest(sc),
					   client_secret, client_secret_len,
					   key, key_len, iv),
			 0);
	send_sealed(&p, aead, key, iv, msg);
	n = SSL_read(p.server, buf, sizeof(buf) - 1);
	assert_int_equal(n, (int)strlen(msg));
	buf[n] = '\0';
	assert_string_equal(buf, msg);
	OPENSSL_cleanse(key, sizeof(key));
	pair_free(&p);
}

static void test_key_iv_aes128gcm(void **state)
{
	(void)state;
	check_suite("TLS_AES_128_GCM_SHA256", EVP_aes_128_gcm(), 16);
}

static void test_key_iv_aes256gcm(void **state)
{
	(void)state;
	check_suite("TLS_AES_256_GCM_SHA384", EVP_aes_256_gcm(), 32);
}

static void test_key_iv_chacha20(void **state)
{
	(void)state;
	check_suite("TLS_CHACHA20_POLY1305_SHA256", EVP_chacha20_poly1305(),
		    32);
}

/* A wrong-sized secret (not the digest's length) is refused. */
static void test_key_iv_bad_secret(void **state)
{
	unsigned char secret[20] = {0}, key[16], iv[KTLS_TLS13_IV_LEN];

	(void)state;
	assert_int_equal(ktls_tls13_key_iv(EVP_sha256(), secret, sizeof(secret),
					   key, sizeof(key), iv),
			 -1);
	assert_int_equal(ktls_tls13_key_iv(NULL, secret, sizeof(secret), key,
					   sizeof(key), iv),
			 -1);
}

static void test_probe_off(void **state)
{
	char why[128];

	(void)state;
	assert_int_equal(ktls_probe(CONFIG_KTLS_OFF, why, sizeof(why)), 0);
	assert_string_equal(why, "ktls = off");
	assert_int_equal(ktls_ciphers(), 0);
}

/* What this host's kernel offers, read independently of ktls.c: the ULP
 * list, and whether a tls module exists that setting the ULP could load.
 * Returns 1 (tls listed), 0 (not listed, no module: no kTLS), -1 (a module
 * that only a privileged probe could load: not decidable here). */
static int host_has_ktls(char *ulps, size_t len)
{
	char path[512];
	struct utsname u;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");

	ulps[0] = '\0';
	assert_non_null(f);
	if (!fgets(ulps, (int)len, f))
		ulps[0] = '\0';
	fclose(f);
	ulps[strcspn(ulps, "\n")] = '\0';
	if (strstr(ulps, "tls"))
		return 1;
	assert_int_equal(uname(&u), 0);
	snprintf(path, sizeof(path), "/lib/modules/%s/kernel/net/tls",
		 u.release);
	return access(path, F_OK) == 0 ? -1 : 0;
}

/* The probe's answer is this host's truth: no tls ULP and no module (the
 * development and CI kernel) => unavailable, naming the ULP list and the
 * missing CONFIG_TLS; a kernel listing tls => available with AES-128-GCM
 * at least (the VM suite proves the data path itself). */
static void test_probe_auto(void **state)
{
	char why[256], ulps[128], want[200];
	int r, host;

	(void)state;
	host = host_has_ktls(ulps, sizeof(ulps));
	if (host < 0)
		skip(); /* tls.ko present but not loaded: depends on privileges
			 */
	r = ktls_probe(CONFIG_KTLS_AUTO, why, sizeof(why));
	if (host == 0) {
		assert_int_equal(r, 0);
		assert_int_equal(ktls_ciphers(), 0);
		snprintf(want, sizeof(want),
			 "kernel has no tls ULP (tcp_available_ulp: %s; ",
			 ulps[0] ? ulps : "none");
		assert_non_null(strstr(why, want));
		assert_non_null(strstr(why, "needs CONFIG_TLS or tls.ko"));
	} else {
		assert_int_equal(r, 1);
		assert_true(ktls_ciphers() & KTLS_CIPHER_AES_128_GCM);
		assert_non_null(strstr(why, "AES-128-GCM"));
	}
}

/* Without SSL_OP_ENABLE_KTLS: "ktls off", the connection stays in SSL. */
static void test_after_handshake_off(void **state)
{
	const char *reason = NULL;
	struct pair p;

	(void)state;
	handshake(&p, "TLS_AES_128_GCM_SHA256", false);
	assert_int_equal(ktls_after_handshake(p.server, -1, &reason), 0);
	assert_string_equal(reason, "ktls off");
	pair_free(&p);
}

/* Enabled, but a BIO pair is no socket: OpenSSL put nothing in the
 * kernel, and the hand-off says so instead of installing RX. */
static void test_after_handshake_no_tx(void **state)
{
	const char *reason = NULL;
	struct pair p;

	(void)state;
	handshake(&p, "TLS_AES_128_GCM_SHA256", true);
	assert_int_equal(ktls_after_handshake(p.server, -1, &reason), 0);
	assert_non_null(reason);
	assert_true(strcmp(reason, "tx not in kernel") == 0 ||
		    strcmp(reason, "cipher not offloaded") == 0);
	pair_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_iv_aes128gcm),
		cmocka_unit_test(test_key_iv_aes256gcm),
		cmocka_unit_test(test_key_iv_chacha20),
		cmocka_unit_test(test_key_iv_bad_secret),
		cmocka_unit_test(test_probe_off),
		cmocka_unit_test(test_probe_auto),
		cmocka_unit_test(test_after_handshake_off),
		cmocka_unit_test(test_after_handshake_no_tx),
	};

	return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}

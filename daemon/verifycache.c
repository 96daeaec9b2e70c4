// SPDX-License-Identifier: MIT
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crl.h"
#include "log.h"
#include "verifycache.h"

#define VERIFYCACHE_KEY_LEN   32	/* SHA-256 */
#define VERIFYCACHE_DER_STACK (8 << 10) /* bigger certificates: malloc */

struct verifycache_entry {
	unsigned char key[VERIFYCACHE_KEY_LEN];
	uint64_t ctx_serial; /* which SSL_CTX (config generation) */
	uint64_t crl_epoch;
	time_t expires;		/* first notAfter / CRL nextUpdate */
	STACK_OF(X509) * chain; /* verified chain, trust anchor included */
};

struct verifycache {
	EVP_MD_CTX *md_ctx;
	struct verifycache_entry slots[VERIFYCACHE_SLOTS];
};

static pthread_once_t verifycache_once = PTHREAD_ONCE_INIT;
static pthread_key_t verifycache_key;
static EVP_MD *verifycache_sha256; /* fetched once, not per handshake */
/* Each SSL_CTX gets its own serial: an address could be reused by the
 * next generation's context, a serial is not. 0 means "none". */
static atomic_uint_fast64_t verifycache_serials;

static void verifycache_thread_free(void *p)
{
	struct verifycache *vc = p;
	size_t i;

	if (!vc)
		return;
	for (i = 0; i < VERIFYCACHE_SLOTS; i++)
		sk_X509_pop_free(vc->slots[i].chain, X509_free);
	EVP_MD_CTX_free(vc->md_ctx);
	free(vc);
}

static void verifycache_init_once(void)
{
	if (pthread_key_create(&verifycache_key, verifycache_thread_free))
		return;
	verifycache_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* This thread's table, created on first use; NULL if memory is short
 * (then every handshake simply verifies in full). */
static struct verifycache *verifycache_thread(void)
{
	struct verifycache *vc;

	if (!verifycache_sha256)
		return NULL;
	vc = pthread_getspecific(verifycache_key);
	if (vc)
		return vc;
	vc = calloc(1, sizeof(*vc));
	if (!vc)
		return NULL;
	vc->md_ctx = EVP_MD_CTX_new();
	if (!vc->md_ctx || pthread_setspecific(verifycache_key, vc)) {
		EVP_MD_CTX_free(vc->md_ctx);
		free(vc);
		return NULL;
	}
	return vc;
}

/*
 * THE place where the CRL epoch joins the key: crl.c re-reads the CRL file
 * without a new TLS context, and moves the epoch when the set changes.
 */
static uint64_t verifycache_crl_epoch(void)
{
	return crl_epoch();
}

static int verifycache_hash_cert(EVP_MD_CTX *md, X509 *x)
{
	unsigned char stack_buf[VERIFYCACHE_DER_STACK], *buf = stack_buf, *p;
	unsigned char len_be[4];
	int len, rc = -1;

	len = i2d_X509(x, NULL);
	if (len <= 0)
		return -1;
	if ((size_t)len > sizeof(stack_buf)) {
		buf = malloc((size_t)len);
		if (!buf)
			return -1;
	}
	p = buf;
	if (i2d_X509(x, &p) != len)
		goto out;
	/* Length first: the concatenation of two chains cannot collide by
	 * moving a boundary. */
	len_be[0] = (unsigned char)(len >> 24);
	len_be[1] = (unsigned char)(len >> 16);
	len_be[2] = (unsigned char)(len >> 8);
	len_be[3] = (unsigned char)len;
	if (EVP_DigestUpdate(md, len_be, sizeof(len_be)) &&
	    EVP_DigestUpdate(md, buf, (size_t)len))
		rc = 0;
out:
	if (buf != stack_buf)
		free(buf);
	return rc;
}

/* SHA-256 over the leaf, then every certificate the peer sent, in order. */
static int verifycache_digest(struct verifycache *vc, X509_STORE_CTX *xs,
			      unsigned char key[VERIFYCACHE_KEY_LEN])
{
	STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(xs);
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	unsigned int len = 0;
	int i;

	if (!leaf || !EVP_DigestInit_ex(vc->md_ctx, verifycache_sha256, NULL))
		return -1;
	if (verifycache_hash_cert(vc->md_ctx, leaf) < 0)
		return -1;
	for (i = 0; i < sk_X509_num(sent); i++)
		if (verifycache_hash_cert(vc->md_ctx, sk_X509_value(sent, i)) <
		    0)
			return -1;
	if (!EVP_DigestFinal_ex(vc->md_ctx, key, &len) ||
	    len != VERIFYCACHE_KEY_LEN)
		return -1;
	return 0;
}

/* *EXPIRES = min(*EXPIRES, T); -1 if T cannot be read. */
static int verifycache_min_time(const ASN1_TIME *t, time_t now, time_t *expires)
{
	int days = 0, secs = 0;
	time_t at;

	if (!t || !ASN1_TIME_diff(&days, &secs, NULL, t))
		return -1;
	at = now + (time_t)days * 86400 + secs;
	if (at < *expires)
		*expires = at;
	return 0;
}

/* min(*EXPIRES, nextUpdate of every CRL in CRLS); frees CRLS. */
static int verifycache_crls_expiry(STACK_OF(X509_CRL) * crls, time_t now,
				   time_t *expires)
{
	const ASN1_TIME *next;
	int i, rc = 0;

	for (i = 0; i < sk_X509_CRL_num(crls) && rc == 0; i++) {
		next = X509_CRL_get0_nextUpdate(sk_X509_CRL_value(crls, i));
		if (next)
			rc = verifycache_min_time(next, now, expires);
	}
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	return rc;
}

/*
 * Until when the result OpenSSL just gave stays what it would give again:
 * the earliest notAfter in the verified chain and nextUpdate of the CRLs
 * that apply to it, in the store or from its CRL lookup (crl.c's list):
 * after it, OpenSSL refuses "CRL has expired". -1 when a time cannot be
 * read: do not cache.
 */
static int verifycache_expiry(X509_STORE_CTX *xs, time_t now, time_t *expires)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(xs);
	X509_STORE *store = X509_STORE_CTX_get0_store(xs);
	STACK_OF(X509_OBJECT) * objs;
	int i, rc = 0;

	X509_STORE_CTX_lookup_crls_fn lookup =
		X509_STORE_CTX_get_lookup_crls(xs);

	*expires = now + 365 * 86400;
	if (!chain || sk_X509_num(chain) == 0 || !store)
		return -1;
	for (i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);

		if (verifycache_min_time(X509_get0_notAfter(x), now, expires) <
		    0)
			return -1;
		if (lookup &&
		    verifycache_crls_expiry(lookup(xs, X509_get_issuer_name(x)),
					    now, expires) < 0)
			return -1;
	}
	if (!X509_STORE_lock(store))
		return -1;
	objs = X509_STORE_get0_objects(store);
	for (i = 0; i < sk_X509_OBJECT_num(objs) && rc == 0; i++) {
		X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
		X509_CRL *crl = X509_OBJECT_get0_X509_CRL(o);
		const ASN1_TIME *next;

		if (X509_OBJECT_get_type(o) != X509_LU_CRL || !crl)
			continue;
		next = X509_CRL_get0_nextUpdate(crl);
		if (next)
			rc = verifycache_min_time(next, now, expires);
	}
	X509_STORE_unlock(store);
	return *expires > now ? rc : -1;
}

static const char *verifycache_peer(X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	const char *peer = ssl ? SSL_get_app_data(ssl) : NULL;

	return peer ? peer : "?";
}

/* SSL_CTX_set_cert_verify_callback: in place of X509_verify_cert. */
static int verifycache_verify(X509_STORE_CTX *xs, void *arg)
{
	uint64_t serial = (uint64_t)(uintptr_t)arg;
	uint64_t crl_epoch = verifycache_crl_epoch();
	struct verifycache *vc = verifycache_thread();
	struct verifycache_entry *e;
	unsigned char key[VERIFYCACHE_KEY_LEN];
	STACK_OF(X509) * chain;
	time_t now = time(NULL), expires;
	int ok;

	if (!vc || verifycache_digest(vc, xs, key) < 0) {
		ERR_clear_error();
		return X509_verify_cert(xs);
	}
	/* The first bytes of a SHA-256 are as good an index as any. */
	e = &vc->slots[(key[0] | (unsigned)key[1] << 8) &
		       (VERIFYCACHE_SLOTS - 1)];
	if (e->chain && e->ctx_serial == serial && e->crl_epoch == crl_epoch &&
	    now < e->expires && memcmp(e->key, key, sizeof(key)) == 0) {
		chain = X509_chain_up_ref(e->chain);
		if (chain) {
			X509_STORE_CTX_set0_verified_chain(xs, chain);
			X509_STORE_CTX_set_error(xs, X509_V_OK);
			log_debug(
				"client %s: chain verification: cached result",
				verifycache_peer(xs));
			return 1;
		}
		ERR_clear_error();
	}

	ok = X509_verify_cert(xs);
	if (ok != 1 || X509_STORE_CTX_get_error(xs) != X509_V_OK)
		return ok;
	if (verifycache_expiry(xs, now, &expires) < 0)
		return ok;
	chain = X509_chain_up_ref(X509_STORE_CTX_get0_chain(xs));
	if (!chain) {
		ERR_clear_error();
		return ok;
	}
	sk_X509_pop_free(e->chain, X509_free);
	memcpy(e->key, key, sizeof(key));
	e->ctx_serial = serial;
	e->crl_epoch = crl_epoch;
	e->expires = expires;
	e->chain = chain;
	return ok;
}

void verifycache_attach(SSL_CTX *ctx)
{
	uint64_t serial;

	pthread_once(&verifycache_once, verifycache_init_once);
	if (!verifycache_sha256) {
		ERR_clear_error();
		log_warn("tls: no SHA-256 for the verification cache; "
			 "verifying every chain in full");
		return;
	}
	serial = atomic_fetch_add(&verifycache_serials, 1) + 1;
	SSL_CTX_set_cert_verify_callback(ctx, verifycache_verify,
					 (void *)(uintptr_t)serial);
}

// SPDX-License-Identifier: MIT
/*
 * OCSP: the worker's answer cache, handshakes paused on a request, and the
 * decision the verify callback takes from an answer. The HTTP side is
 * ocsp_lookup.c. Everything here runs on one worker thread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/async.h>
#include <openssl/err.h>

#include "crl.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "ocsp_private.h"

static __thread struct ocsp *ocsp_current;
static int ocsp_hs_index = -1;
static pthread_once_t ocsp_hs_once = PTHREAD_ONCE_INIT;

/* ---- cache ---- */

static struct ocsp_entry **ocsp_cache_slot(struct ocsp *o,
					   const unsigned char *key)
{
	uint32_t h;

	memcpy(&h, key, sizeof(h));
	return &o->buckets[h & (OCSP_CACHE_BUCKETS - 1)];
}

static void ocsp_cache_remove(struct ocsp *o, struct ocsp_entry *e)
{
	struct ocsp_entry **pp = ocsp_cache_slot(o, e->key);

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		o->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		o->newest = e->older;
	o->n_entries--;
	free(e);
}

/* The entry for KEY if still valid (an expired one is dropped). */
static struct ocsp_entry *ocsp_cache_get(struct ocsp *o,
					 const unsigned char *key)
{
	struct ocsp_entry *e = *ocsp_cache_slot(o, key);

	while (e && memcmp(e->key, key, OCSP_KEY_LEN) != 0)
		e = e->hnext;
	if (e && e->expires_ms <= loop_now_ms()) {
		ocsp_cache_remove(o, e);
		e = NULL;
	}
	return e;
}

void ocsp_cache_put(struct ocsp *o, const unsigned char *key,
		    enum ocsp_result r, uint64_t expires_ms, unsigned cap)
{
	struct ocsp_entry *e = *ocsp_cache_slot(o, key), **slot;

	while (e && memcmp(e->key, key, OCSP_KEY_LEN) != 0)
		e = e->hnext;
	if (e) {
		e->result = r;
		e->expires_ms = expires_ms;
		return;
	}
	/* Bounded: the oldest answer makes room. */
	while (o->n_entries >= cap && o->oldest)
		ocsp_cache_remove(o, o->oldest);
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	memcpy(e->key, key, OCSP_KEY_LEN);
	e->result = r;
	e->expires_ms = expires_ms;
	slot = ocsp_cache_slot(o, key);
	e->hnext = *slot;
	*slot = e;
	e->older = o->newest;
	if (o->newest)
		o->newest->newer = e;
	else
		o->oldest = e;
	o->newest = e;
	o->n_entries++;
}

static int ocsp_key_of_cert(X509 *cert, unsigned char key[OCSP_KEY_LEN])
{
	unsigned char *der = NULL;
	unsigned n;
	int len = i2d_X509(cert, &der), ok;

	if (len <= 0)
		return -1;
	ok = EVP_Digest(der, (size_t)len, key, &n, EVP_sha256(), NULL);
	OPENSSL_free(der);
	return ok ? 0 : -1;
}

static int ocsp_key_of_id(const OCSP_CERTID *id,
			  unsigned char key[OCSP_KEY_LEN])
{
	unsigned char *der = NULL;
	unsigned n;
	int len = i2d_OCSP_CERTID((OCSP_CERTID *)id, &der), ok;

	if (len <= 0)
		return -1;
	ok = EVP_Digest(der, (size_t)len, key, &n, EVP_sha256(), NULL);
	OPENSSL_free(der);
	return ok ? 0 : -1;
}

/* ---- handshakes ---- */

static void ocsp_hs_detach(struct ocsp_hs *hs)
{
	struct ocsp_hs **pp;

	if (!hs->waiting)
		return;
	for (pp = &hs->waiting->waiters; *pp; pp = &(*pp)->wnext)
		if (*pp == hs) {
			*pp = hs->wnext;
			break;
		}
	hs->waiting = NULL;
	hs->wnext = NULL;
}

static void ocsp_hs_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
			    int idx, long argl, void *argp)
{
	struct ocsp_hs *hs = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (!hs)
		return;
	ocsp_hs_detach(hs);
	if (hs->o)
		loop_timer_cancel(hs->o->loop, &hs->timer);
	free(hs);
}

static void ocsp_hs_init_index(void)
{
	ocsp_hs_index =
		SSL_get_ex_new_index(0, NULL, NULL, NULL, ocsp_hs_free_cb);
}

static struct ocsp_hs *ocsp_hs_get(SSL *ssl, bool create)
{
	struct ocsp_hs *hs;

	pthread_once(&ocsp_hs_once, ocsp_hs_init_index);
	if (ocsp_hs_index < 0)
		return NULL;
	hs = SSL_get_ex_data(ssl, ocsp_hs_index);
	if (hs || !create)
		return hs;
	hs = calloc(1, sizeof(*hs));
	if (!hs)
		return NULL;
	hs->o = ocsp_current;
	if (!SSL_set_ex_data(ssl, ocsp_hs_index, hs)) {
		free(hs);
		return NULL;
	}
	return hs;
}

static void ocsp_hs_on_timer(struct loop_timer *t)
{
	struct ocsp_hs *hs = container_of(t, struct ocsp_hs, timer);

	if (hs->resume)
		hs->resume(hs->arg);
}

int ocsp_handshake_bind(SSL *ssl, void (*resume)(void *), void *arg)
{
	struct ocsp_hs *hs = ocsp_hs_get(ssl, true);

	if (!hs)
		return -1;
	hs->resume = resume;
	hs->arg = arg;
	return 0;
}

void ocsp_handshake_cancel(SSL *ssl)
{
	struct ocsp_hs *hs = ocsp_hs_get(ssl, false);

	if (!hs || !hs->paused)
		return;
	ocsp_hs_detach(hs);
	if (hs->o)
		loop_timer_cancel(hs->o->loop, &hs->timer);
	hs->result = OCSP_RESULT_CANCELLED;
	hs->resume = NULL;
	/* Let the paused ASYNC job run to its end (the verify callback now
	 * refuses), or SSL_free would leave it, and its stack, behind. */
	ERR_clear_error();
	SSL_accept(ssl);
	ERR_clear_error();
}

static void ocsp_subject(X509 *cert, char *out, size_t len);

void ocsp_handshake_set_reason(SSL *ssl, const char *reason, X509 *leaf)
{
	struct ocsp_hs *hs = ocsp_hs_get(ssl, true);

	if (!hs || hs->reason)
		return;
	hs->reason = reason;
	if (leaf)
		ocsp_subject(leaf, hs->subject, sizeof(hs->subject));
}

const char *ocsp_handshake_reason(SSL *ssl)
{
	struct ocsp_hs *hs = ocsp_hs_get(ssl, false);

	return hs ? hs->reason : NULL;
}

void ocsp_lookup_done(struct ocsp_lookup *lk, enum ocsp_result r)
{
	struct ocsp *o = lk->o;
	struct ocsp_hs *hs, *next;

	if (lk->prev)
		lk->prev->next = lk->next;
	else
		o->lookups = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	o->n_lookups--;
	/* Resume from timers: a handshake step may free other conns, and
	 * must not run inside this request's I/O handler. */
	for (hs = lk->waiters; hs; hs = next) {
		next = hs->wnext;
		hs->waiting = NULL;
		hs->wnext = NULL;
		hs->result = r;
		loop_timer_arm(o->loop, &hs->timer, 0, ocsp_hs_on_timer);
	}
	lk->waiters = NULL;
	ocsp_lookup_free(lk);
}

/* The status of CERT: cached, or asked (pausing this handshake). */
static enum ocsp_result ocsp_status(struct ocsp *o,
				    const struct ocsp_conf *conf,
				    struct ocsp_hs *hs, X509_STORE *store,
				    X509 *cert, X509 *issuer)
{
	OCSP_CERTID *id = OCSP_cert_to_id(NULL, cert, issuer);
	unsigned char key[OCSP_KEY_LEN];
	struct ocsp_entry *e;
	struct ocsp_lookup *lk;

	if (!id || ocsp_key_of_id(id, key) < 0) {
		OCSP_CERTID_free(id);
		return OCSP_RESULT_UNAVAILABLE;
	}
	e = ocsp_cache_get(o, key);
	if (e) {
		OCSP_CERTID_free(id);
		metrics_inc(METRICS_OCSP_CACHE_HITS);
		return e->result;
	}
	if (!ASYNC_get_current_job()) {
		/* SSL_MODE_ASYNC is set with ocsp: cannot happen, but never
		 * block the worker for it. */
		OCSP_CERTID_free(id);
		return OCSP_RESULT_UNAVAILABLE;
	}
	for (lk = o->lookups; lk; lk = lk->next)
		if (memcmp(lk->key, key, OCSP_KEY_LEN) == 0)
			break;
	if (lk)
		metrics_inc(METRICS_OCSP_COALESCED);
	else
		lk = ocsp_lookup_start(o, conf, store, cert, id, key);
	OCSP_CERTID_free(id);
	if (!lk) {
		metrics_inc(METRICS_OCSP_ERRORS);
		return OCSP_RESULT_UNAVAILABLE;
	}
	hs->result = OCSP_RESULT_NONE;
	hs->waiting = lk;
	hs->wnext = lk->waiters;
	lk->waiters = hs;
	hs->paused = true;
	while (hs->result == OCSP_RESULT_NONE)
		if (!ASYNC_pause_job()) {
			ocsp_hs_detach(hs);
			hs->result = OCSP_RESULT_UNAVAILABLE;
		}
	hs->paused = false;
	return hs->result;
}

static const char *ocsp_peer(SSL *ssl)
{
	const char *p = SSL_get_app_data(ssl);

	return p ? p : "?";
}

static void ocsp_subject(X509 *cert, char *out, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	out[0] = '\0';
	if (!b)
		return;
	X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
	n = BIO_read(b, out, (int)len - 1);
	out[n > 0 ? n : 0] = '\0';
	BIO_free(b);
}

int ocsp_verify_step(SSL *ssl, X509_STORE_CTX *xs)
{
	const struct ocsp_conf *conf = ocsp_conf_of(ssl);
	struct ocsp *o = ocsp_current;
	STACK_OF(X509) * chain;
	struct ocsp_hs *hs;
	enum ocsp_result r;
	X509 *cert;
	int depth;

	if (!conf || !o)
		return 1;
	depth = X509_STORE_CTX_get_error_depth(xs);
	if (depth > 0 && conf->mode != CONFIG_OCSP_CHAIN)
		return 1;
	chain = X509_STORE_CTX_get0_chain(xs);
	if (depth + 1 >= sk_X509_num(chain))
		return 1; /* the trust anchor: nobody above to ask */
	cert = sk_X509_value(chain, depth);
	hs = ocsp_hs_get(ssl, true);
	if (!hs)
		return 0;
	r = ocsp_status(o, conf, hs,
			SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), cert,
			sk_X509_value(chain, depth + 1));
	if (r == OCSP_RESULT_GOOD)
		return 1;
	if (r == OCSP_RESULT_CANCELLED) {
		X509_STORE_CTX_set_error(xs, X509_V_ERR_OCSP_VERIFY_FAILED);
		return 0;
	}
	ocsp_subject(sk_X509_value(chain, 0), hs->subject, sizeof(hs->subject));
	if (r == OCSP_RESULT_UNAVAILABLE && conf->fail_open) {
		hs->reason = OCSP_REASON_UNAVAILABLE;
		metrics_inc(METRICS_OCSP_FAIL_OPEN);
		log_warn("client %s: OCSP status of %s unavailable; ocsp_fail "
			 "= open: letting it through",
			 ocsp_peer(ssl), hs->subject);
		return 1;
	}
	if (r == OCSP_RESULT_UNAVAILABLE) {
		hs->reason = OCSP_REASON_UNAVAILABLE;
		X509_STORE_CTX_set_error(xs, X509_V_ERR_OCSP_VERIFY_FAILED);
		log_info("client %s: certificate rejected: OCSP status "
			 "unavailable (depth %d, subject %s)",
			 ocsp_peer(ssl), depth, hs->subject);
		return 0;
	}
	hs->reason = OCSP_REASON_REVOKED_OCSP;
	X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REVOKED);
	log_info("client %s: certificate rejected: certificate revoked "
		 "(ocsp: %s, depth %d, subject %s)",
		 ocsp_peer(ssl),
		 r == OCSP_RESULT_REVOKED ? "revoked" : "unknown", depth,
		 hs->subject);
	return 0;
}

static const char *ocsp_cert_revoked(struct ocsp *o, X509 *cert)
{
	unsigned char key[OCSP_KEY_LEN];
	struct ocsp_entry *e;

	if (crl_lists(cert))
		return OCSP_REASON_REVOKED_CRL;
	if (!o || ocsp_key_of_cert(cert, key) < 0)
		return NULL;
	e = ocsp_cache_get(o, key);
	if (e && e->result != OCSP_RESULT_GOOD)
		return OCSP_REASON_REVOKED_OCSP;
	return NULL;
}

const char *ocsp_resumed_revoked(SSL *ssl)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	const char *why;
	struct ocsp_hs *hs;
	int i;

	if (!peer)
		return NULL;
	why = ocsp_cert_revoked(ocsp_current, peer);
	for (i = 0; !why && i < sk_X509_num(chain); i++)
		why = ocsp_cert_revoked(ocsp_current, sk_X509_value(chain, i));
	if (!why)
		return NULL;
	hs = ocsp_hs_get(ssl, true);
	if (hs) {
		hs->reason = why;
		ocsp_subject(peer, hs->subject, sizeof(hs->subject));
	}
	log_info("client %s: resumed session refused: its certificate is %s",
		 ocsp_peer(ssl), why);
	return why;
}

void ocsp_log_refused(SSL *ssl, const char *peer, const char *reason)
{
	struct ocsp_hs *hs = ocsp_hs_get(ssl, false);
	struct json_buf j;
	char when[40];

	if (strcmp(reason, OCSP_REASON_REVOKED_CRL) == 0)
		metrics_inc(METRICS_REFUSED_REVOKED_CRL);
	else if (strcmp(reason, OCSP_REASON_REVOKED_OCSP) == 0)
		metrics_inc(METRICS_REFUSED_REVOKED_OCSP);
	else
		metrics_inc(METRICS_REFUSED_OCSP_UNAVAILABLE);
	if (!log_access_enabled())
		return;
	log_timestamp(when, sizeof(when));
	json_begin(&j);
	json_str(&j, "time", when);
	json_str(&j, "client", peer);
	json_str(&j, "event", "handshake refused");
	json_u64(&j, "status", 0);
	json_str(&j, "tls_version", SSL_get_version(ssl));
	json_bool(&j, "tls_resumed", SSL_session_reused(ssl));
	json_str(&j, "verify", reason);
	json_str(&j, "subject", hs ? hs->subject : "");
	json_end(&j);
	log_access_line(j.buf, j.len);
}

/* ---- the worker's instance ---- */

struct ocsp *ocsp_new(struct loop *l)
{
	struct ocsp *o = calloc(1, sizeof(*o));

	if (o)
		o->loop = l;
	return o;
}

void ocsp_thread_set(struct ocsp *o)
{
	ocsp_current = o;
}

void ocsp_free(struct ocsp *o)
{
	if (!o)
		return;
	/* Handshakes are gone by now (the worker closed them first). */
	while (o->lookups)
		ocsp_lookup_done(o->lookups, OCSP_RESULT_CANCELLED);
	while (o->oldest)
		ocsp_cache_remove(o, o->oldest);
	if (ocsp_current == o)
		ocsp_current = NULL;
	free(o);
}

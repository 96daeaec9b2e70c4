// SPDX-License-Identifier: MIT
/*
 * The process-wide CRL set. Readers (handshakes on any worker) take the
 * lock only to copy references to the CRLs of one issuer; the main thread
 * builds a whole new list outside the lock and swaps it in, so a handshake
 * sees either the old list or the new one, never a mix.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "crl.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"

static pthread_mutex_t crl_lock = PTHREAD_MUTEX_INITIALIZER;
static STACK_OF(X509_CRL) * crl_current; /* under crl_lock */
static _Atomic uint64_t crl_epoch_value = 1;

/* Main thread only. */
static struct {
	char *path;
	unsigned interval_ms;
	uint64_t next_check_ms;
	struct stat seen; /* the file as last looked at */
	bool bad_logged;  /* the file as seen does not parse: said once */
} crl_file;

int crl_read_file(const char *path, STACK_OF(X509_CRL) * *out, char *why,
		  size_t why_len)
{
	STACK_OF(X509_CRL) *list = sk_X509_CRL_new_null();
	BIO *bio = NULL;
	X509_CRL *crl;
	unsigned long e;

	ERR_clear_error();
	if (!list) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	bio = BIO_new_file(path, "r");
	if (!bio) {
		snprintf(why, why_len, "cannot open: %s", strerror(errno));
		goto bad;
	}
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL))) {
		if (!sk_X509_CRL_push(list, crl)) {
			X509_CRL_free(crl);
			snprintf(why, why_len, "out of memory");
			goto bad;
		}
	}
	/* The read ends with "no start line" at EOF: an error only if it
	 * stopped inside a PEM block. */
	e = ERR_peek_last_error();
	if (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		snprintf(why, why_len, "not a valid PEM CRL: %s",
			 ERR_reason_error_string(e) ? ERR_reason_error_string(e)
						    : "parse error");
		goto bad;
	}
	if (sk_X509_CRL_num(list) == 0) {
		snprintf(why, why_len, "no CRL in file");
		goto bad;
	}
	ERR_clear_error();
	BIO_free(bio);
	*out = list;
	return 0;
bad:
	ERR_clear_error();
	BIO_free(bio);
	sk_X509_CRL_pop_free(list, X509_CRL_free);
	return -1;
}

static void crl_swap(STACK_OF(X509_CRL) * list)
{
	STACK_OF(X509_CRL) * old;

	pthread_mutex_lock(&crl_lock);
	old = crl_current;
	crl_current = list;
	atomic_fetch_add(&crl_epoch_value, 1);
	pthread_mutex_unlock(&crl_lock);
	sk_X509_CRL_pop_free(old, X509_CRL_free);
}

static bool crl_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read the file now; LOUD logs a failure even if it was said before. */
static int crl_reload(bool loud)
{
	STACK_OF(X509_CRL) *list = NULL;
	char why[256];
	struct stat st;

	if (stat(crl_file.path, &st) < 0)
		memset(&st, 0, sizeof(st));
	crl_file.seen = st;
	if (crl_read_file(crl_file.path, &list, why, sizeof(why)) < 0) {
		metrics_inc(METRICS_CRL_RELOAD_FAILED);
		if (loud || !crl_file.bad_logged)
			log_error("crl %s: %s; the previous CRL list stays in "
				  "force",
				  crl_file.path, why);
		crl_file.bad_logged = true;
		return -1;
	}
	crl_file.bad_logged = false;
	metrics_inc(METRICS_CRL_RELOAD_OK);
	log_info("crl %s: loaded %d CRL(s)", crl_file.path,
		 sk_X509_CRL_num(list));
	crl_swap(list);
	return 0;
}

int crl_configure(const char *path, unsigned interval_ms)
{
	crl_file.interval_ms = interval_ms;
	crl_file.next_check_ms = loop_now_ms() + interval_ms;
	if (!path) {
		free(crl_file.path);
		crl_file.path = NULL;
		if (crl_current)
			crl_swap(NULL);
		return 0;
	}
	if (!crl_file.path || strcmp(crl_file.path, path) != 0) {
		char *p = strdup(path);

		if (!p) {
			log_error("crl %s: out of memory", path);
			return -1;
		}
		free(crl_file.path);
		crl_file.path = p;
	}
	return crl_reload(true);
}

void crl_tick(void)
{
	struct stat st;
	uint64_t now;

	if (!crl_file.path || !crl_file.interval_ms)
		return;
	now = loop_now_ms();
	if (now < crl_file.next_check_ms)
		return;
	crl_file.next_check_ms = now + crl_file.interval_ms;
	if (stat(crl_file.path, &st) < 0)
		memset(&st, 0, sizeof(st));
	if (crl_same_file(&st, &crl_file.seen))
		return;
	crl_reload(false);
}

uint64_t crl_epoch(void)
{
	return atomic_load(&crl_epoch_value);
}

STACK_OF(X509_CRL) * crl_lookup(const X509_STORE_CTX *ctx, const X509_NAME *nm)
{
	STACK_OF(X509_CRL) *out = sk_X509_CRL_new_null();
	int i;

	(void)ctx;
	if (!out)
		return NULL;
	pthread_mutex_lock(&crl_lock);
	for (i = 0; i < sk_X509_CRL_num(crl_current); i++) {
		X509_CRL *crl = sk_X509_CRL_value(crl_current, i);

		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), nm) != 0)
			continue;
		if (!X509_CRL_up_ref(crl))
			continue;
		if (!sk_X509_CRL_push(out, crl))
			X509_CRL_free(crl);
	}
	pthread_mutex_unlock(&crl_lock);
	return out;
}

int crl_lists(X509 *cert)
{
	X509_REVOKED *rev = NULL;
	int i, found = 0;

	pthread_mutex_lock(&crl_lock);
	for (i = 0; i < sk_X509_CRL_num(crl_current) && !found; i++)
		if (X509_CRL_get0_by_cert(sk_X509_CRL_value(crl_current, i),
					  &rev, cert) == 1)
			found = 1;
	pthread_mutex_unlock(&crl_lock);
	return found;
}

void crl_cleanup(void)
{
	crl_swap(NULL);
	free(crl_file.path);
	crl_file.path = NULL;
}

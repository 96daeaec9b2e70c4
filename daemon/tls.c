// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "crl.h"
#include "log.h"
#include "ocsp.h"
#include "tls.h"
#include "verifycache.h"

/* Apache's SSLVerifyDepth: the most CA certificates allowed above the
 * client's own, root included. OpenSSL's depth counts one fewer (it does
 * not count the trust anchor), hence the - 1 where it is set. */

static int tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl;
	const char *peer;
	X509 *cert;
	char subject[256] = "";
	int err;

	ssl = X509_STORE_CTX_get_ex_data(xs,
					 SSL_get_ex_data_X509_STORE_CTX_idx());
	if (ok)
		return ssl ? ocsp_verify_step(ssl, xs) : 1;
	peer = ssl ? SSL_get_app_data(ssl) : NULL;
	err = X509_STORE_CTX_get_error(xs);
	if (ssl && err == X509_V_ERR_CERT_REVOKED)
		ocsp_handshake_set_reason(ssl, OCSP_REASON_REVOKED_CRL,
					  X509_STORE_CTX_get0_cert(xs));
	cert = X509_STORE_CTX_get_current_cert(xs);
	if (cert)
		X509_NAME_oneline(X509_get_subject_name(cert), subject,
				  sizeof(subject));
	log_info("client %s: certificate rejected: %s (depth %d, subject %s)",
		 peer ? peer : "?", X509_verify_cert_error_string(err),
		 X509_STORE_CTX_get_error_depth(xs), subject);
	return 0;
}

static void tls_report(FILE *errors, const struct config *cfg, int line,
		       const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	fprintf(errors, "%s:%d: %s%s%s\n", cfg->path, line, what,
		buf[0] ? ": " : "", buf);
}

SSL_CTX *tls_ctx_new(const struct config *cfg, FILE *errors)
{
	SSL_CTX *ctx;
	X509_STORE *store;
	STACK_OF(X509_NAME) * ca_names;
	int bad = 0;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		tls_report(errors, cfg, 0, "cannot create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, cfg->min_version);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	/*
	 * Resumption from a bounded server-side cache, one per TLS context and
	 * so per config generation (a reload forgets every session). OpenSSL
	 * 3.0's stateless tickets re-encode and re-parse the whole session,
	 * client certificate included, when a ticket is issued and again when
	 * it is used: a fifth of a full mTLS handshake and most of a resumed
	 * one. SSL_OP_NO_TICKET turns them into TLS 1.3 tickets that only
	 * name a cached session, and TLS 1.2 session IDs.
	 * session_tickets = no: no resumption at all.
	 * OpenSSL 3.0 treats a TCP close without close_notify (what most
	 * clients do) as a fatal error, and a fatal error evicts the session
	 * from the cache: IGNORE_UNEXPECTED_EOF reads it as the end of the
	 * stream instead. HTTP frames its requests, so a truncated one is
	 * still seen as incomplete by MHD.
	 */
	SSL_CTX_set_options(
		ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			     SSL_OP_CIPHER_SERVER_PREFERENCE |
			     SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (cfg->session_tickets) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
		SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT_S);
		SSL_CTX_set_num_tickets(ctx, TLS_NUM_TICKETS);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_TLS12) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES_TLS13)) {
		tls_report(errors, cfg, 0, "cannot set cipher policy");
		goto bad;
	}
	SSL_CTX_set_session_id_context(
		ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
		sizeof(TLS_SESSION_ID_CONTEXT) - 1);

	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1) {
		tls_report(errors, cfg, cfg->cert_line,
			   "cert: cannot load certificate chain");
		bad = 1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1) {
		tls_report(errors, cfg, cfg->key_line,
			   "key: cannot load private key");
		bad = 1;
	}
	if (!bad && SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		fprintf(errors, "%s:%d: key does not match certificate %s\n",
			cfg->path, cfg->key_line, cfg->cert);
		bad = 1;
	}

	/* Client certificates: requested at every handshake, optional there
	 * (per-path policy decides); one that is presented must verify. */
	if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca, NULL) != 1) {
		tls_report(errors, cfg, cfg->client_ca_line,
			   "client_ca: cannot load CA certificates");
		bad = 1;
	}
	ca_names = SSL_load_client_CA_file(cfg->client_ca);
	if (ca_names)
		SSL_CTX_set_client_CA_list(ctx, ca_names);
	ERR_clear_error();
	store = SSL_CTX_get_cert_store(ctx);
	if (cfg->crl) {
		STACK_OF(X509_CRL) *crls = NULL;
		char why[256];

		/* Checked here so that a bad file fails the load or the
		 * reload; the list in force lives in crl.c, which every
		 * generation's store asks (it follows the file's changes). */
		if (crl_read_file(cfg->crl, &crls, why, sizeof(why)) < 0) {
			fprintf(errors, "%s:%d: crl: %s\n", cfg->path,
				cfg->crl_line, why);
			bad = 1;
		}
		sk_X509_CRL_pop_free(crls, X509_CRL_free);
		X509_STORE_set_lookup_crls(store, crl_lookup);
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK |
						    X509_V_FLAG_CRL_CHECK_ALL);
	}
	if (ocsp_ctx_setup(ctx, cfg, errors) < 0)
		bad = 1;
	SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
	SSL_CTX_set_verify_depth(ctx, (int)cfg->verify_depth - 1);
	if (bad)
		goto bad;
	/* OCSP is asked from the verify callback, during X509_verify_cert:
	 * a cached chain result would skip it. */
	if (cfg->ocsp == CONFIG_OCSP_OFF)
		verifycache_attach(ctx);
	return ctx;
bad:
	SSL_CTX_free(ctx);
	return NULL;
}

enum tls_step tls_accept_step(SSL *ssl, const char *peer)
{
	int r, err;
	long vr;

	ERR_clear_error();
	errno = 0;
	r = SSL_accept(ssl);
	if (r == 1)
		return TLS_STEP_DONE;
	err = SSL_get_error(ssl, r);
	switch (err) {
	case SSL_ERROR_WANT_READ:
		return TLS_STEP_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_STEP_WANT_WRITE;
	case SSL_ERROR_WANT_ASYNC:
		return TLS_STEP_WANT_OCSP;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			log_info("client %s: handshake aborted: %s", peer,
				 errno ? strerror(errno)
				       : "connection closed by client");
			return TLS_STEP_FAILED;
		}
		break;
	default:
		break;
	}
	vr = SSL_get_verify_result(ssl);
	if (vr != X509_V_OK) {
		/* tls_verify_cb logged the details */
		ERR_clear_error();
		log_info("client %s: handshake failed: client certificate: %s",
			 peer, X509_verify_cert_error_string(vr));
		return TLS_STEP_FAILED;
	}
	if (log_enabled(LOG_LVL_INFO)) {
		char what[160];

		snprintf(what, sizeof(what), "client %s: handshake failed",
			 peer);
		log_ssl_errors(LOG_LVL_INFO, what);
	} else {
		ERR_clear_error();
	}
	return TLS_STEP_FAILED;
}

void tls_free(SSL *ssl)
{
	if (!ssl)
		return;
	/* OpenSSL drops a session from the cache when its connection ends
	 * without a close_notify sent, which is how most clients end and how
	 * every kTLS connection ends (the SSL is freed at the hand-off).
	 * Failures that should forget it (fatal alerts) already did. */
	if (SSL_is_init_finished(ssl))
		SSL_set_shutdown(ssl,
				 SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(ssl);
}

// SPDX-License-Identifier: MIT
/*
 * One OCSP request over HTTP/1.0 on the worker's loop: non-blocking
 * connect, POST of the DER request (with a nonce), read to the end (or
 * Content-Length), then the response is checked: signed by the issuer or
 * by a responder it delegated (OCSPSigning EKU), nonce echoed when the
 * responder supports nonces, thisUpdate/nextUpdate within OCSP_SKEW_SEC.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "metrics.h"
#include "ocsp_private.h"

#define OCSP_HTTP_HEADER_MAX 512

static int ocsp_conf_index = -1;

static void ocsp_conf_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
			      int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	free(ptr);
}

/* An address literal only: a worker never resolves names. */
static int ocsp_url_addr(const struct url_http *u, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	unsigned port = (unsigned)atoi(u->port);

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, u->host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, u->host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	return -1;
}

int ocsp_ctx_setup(SSL_CTX *ctx, const struct config *cfg, FILE *errors)
{
	struct ocsp_conf *c;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	const char *why = NULL;
	int r;

	if (cfg->ocsp == CONFIG_OCSP_OFF)
		return 0;
	if (ocsp_conf_index < 0)
		ocsp_conf_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
							   ocsp_conf_free_cb);
	c = calloc(1, sizeof(*c));
	if (ocsp_conf_index < 0 || !c) {
		fprintf(errors, "%s: ocsp: out of memory\n", cfg->path);
		free(c);
		return -1;
	}
	c->mode = cfg->ocsp;
	c->fail_open = cfg->ocsp_fail == CONFIG_OCSP_FAIL_OPEN;
	c->timeout_ms = cfg->ocsp_timeout_ms;
	c->cache_size = cfg->ocsp_cache_size;
	if (cfg->ocsp_responder) {
		if (url_parse_http(cfg->ocsp_responder, &c->url, &why) < 0)
			goto bad;
		if (ocsp_url_addr(&c->url, &c->responder, &c->responder_len) <
		    0) {
			r = getaddrinfo(c->url.host, c->url.port, &hints, &res);
			if (r != 0 || !res ||
			    res->ai_addrlen > sizeof(c->responder)) {
				why = r ? gai_strerror(r) : "no address";
				goto bad;
			}
			memcpy(&c->responder, res->ai_addr, res->ai_addrlen);
			c->responder_len = res->ai_addrlen;
			freeaddrinfo(res);
		}
		c->have_responder = true;
	}
	if (!SSL_CTX_set_ex_data(ctx, ocsp_conf_index, c)) {
		why = "out of memory";
		goto bad;
	}
	/* The handshake runs as an ASYNC job, so that the verify callback
	 * can pause it (see ocsp.h). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ASYNC);
	return 0;
bad:
	fprintf(errors, "%s:%d: ocsp_responder %s: %s\n", cfg->path,
		cfg->ocsp_responder_line, cfg->ocsp_responder, why);
	free(c);
	return -1;
}

const struct ocsp_conf *ocsp_conf_of(SSL *ssl)
{
	if (ocsp_conf_index < 0)
		return NULL;
	return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ocsp_conf_index);
}

/* The first http:// OCSP URL of CERT's AIA, as an address. */
static int ocsp_aia_target(X509 *cert, struct url_http *u,
			   struct sockaddr_storage *ss, socklen_t *len)
{
	STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(cert);
	const char *why;
	int i, r = -1;

	for (i = 0; i < sk_OPENSSL_STRING_num(urls) && r < 0; i++) {
		const char *url = sk_OPENSSL_STRING_value(urls, i);

		if (url_parse_http(url, u, &why) == 0 &&
		    ocsp_url_addr(u, ss, len) == 0)
			r = 0;
	}
	X509_email_free(urls);
	return r;
}

void ocsp_lookup_free(struct ocsp_lookup *lk)
{
	if (!lk)
		return;
	loop_timer_cancel(lk->o->loop, &lk->timer);
	if (lk->fd >= 0) {
		loop_watch_del(lk->o->loop, &lk->watch);
		close(lk->fd);
	}
	OCSP_REQUEST_free(lk->req);
	OCSP_CERTID_free(lk->id);
	X509_STORE_free(lk->store);
	OPENSSL_free(lk->out);
	free(lk->in);
	free(lk);
}

/* The body of a complete "HTTP/1.x 200" response, or NULL. */
static const unsigned char *ocsp_http_body(struct ocsp_lookup *lk, size_t *len,
					   bool final, const char **why)
{
	const char *in = (const char *)lk->in, *hend, *cl;
	size_t hlen, want;

	hend = memmem(in, lk->in_len, "\r\n\r\n", 4);
	if (!hend) {
		*why = "truncated HTTP response";
		return NULL;
	}
	hlen = (size_t)(hend - in) + 4;
	if (lk->in_len < 12 || strncmp(in, "HTTP/1.", 7) != 0 ||
	    strncmp(in + 8, " 200", 4) != 0) {
		*why = "HTTP status is not 200";
		return NULL;
	}
	cl = memmem(in, hlen, "\r\nContent-Length:", 17);
	if (!cl)
		cl = memmem(in, hlen, "\r\ncontent-length:", 17);
	if (cl) {
		want = strtoul(cl + 17, NULL, 10);
		if (lk->in_len - hlen < want) {
			*why = "truncated HTTP response";
			return NULL;
		}
		*len = want;
	} else {
		if (!final) {
			*why = "truncated HTTP response";
			return NULL;
		}
		*len = lk->in_len - hlen;
	}
	return lk->in + hlen;
}

static enum ocsp_result ocsp_check_response(struct ocsp_lookup *lk,
					    const unsigned char *der,
					    size_t len, uint64_t *expires_ms)
{
	OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &der, (long)len);
	OCSP_BASICRESP *bs = NULL;
	ASN1_GENERALIZEDTIME *rev, *thisupd, *nextupd;
	enum ocsp_result r = OCSP_RESULT_UNAVAILABLE;
	const char *why = NULL;
	int status, reason, days, secs;

	if (!resp) {
		why = "response is not DER OCSP";
		goto out;
	}
	if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		why = OCSP_response_status_str(OCSP_response_status(resp));
		goto out;
	}
	bs = OCSP_response_get1_basic(resp);
	if (!bs) {
		why = "no basic response";
		goto out;
	}
	/* 0: a nonce came back, but not ours (a replay). -1: the responder
	 * does not echo nonces (pre-signed answers); freshness then rests
	 * on thisUpdate/nextUpdate. */
	if (OCSP_check_nonce(lk->req, bs) == 0) {
		why = "nonce mismatch";
		goto out;
	}
	if (OCSP_basic_verify(bs, NULL, lk->store, 0) <= 0) {
		why = "signature or signer not trusted";
		goto out;
	}
	if (!OCSP_resp_find_status(bs, lk->id, &status, &reason, &rev, &thisupd,
				   &nextupd)) {
		why = "no status for the certificate asked about";
		goto out;
	}
	if (!OCSP_check_validity(thisupd, nextupd, OCSP_SKEW_SEC, -1)) {
		why = "thisUpdate/nextUpdate out of range";
		goto out;
	}
	r = status == V_OCSP_CERTSTATUS_GOOD	  ? OCSP_RESULT_GOOD
	    : status == V_OCSP_CERTSTATUS_REVOKED ? OCSP_RESULT_REVOKED
						  : OCSP_RESULT_UNKNOWN;
	*expires_ms = 0;
	if (nextupd && ASN1_TIME_diff(&days, &secs, NULL, nextupd) &&
	    days >= 0 && secs >= 0)
		*expires_ms = loop_now_ms() +
			      ((uint64_t)days * 86400 + (uint64_t)secs) * 1000;
out:
	if (why) {
		log_warn("ocsp %s: unusable response: %s", lk->target, why);
		ERR_clear_error();
	}
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	return r;
}

static void ocsp_lookup_finish(struct ocsp_lookup *lk)
{
	const unsigned char *body;
	const char *why = NULL;
	enum ocsp_result r;
	uint64_t expires = 0, now = loop_now_ms();
	size_t len = 0;

	body = ocsp_http_body(lk, &len, true, &why);
	if (!body) {
		log_warn("ocsp %s: %s", lk->target, why);
		metrics_inc(METRICS_OCSP_ERRORS);
		ocsp_lookup_done(lk, OCSP_RESULT_UNAVAILABLE);
		return;
	}
	r = ocsp_check_response(lk, body, len, &expires);
	if (r == OCSP_RESULT_UNAVAILABLE) {
		metrics_inc(METRICS_OCSP_ERRORS);
	} else {
		metrics_inc(r == OCSP_RESULT_GOOD      ? METRICS_OCSP_GOOD
			    : r == OCSP_RESULT_REVOKED ? METRICS_OCSP_REVOKED
						       : METRICS_OCSP_UNKNOWN);
		metrics_add(METRICS_OCSP_LATENCY_MS, now - lk->start_ms);
		/* A revocation is final: remember it at least a day, also
		 * by certificate for resumed sessions. */
		if (r != OCSP_RESULT_GOOD) {
			if (expires < now + OCSP_REVOKED_TTL_MS)
				expires = now + OCSP_REVOKED_TTL_MS;
			ocsp_cache_put(lk->o, lk->cert_key, r, expires,
				       lk->cache_size);
		}
		/* No nextUpdate: newer status is always available, so the
		 * answer is not kept. */
		if (expires > now)
			ocsp_cache_put(lk->o, lk->key, r, expires,
				       lk->cache_size);
	}
	ocsp_lookup_done(lk, r);
}

static void ocsp_on_timeout(struct loop_timer *t)
{
	struct ocsp_lookup *lk = container_of(t, struct ocsp_lookup, timer);

	log_warn("ocsp %s: no answer within ocsp_timeout", lk->target);
	metrics_inc(METRICS_OCSP_TIMEOUTS);
	ocsp_lookup_done(lk, OCSP_RESULT_UNAVAILABLE);
}

static void ocsp_fail(struct ocsp_lookup *lk, const char *what, int err)
{
	log_warn("ocsp %s: %s: %s", lk->target, what, strerror(err));
	metrics_inc(METRICS_OCSP_ERRORS);
	ocsp_lookup_done(lk, OCSP_RESULT_UNAVAILABLE);
}

static void ocsp_on_io(struct loop_watch *w, uint32_t events)
{
	struct ocsp_lookup *lk = container_of(w, struct ocsp_lookup, watch);
	const char *why;
	size_t len;
	ssize_t n;

	(void)events;
	if (lk->out_off < lk->out_len) {
		n = send(lk->fd, lk->out + lk->out_off,
			 lk->out_len - lk->out_off, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			ocsp_fail(lk, "send", errno);
			return;
		}
		lk->out_off += (size_t)n;
		if (lk->out_off == lk->out_len &&
		    loop_watch_set(lk->o->loop, &lk->watch, EPOLLIN) < 0)
			ocsp_fail(lk, "epoll", errno);
		return;
	}
	if (lk->in_len == OCSP_MAX_RESPONSE) {
		log_warn("ocsp %s: response larger than %d bytes", lk->target,
			 OCSP_MAX_RESPONSE);
		metrics_inc(METRICS_OCSP_ERRORS);
		ocsp_lookup_done(lk, OCSP_RESULT_UNAVAILABLE);
		return;
	}
	n = recv(lk->fd, lk->in + lk->in_len, OCSP_MAX_RESPONSE - lk->in_len,
		 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		ocsp_fail(lk, "recv", errno);
		return;
	}
	lk->in_len += (size_t)n;
	if (n == 0 || ocsp_http_body(lk, &len, false, &why))
		ocsp_lookup_finish(lk);
}

static int ocsp_build_request(struct ocsp_lookup *lk, const char *host,
			      const char *port, const char *path)
{
	unsigned char *der = NULL;
	char head[OCSP_HTTP_HEADER_MAX];
	int der_len, head_len;

	lk->req = OCSP_REQUEST_new();
	if (!lk->req)
		return -1;
	if (!OCSP_request_add0_id(lk->req, OCSP_CERTID_dup(lk->id)) ||
	    !OCSP_request_add1_nonce(lk->req, NULL, -1))
		return -1;
	der_len = i2d_OCSP_REQUEST(lk->req, &der);
	if (der_len <= 0)
		return -1;
	head_len = snprintf(head, sizeof(head),
			    "POST %s HTTP/1.0\r\nHost: %s%s%s\r\n"
			    "Content-Type: application/ocsp-request\r\n"
			    "Content-Length: %d\r\n\r\n",
			    path, host, strcmp(port, "80") ? ":" : "",
			    strcmp(port, "80") ? port : "", der_len);
	if (head_len < 0 || (size_t)head_len >= sizeof(head)) {
		OPENSSL_free(der);
		return -1;
	}
	lk->out = OPENSSL_malloc((size_t)(head_len + der_len));
	if (!lk->out) {
		OPENSSL_free(der);
		return -1;
	}
	memcpy(lk->out, head, (size_t)head_len);
	memcpy(lk->out + head_len, der, (size_t)der_len);
	lk->out_len = (size_t)(head_len + der_len);
	OPENSSL_free(der);
	return 0;
}

struct ocsp_lookup *ocsp_lookup_start(struct ocsp *o,
				      const struct ocsp_conf *conf,
				      X509_STORE *store, X509 *cert,
				      const OCSP_CERTID *id,
				      const unsigned char *key)
{
	struct ocsp_lookup *lk;
	struct url_http aia;
	const struct url_http *u = &conf->url;
	struct sockaddr_storage ss;
	socklen_t ss_len = conf->responder_len;
	unsigned char *der = NULL;
	unsigned dlen;
	int len;

	if (o->n_lookups >= OCSP_MAX_INFLIGHT) {
		log_warn("ocsp: %d requests under way: refusing more",
			 OCSP_MAX_INFLIGHT);
		return NULL;
	}
	if (conf->have_responder) {
		memcpy(&ss, &conf->responder, sizeof(ss));
	} else if (ocsp_aia_target(cert, &aia, &ss, &ss_len) == 0) {
		u = &aia;
	} else {
		log_warn("ocsp: certificate has no http:// OCSP URL with an "
			 "address (set ocsp_responder)");
		return NULL;
	}
	lk = calloc(1, sizeof(*lk));
	if (!lk)
		return NULL;
	lk->o = o;
	lk->fd = -1;
	lk->cache_size = conf->cache_size;
	memcpy(lk->key, key, OCSP_KEY_LEN);
	snprintf(lk->target, sizeof(lk->target), "%s%s%s:%s",
		 strchr(u->host, ':') ? "[" : "", u->host,
		 strchr(u->host, ':') ? "]" : "", u->port);
	if (!X509_STORE_up_ref(store))
		goto bad;
	lk->store = store;
	len = i2d_X509(cert, &der);
	lk->id = OCSP_CERTID_dup(id);
	lk->in = malloc(OCSP_MAX_RESPONSE);
	if (len <= 0 || !lk->id || !lk->in ||
	    !EVP_Digest(der, (size_t)len, lk->cert_key, &dlen, EVP_sha256(),
			NULL)) {
		OPENSSL_free(der);
		goto bad;
	}
	OPENSSL_free(der);
	if (ocsp_build_request(lk, u->host, u->port, u->path) < 0)
		goto bad;
	lk->fd = socket(ss.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lk->fd < 0 ||
	    (connect(lk->fd, (struct sockaddr *)&ss, ss_len) < 0 &&
	     errno != EINPROGRESS)) {
		log_warn("ocsp %s: connect: %s", lk->target, strerror(errno));
		goto bad;
	}
	if (loop_watch_add(o->loop, &lk->watch, lk->fd, EPOLLOUT, ocsp_on_io) <
	    0)
		goto bad;
	lk->start_ms = loop_now_ms();
	loop_timer_arm(o->loop, &lk->timer, conf->timeout_ms, ocsp_on_timeout);
	metrics_inc(METRICS_OCSP_REQUESTS);
	lk->next = o->lookups;
	if (o->lookups)
		o->lookups->prev = lk;
	o->lookups = lk;
	o->n_lookups++;
	return lk;
bad:
	ERR_clear_error();
	ocsp_lookup_free(lk);
	return NULL;
}

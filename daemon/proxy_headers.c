// SPDX-License-Identifier: MIT
/*
 * The request head sent to the upstream (see proxy_private.h): the
 * client's headers minus hop-by-hop ones and any that could forge the
 * gateway's identity headers, then Host, framing, X-Forwarded-* and the
 * verified client identity. Also the header-name helpers the response
 * side shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

#include "http_respond.h"
#include "proxy_private.h"

/* ---- header names ---- */

/* Header name in canonical form for comparisons: lowercase, '_' as '-',
 * blanks dropped (some upstreams normalise names that way, so a client
 * could otherwise smuggle "X_Client_Verify"). */
void proxy_name_norm(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	for (; *in && n + 1 < cap; in++) {
		char ch = *in;

		if (ch == ' ' || ch == '\t')
			continue;
		if (ch == '_')
			ch = '-';
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		out[n++] = ch;
	}
	out[n] = '\0';
}

void proxy_conn_tokens_add(char *list, size_t cap, const char *value)
{
	size_t len = strlen(list);

	if (len + 2 >= cap)
		return;
	proxy_name_norm(value, list + len, cap - len - 1);
	strcat(list, ",");
}

/* True if the comma-separated list VALUE holds TOKEN (any case). */
bool proxy_has_token(const char *value, const char *token)
{
	size_t tl = strlen(token);
	const char *p = value;

	while (p && *p) {
		const char *end;
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		end = strchr(p, ',');
		len = end ? (size_t)(end - p) : strlen(p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == tl && !strncasecmp(p, token, tl))
			return true;
		p = end;
	}
	return false;
}

bool proxy_is_hop_by_hop(const char *norm)
{
	static const char *const names[] = {
		"connection",	    "keep-alive",	 "te",
		"trailer",	    "transfer-encoding", "upgrade",
		"proxy-connection",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(norm, names[i]))
			return true;
	return !strncmp(norm, "proxy-", 6);
}

/* ---- a growable string for the request head ---- */

struct proxy_str {
	char *p;
	size_t len, cap;
	bool failed;
};

static void proxy_str_add(struct proxy_str *s, const char *data, size_t n)
{
	if (s->failed)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 1024;
		char *p;

		while (cap < s->len + n + 1)
			cap *= 2;
		p = realloc(s->p, cap);
		if (!p) {
			s->failed = true;
			return;
		}
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, data, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void proxy_str_cat(struct proxy_str *s, const char *str)
{
	proxy_str_add(s, str, strlen(str));
}

/* A header value with control characters replaced: a certificate field
 * must never break the request head. */
static void proxy_str_value(struct proxy_str *s, const char *v)
{
	for (; *v; v++) {
		char ch = *v;

		if (((unsigned char)ch < 0x20 && ch != '\t') || ch == 0x7f)
			ch = '?';
		proxy_str_add(s, &ch, 1);
	}
}

static void proxy_str_header(struct proxy_str *s, const char *prefix,
			     const char *name, const char *value)
{
	proxy_str_cat(s, prefix);
	proxy_str_cat(s, name);
	proxy_str_cat(s, ": ");
	proxy_str_value(s, value);
	proxy_str_cat(s, "\r\n");
}

static bool proxy_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

static void proxy_str_pct(struct proxy_str *s, unsigned char c)
{
	char esc[4];

	snprintf(esc, sizeof(esc), "%%%02X", c);
	proxy_str_add(s, esc, 3);
}

/* A decoded path, percent-encoded again for the request line: only
 * unreserved characters, sub-delims, ':', '@' and '/' stay as they are. */
static void proxy_str_path(struct proxy_str *s, const char *path)
{
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (proxy_unreserved(*p) || strchr("!$&'()*+,;=:@/", *p))
			proxy_str_add(s, (const char *)p, 1);
		else
			proxy_str_pct(s, *p);
	}
}

/* ---- identity headers ---- */

/* Base64 of DER, no line breaks; NULL on allocation failure. */
static char *proxy_base64(const unsigned char *der, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, der, (int)len);
	return out;
}

/* STR URL-encoded as a URI component: all but unreserved escaped. */
static void proxy_str_component(struct proxy_str *s, const char *str)
{
	for (const char *p = str; *p; p++) {
		if (proxy_unreserved((unsigned char)*p))
			proxy_str_add(s, p, 1);
		else
			proxy_str_pct(s, (unsigned char)*p);
	}
}

/* The leaf as PEM (64-column lines), URL-encoded, as nginx's
 * $ssl_client_escaped_cert. */
static void proxy_str_escaped_pem(struct proxy_str *s, const char *b64)
{
	size_t n = strlen(b64);
	char line[65];

	proxy_str_component(s, "-----BEGIN CERTIFICATE-----\n");
	for (size_t i = 0; i < n; i += 64) {
		snprintf(line, sizeof(line), "%.64s", b64 + i);
		proxy_str_component(s, line);
		proxy_str_pct(s, '\n');
	}
	proxy_str_component(s, "-----END CERTIFICATE-----\n");
}

/* RFC 9440 Client-Cert-Chain: each PEM block of CHAIN as ":base64:". */
static void proxy_str_chain(struct proxy_str *s, const char *chain)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	static const char end[] = "-----END CERTIFICATE-----";
	const char *p = chain;
	bool first = true;

	while ((p = strstr(p, begin))) {
		const char *e = strstr(p, end);

		if (!e)
			break;
		proxy_str_cat(s, first ? ":" : ", :");
		for (p += sizeof(begin) - 1; p < e; p++)
			if (proxy_unreserved((unsigned char)*p) || *p == '+' ||
			    *p == '/' || *p == '=')
				proxy_str_add(s, p, 1);
		proxy_str_cat(s, ":");
		first = false;
		p = e + sizeof(end) - 1;
	}
}

static void proxy_str_list(struct proxy_str *s, const char *prefix,
			   const char *name, char *const *items, size_t n)
{
	if (!n)
		return;
	proxy_str_cat(s, prefix);
	proxy_str_cat(s, name);
	proxy_str_cat(s, ": ");
	for (size_t i = 0; i < n; i++) {
		if (i)
			proxy_str_cat(s, ", ");
		proxy_str_value(s, items[i]);
	}
	proxy_str_cat(s, "\r\n");
}

static void proxy_str_identity(struct proxy_str *s,
			       const struct config_location *loc,
			       const struct identity *id)
{
	const char *pfx = loc->header_prefix ? loc->header_prefix
					     : CONFIG_DEFAULT_HEADER_PREFIX;
	char *b64;

	if (!id->verified) {
		proxy_str_header(s, pfx, "Verify", "NONE");
		return;
	}
	proxy_str_header(s, pfx, "Verify", "SUCCESS");
	proxy_str_header(s, pfx, "Cert-Fingerprint", id->fingerprint);
	proxy_str_header(s, pfx, "Subject", id->subject ? id->subject : "");
	proxy_str_header(s, pfx, "Issuer", id->issuer ? id->issuer : "");
	proxy_str_header(s, pfx, "Serial", id->serial ? id->serial : "");
	proxy_str_list(s, pfx, "SAN-URI", id->san_uri, id->n_san_uri);
	proxy_str_list(s, pfx, "SAN-DNS", id->san_dns, id->n_san_dns);
	if (!loc->forward_cert || !id->der)
		return;
	b64 = proxy_base64(id->der, id->der_len);
	if (!b64) {
		s->failed = true;
		return;
	}
	proxy_str_cat(s, pfx);
	proxy_str_cat(s, "Cert: ");
	proxy_str_escaped_pem(s, b64);
	proxy_str_cat(s, "\r\nClient-Cert: :");
	proxy_str_cat(s, b64);
	proxy_str_cat(s, ":\r\n");
	free(b64);
	if (id->chain_pem && strstr(id->chain_pem, "-----BEGIN")) {
		proxy_str_cat(s, "Client-Cert-Chain: ");
		proxy_str_chain(s, id->chain_pem);
		proxy_str_cat(s, "\r\n");
	}
}

/* ---- the request head ---- */

struct proxy_head_ctx {
	struct proxy_str *s;
	const char *prefix_norm; /* header prefix, canonical form */
	char conn_tokens[512];	 /* Connection header tokens, canonical */
	struct proxy_str xff;	 /* incoming X-Forwarded-For values */
};

static bool proxy_named_by_connection(const struct proxy_head_ctx *hc,
				      const char *norm)
{
	return proxy_has_token(hc->conn_tokens, norm);
}

/* Incoming headers the gateway owns: never forwarded as sent. */
static bool proxy_is_identity(const struct proxy_head_ctx *hc, const char *norm)
{
	size_t pl = strlen(hc->prefix_norm);

	if (pl && !strncmp(norm, hc->prefix_norm, pl))
		return true;
	return !strcmp(norm, "client-cert") ||
	       !strcmp(norm, "client-cert-chain");
}

static enum MHD_Result proxy_collect_connection(void *cls,
						enum MHD_ValueKind kind,
						const char *key,
						const char *value)
{
	struct proxy_head_ctx *hc = cls;
	char norm[64];

	(void)kind;
	proxy_name_norm(key, norm, sizeof(norm));
	if (strcmp(norm, "connection") || !value)
		return MHD_YES;
	proxy_conn_tokens_add(hc->conn_tokens, sizeof(hc->conn_tokens), value);
	return MHD_YES;
}

static enum MHD_Result proxy_copy_header(void *cls, enum MHD_ValueKind kind,
					 const char *key, const char *value)
{
	struct proxy_head_ctx *hc = cls;
	char norm[128];

	(void)kind;
	if (!key || !value)
		return MHD_YES;
	proxy_name_norm(key, norm, sizeof(norm));
	if (!strcmp(norm, "x-forwarded-for")) {
		if (hc->xff.len)
			proxy_str_cat(&hc->xff, ", ");
		proxy_str_cat(&hc->xff, value);
		return MHD_YES;
	}
	if (proxy_is_hop_by_hop(norm) || proxy_named_by_connection(hc, norm) ||
	    proxy_is_identity(hc, norm) || !strcmp(norm, "host") ||
	    !strcmp(norm, "content-length") || !strcmp(norm, "expect") ||
	    !strcmp(norm, "x-forwarded-proto") ||
	    !strcmp(norm, "x-forwarded-host"))
		return MHD_YES;
	proxy_str_header(hc->s, "", key, value);
	return MHD_YES;
}

struct proxy_args {
	struct proxy_str *s;
	unsigned n;
};

/* MHD splits the query into arguments (raw: http.c disables its
 * unescaping, but '+' has become ' '); put it back together. */
static enum MHD_Result proxy_copy_arg(void *cls, enum MHD_ValueKind kind,
				      const char *key, const char *value)
{
	struct proxy_args *a = cls;
	struct proxy_str *s = a->s;

	(void)kind;
	proxy_str_cat(s, a->n++ ? "&" : "?");
	for (const char *p = key; *p; p++)
		proxy_str_add(s, *p == ' ' ? "+" : p, 1);
	if (value) {
		proxy_str_cat(s, "=");
		for (const char *p = value; *p; p++)
			proxy_str_add(s, *p == ' ' ? "+" : p, 1);
	}
	return MHD_YES;
}

/* The client address without its port, for X-Forwarded-For. */
static void proxy_client_ip(const char *peer, char *out, size_t cap)
{
	const char *colon;
	size_t n;

	if (peer[0] == '[') {
		const char *close = strchr(peer, ']');

		n = close ? (size_t)(close - peer - 1) : strlen(peer);
		snprintf(out, cap, "%.*s", (int)n, peer + 1);
		return;
	}
	colon = strrchr(peer, ':');
	n = colon ? (size_t)(colon - peer) : strlen(peer);
	snprintf(out, cap, "%.*s", (int)n, peer);
}

/* The upstream path: the location prefix replaced by proxy_path. */
static void proxy_str_target(struct proxy_str *s, const struct http_request *rq,
			     const struct config_location *loc)
{
	const char *rest = rq->path, *pp = loc->proxy_path;
	size_t pl = strlen(loc->prefix);

	if (!pp || !*pp) {
		proxy_str_path(s, rq->path);
		return;
	}
	if (strcmp(loc->prefix, "/") && !strncmp(rq->path, loc->prefix, pl))
		rest = rq->path + pl;
	proxy_str_path(s, pp);
	if (pp[strlen(pp) - 1] == '/' && rest[0] == '/')
		rest++;
	proxy_str_path(s, rest);
}

int proxy_build_head(struct proxy_req *pr)
{
	struct http_request *rq = pr->rq;
	const struct config_location *loc = pr->loc;
	struct proxy_head_ctx hc = {0};
	struct proxy_str s = {0};
	struct proxy_args args = {&s, 0};
	const char *host, *cl, *pfx;
	char prefix_norm[80], ip[64], num[32];

	pfx = loc->header_prefix ? loc->header_prefix
				 : CONFIG_DEFAULT_HEADER_PREFIX;
	proxy_name_norm(pfx, prefix_norm, sizeof(prefix_norm));
	hc.s = &s;
	hc.prefix_norm = prefix_norm;
	MHD_get_connection_values(pr->mc, MHD_HEADER_KIND,
				  proxy_collect_connection, &hc);

	proxy_str_cat(&s, rq->method);
	proxy_str_cat(&s, " ");
	proxy_str_target(&s, rq, loc);
	MHD_get_connection_values(pr->mc, MHD_GET_ARGUMENT_KIND, proxy_copy_arg,
				  &args);
	proxy_str_cat(&s, " HTTP/1.1\r\n");
	host = MHD_lookup_connection_value(pr->mc, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_HOST);
	proxy_str_header(&s, "", "Host", host ? host : proxy_server_text(pr));
	MHD_get_connection_values(pr->mc, MHD_HEADER_KIND, proxy_copy_header,
				  &hc);

	if (pr->req_framing == PROXY_FRAME_CHUNKED) {
		proxy_str_cat(&s, "Transfer-Encoding: chunked\r\n");
	} else if (pr->req_framing == PROXY_FRAME_LENGTH) {
		cl = MHD_lookup_connection_value(
			pr->mc, MHD_HEADER_KIND,
			MHD_HTTP_HEADER_CONTENT_LENGTH);
		snprintf(num, sizeof(num), "%llu",
			 cl ? strtoull(cl, NULL, 10) : 0ULL);
		proxy_str_header(&s, "", "Content-Length", num);
	}
	if (pr->upgrade)
		proxy_str_cat(&s,
			      "Connection: Upgrade\r\nUpgrade: websocket\r\n");

	proxy_client_ip(rq->conn->peer_text, ip, sizeof(ip));
	if (hc.xff.len)
		proxy_str_cat(&hc.xff, ", ");
	proxy_str_cat(&hc.xff, ip);
	if (hc.xff.failed)
		s.failed = true;
	else
		proxy_str_header(&s, "", "X-Forwarded-For", hc.xff.p);
	free(hc.xff.p);
	proxy_str_cat(&s, "X-Forwarded-Proto: https\r\n");
	if (host)
		proxy_str_header(&s, "", "X-Forwarded-Host", host);
	proxy_str_identity(&s, loc, &rq->conn->id);
	proxy_str_cat(&s, "\r\n");
	if (s.failed) {
		free(s.p);
		return -1;
	}
	/* The head plus room for body: the out buffer never grows later.
	 * Without a body (a GET), the head alone: 32 KiB less to allocate
	 * and free per request. */
	pr->ocap = s.len;
	if (pr->req_framing != PROXY_FRAME_NONE)
		pr->ocap += PROXY_BUF_SIZE;
	pr->obuf = realloc(s.p, pr->ocap);
	if (!pr->obuf) {
		free(s.p);
		return -1;
	}
	pr->olen = s.len;
	return 0;
}

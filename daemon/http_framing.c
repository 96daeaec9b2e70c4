// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_framing.h"
#include "log.h"

/* Every header of a request fits in max_header_size, so the list is short;
 * this only bounds the allocation for a list MHD let grow. */
#define HTTP_FRAMING_MAX_FIELDS 4096

bool http_framing_is_token(const char *s, size_t len)
{
	size_t i;

	if (!len)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9'))
			continue;
		if (!ch || !strchr("!#$%&'*+-.^_`|~", ch))
			return false;
	}
	return true;
}

/* field-value = *( VCHAR / obs-text / SP / HTAB ): no CR, LF, NUL or other
 * control byte (a bare CR or NUL is how a value smuggles a line end past
 * one parser and not the next). */
static bool http_framing_value_ok(const char *v, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)v[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return false;
	}
	return true;
}

/* A request target has no whitespace or control byte at all (MHD 0.9.75
 * takes "GET /a b HTTP/1.1" as target "/a b" unless in strict mode). */
static bool http_framing_target_ok(const char *t)
{
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t == 0x7f)
			return false;
	return true;
}

static bool http_framing_name_is(const struct http_framing_field *f,
				 const char *name)
{
	return f->name_len == strlen(name) &&
	       strncasecmp(f->name, name, f->name_len) == 0;
}

/* Content-Length = 1*DIGIT (a list "5, 5" is refused too). */
static bool http_framing_length_ok(const struct http_framing_field *f)
{
	size_t i;

	if (!f->value_len || f->value_len > 19)
		return false;
	for (i = 0; i < f->value_len; i++)
		if (f->value[i] < '0' || f->value[i] > '9')
			return false;
	return true;
}

unsigned http_framing_check(const struct http_framing_req *r, const char **note)
{
	const struct http_framing_field *cl = NULL, *te = NULL;
	unsigned hosts = 0, lengths = 0, codings = 0;
	bool http11 = r->version && strcmp(r->version, "HTTP/1.1") == 0;
	size_t i;

	*note = NULL;
	if (!r->method ||
	    !http_framing_is_token(r->method, strlen(r->method))) {
		*note = "method not a token";
		return 400;
	}
	if (r->target && !http_framing_target_ok(r->target)) {
		*note = "space or control character in target";
		return 400;
	}
	for (i = 0; i < r->n_fields; i++) {
		const struct http_framing_field *f = &r->fields[i];

		if (f->folded) {
			*note = "obs-fold";
			return 400;
		}
		/* MHD keeps "Name :" in the name: not a token. */
		if (!f->name || !http_framing_is_token(f->name, f->name_len)) {
			*note = "header name not a token";
			return 400;
		}
		if (f->value_len &&
		    (!f->value ||
		     !http_framing_value_ok(f->value, f->value_len))) {
			*note = "control character in header value";
			return 400;
		}
		if (http_framing_name_is(f, "Host"))
			hosts++;
		else if (http_framing_name_is(f, "Content-Length")) {
			lengths++;
			cl = f;
		} else if (http_framing_name_is(f, "Transfer-Encoding")) {
			codings++;
			te = f;
		}
	}
	if (hosts > 1) {
		*note = "duplicate host";
		return 400;
	}
	if (http11 && !hosts) {
		*note = "missing host";
		return 400;
	}
	if (lengths > 1) {
		*note = "duplicate content-length";
		return 400;
	}
	if (cl && !http_framing_length_ok(cl)) {
		*note = "bad content-length";
		return 400;
	}
	if (!te)
		return 0;
	/* RFC 9112 6.1: both together may be a smuggling attempt; an
	 * HTTP/1.0 message with a transfer coding is faulty framing. */
	if (cl) {
		*note = "content-length with transfer-encoding";
		return 400;
	}
	if (!http11) {
		*note = "transfer-encoding in HTTP/1.0";
		return 400;
	}
	if (codings > 1 || te->value_len != strlen("chunked") ||
	    strncasecmp(te->value, "chunked", te->value_len) != 0) {
		*note = "transfer coding not supported";
		return 501;
	}
	return 0;
}

/* ---- on a live request ---- */

struct http_framing_list {
	struct http_framing_field *fields;
	size_t n, cap;
};

static enum MHD_Result http_framing_collect(void *cls, enum MHD_ValueKind kind,
					    const char *key, size_t key_size,
					    const char *value,
					    size_t value_size)
{
	struct http_framing_list *l = cls;

	(void)kind;
	if (l->n < l->cap)
		l->fields[l->n] = (struct http_framing_field){
			.name = key,
			.name_len = key_size,
			.value = value,
			.value_len = value ? value_size : 0,
		};
	l->n++;
	return MHD_YES;
}

/*
 * What MHD 0.9.75 hides in its header list, found from where the fields lie
 * in its read buffer. It parses the header block in place, contiguous from
 * the method to METHOD + SIZE: each line becomes "Name\0 OWS value" plus
 * one NUL per CR and LF of its end. An obs-fold continuation is appended
 * to the *name* in a block allocated elsewhere (so the name no longer sits
 * just before its value), and a NUL in a value ends the C string MHD
 * measured: the bytes after it, up to the next line, are not line-end
 * NULs. Such a value is given its real length here, so that the NUL is
 * seen. (One NUL right before a bare LF looks like the CR of a CRLF and
 * goes unseen; MHD drops it from the value, so nothing is smuggled.)
 */
void http_framing_layout(struct http_framing_field *f, size_t n,
			 const char *block, size_t size)
{
	const char *end = block + size, *next, *p;
	size_t i;

	for (i = 0; i < n; i++) {
		const char *name = f[i].name, *val = f[i].value;

		if (!name || !val || name < block || val > end ||
		    name + f[i].name_len >= val || name[f[i].name_len]) {
			f[i].folded = true;
			continue;
		}
		for (p = name + f[i].name_len + 1; p < val; p++)
			if (*p != ' ' && *p != '\t')
				f[i].folded = true;
	}
	/* A fold is refused as such, and the block is no longer one piece. */
	for (i = 0; i < n; i++)
		if (f[i].folded)
			return;
	for (i = 0; i < n; i++) {
		next = i + 1 < n ? f[i + 1].name : end;
		p = f[i].value + f[i].value_len;
		/* Line end: 1 or 2 NULs; after the last field, the empty
		 * line's too. */
		if (next < p || next > end || next - p <= (i + 1 < n ? 2 : 4))
			continue;
		/* Past the terminator: the last byte that is not a NUL. */
		while (next > p && !next[-1])
			next--;
		f[i].value_len = next > p ? (size_t)(next - f[i].value)
					  : f[i].value_len + 1;
	}
}

enum MHD_Result http_framing_refuse(struct http_request *rq, unsigned status,
				    const char *hdr, const char *val,
				    bool close)
{
	struct MHD_Response *resp;
	const char *reason = MHD_get_reason_phrase_for(status);
	char body[96];
	int len;

	len = snprintf(body, sizeof(body), "%u %s\n", status,
		       reason && *reason ? reason : "Error");
	if (len < 0 || (size_t)len >= sizeof(body))
		len = 0;
	resp = MHD_create_response_from_buffer((size_t)len, body,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp) {
		log_error("cannot create response (out of memory)");
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    "text/plain; charset=utf-8") != MHD_YES ||
	    (hdr && MHD_add_response_header(resp, hdr, val) != MHD_YES) ||
	    (close && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					      "close") != MHD_YES)) {
		log_error("cannot build a %u response (out of memory)", status);
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	rq->bytes_out =
		strcmp(rq->method, MHD_HTTP_METHOD_HEAD) ? (size_t)len : 0;
	return http_respond(rq, status, resp);
}

int http_framing_admit(struct http_request *rq)
{
	struct http_framing_list l = {0};
	struct http_framing_req r = {.method = rq->method,
				     .target = rq->raw_url,
				     .version = rq->version};
	const union MHD_ConnectionInfo *ci;
	const char *note;
	unsigned status;

	/* Count first, then fill: no fixed ceiling on what MHD accepted. */
	MHD_get_connection_values_n(rq->mc, MHD_HEADER_KIND,
				    http_framing_collect, &l);
	if (l.n > HTTP_FRAMING_MAX_FIELDS) {
		status = 431;
		note = "too many header fields";
		goto refuse;
	}
	if (l.n) {
		l.fields = calloc(l.n, sizeof(*l.fields));
		if (!l.fields) {
			log_error("http: out of memory checking a request");
			return -1;
		}
		l.cap = l.n;
		l.n = 0;
		MHD_get_connection_values_n(rq->mc, MHD_HEADER_KIND,
					    http_framing_collect, &l);
		if (l.n > l.cap)
			l.n = l.cap;
	}
	ci = MHD_get_connection_info(rq->mc,
				     MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (ci && l.n)
		http_framing_layout(l.fields, l.n, rq->method, ci->header_size);
	r.fields = l.fields;
	r.n_fields = l.n;
	status = http_framing_check(&r, &note);
	free(l.fields);
	if (!status)
		return 0;
refuse:
	rq->note = note;
	return http_framing_refuse(rq, status, NULL, NULL, true) == MHD_YES
		       ? 1
		       : -1;
}

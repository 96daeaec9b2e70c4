/* SPDX-License-Identifier: MIT */
/*
 * Strict HTTP/1.1 framing and syntax (RFC 9110, RFC 9112), checked on the
 * request line and header list before routing. libmicrohttpd 0.9.75 frames
 * loosely (both Content-Length and Transfer-Encoding, duplicate lengths,
 * whitespace and obs-fold kept in the header name), so the gateway refuses
 * such requests itself: 400, or 501 for a transfer coding other than
 * "chunked", always with the connection closed. MHD's own strict mode
 * (MHD_OPTION_STRICT_FOR_CLIENT) stays off: in 0.9.75 it only adds a Host
 * check and a space-in-target check, both made here too, and it would
 * answer them itself, before the access log can name the rule.
 */
#ifndef MTLSGW_HTTP_FRAMING_H
#define MTLSGW_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

#include "http_respond.h"

/* One header field as received; the sizes count every byte (a NUL in a
 * value is seen through them). */
struct http_framing_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	bool folded; /* continued on the next line (obs-fold) */
};

/* What the checks look at: the request line's method and version, and the
 * header fields in the order they came. */
struct http_framing_req {
	const char *method;
	const char *target;  /* path part, as sent (NULL: not checked) */
	const char *version; /* "HTTP/1.1", "HTTP/1.0" */
	const struct http_framing_field *fields;
	size_t n_fields;
};

/* 0 when the framing is sound; else the status to refuse with (400 or 501)
 * and *NOTE, a static text naming the rule for the access log. */
unsigned http_framing_check(const struct http_framing_req *r,
			    const char **note);

/* libmicrohttpd 0.9.75 glue: its header list hides an obs-fold (appended
 * to the name) and a NUL in a value (the C string ends there). Sets
 * F[i].folded, or extends F[i].value_len over the hidden bytes, from where
 * the N fields lie in the header block [BLOCK, BLOCK + SIZE) that MHD
 * parsed in place. */
void http_framing_layout(struct http_framing_field *f, size_t n,
			 const char *block, size_t size);

/* Is [S, S+LEN) a non-empty RFC 9110 token? */
bool http_framing_is_token(const char *s, size_t len);

/* The access handler's hook, on the first call for a request: checks RQ's
 * header list and, when it is refused, answers with Connection: close
 * (the body and anything pipelined behind it are never read). Returns 0 to
 * go on, 1 when answered, -1 on failure (close the connection). */
int http_framing_admit(struct http_request *rq);

/* A short text/plain refusal for STATUS ("<status> <reason>\n") with
 * optional header HDR: VAL, and Connection: close when CLOSE. */
enum MHD_Result http_framing_refuse(struct http_request *rq, unsigned status,
				    const char *hdr, const char *val,
				    bool close);

#endif

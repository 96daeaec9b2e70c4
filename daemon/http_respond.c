// SPDX-License-Identifier: MIT
#include <string.h>

#include "http_respond.h"
#include "log.h"

enum MHD_Result http_respond(struct http_request *rq, unsigned status,
			     struct MHD_Response *resp)
{
	enum MHD_Result r;

	if (!resp) {
		log_error("cannot create response (out of memory)");
		return MHD_NO;
	}
	/* A 101 needs "Connection: Upgrade"; it ends the HTTP exchange
	 * anyway. */
	if (*rq->draining && status != MHD_HTTP_SWITCHING_PROTOCOLS &&
	    !MHD_get_response_header(resp, MHD_HTTP_HEADER_CONNECTION))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	r = MHD_queue_response(rq->mc, status, resp);
	MHD_destroy_response(resp);
	/* MHD 0.9.75 refuses a response in the middle of a request body: the
	 * access log must not claim a status the client never got. */
	if (r == MHD_YES)
		rq->status = status;
	else
		rq->status_not_delivered = status;
	return r;
}

enum MHD_Result http_respond_text(struct http_request *rq, unsigned status,
				  const char *body)
{
	struct MHD_Response *resp;
	size_t len = strlen(body);

	resp = MHD_create_response_from_buffer(len, (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	rq->bytes_out = strcmp(rq->method, "HEAD") ? len : 0;
	return http_respond(rq, status, resp);
}

// SPDX-License-Identifier: MIT
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "ready.h"

static atomic_uint ready_mask;

void ready_set_blocker(enum ready_reason reason, bool on)
{
	if (on)
		atomic_fetch_or(&ready_mask, (unsigned)reason);
	else
		atomic_fetch_and(&ready_mask, ~(unsigned)reason);
}

unsigned ready_blockers(void)
{
	return atomic_load(&ready_mask);
}

enum MHD_Result ready_handle(struct http_request *rq)
{
	unsigned mask = ready_blockers();
	char body[96];

	if (!mask)
		return http_respond_text(rq, MHD_HTTP_OK, "ready\n");
	snprintf(body, sizeof(body), "not ready:%s%s\n",
		 mask & READY_DRAINING ? " draining" : "",
		 mask & READY_FLEET ? " fleet store unreachable" : "");
	rq->note = "not ready";
	return http_respond_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

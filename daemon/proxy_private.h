/* SPDX-License-Identifier: MIT */
/*
 * Reverse proxy internals, shared by its three files and included by them
 * only:
 *   proxy.c           the request's life on the MHD side: start, request
 *                     body, suspend/resume, response body streaming,
 *                     WebSocket tunnel, the per-worker pool
 *   proxy_upstream.c  upstream connections: idle keep-alive pool, connect
 *                     and failover, timeouts, sending the request, reading
 *                     and parsing the response head
 *   proxy_headers.c   the upstream request head: hop-by-hop filtering,
 *                     forged identity headers removed and real ones added,
 *                     X-Forwarded-*, path rewrite and encoding
 */
#ifndef MTLSGW_PROXY_PRIVATE_H
#define MTLSGW_PROXY_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <microhttpd.h>

#include "gen.h"
#include "http_respond.h"
#include "loop.h"
#include "proxy.h"

enum proxy_phase {
	PROXY_CONNECTING,
	PROXY_REQUEST,	/* connected: sending the request, reading the head */
	PROXY_RESPONSE, /* response queued to MHD: body streaming */
	PROXY_FAILED,
	PROXY_TUNNEL,
};

/* What a suspended client connection waits for. */
enum proxy_wait {
	PROXY_WAIT_NONE,
	PROXY_WAIT_SEND, /* room in the out buffer */
	PROXY_WAIT_HEAD, /* the response head */
	PROXY_WAIT_BODY, /* response body bytes */
};

enum proxy_framing {
	PROXY_FRAME_NONE,
	PROXY_FRAME_LENGTH,
	PROXY_FRAME_CHUNKED,
	PROXY_FRAME_CLOSE, /* response body ends when the upstream closes */
};

enum proxy_chunk_state {
	PROXY_CH_SIZE,
	PROXY_CH_DATA,
	PROXY_CH_DATA_END,
	PROXY_CH_TRAILER,
};

struct proxy_idle;
struct proxy_tunnel;

struct proxy_req {
	struct proxy_pool *pool;
	struct http_request *rq; /* NULL once MHD is done with the request */
	struct MHD_Connection *mc;
	struct gen *gen; /* keeps loc and up alive across a reload */
	const struct config_location *loc;
	const struct config_upstream *up;
	unsigned refs; /* the request; the response's body reader */
	LIST_ENTRY(proxy_req) link; /* pool->reqs */
	char client[64];
	bool head_request;
	bool upgrade;

	enum proxy_phase phase;
	enum proxy_wait wait;
	bool suspended;

	/* The upstream connection. */
	int fd;
	struct loop_watch watch;
	struct loop_timer timer;
	size_t first_server, srv, tries;
	bool reused; /* came from the pool: may have been closed under us */

	/* Toward the upstream: the request head, then the body. */
	char *obuf;
	size_t olen, osent, ocap;
	bool replayable; /* everything sent so far is still in obuf */
	enum proxy_framing req_framing;
	bool req_done;	   /* final call seen: the body is all in obuf */
	bool discard_body; /* the upstream stopped reading: drop the rest */

	/* From the upstream. */
	char *ibuf;
	size_t ilen, ioff;
	bool head_done, body_complete, keepalive;
	unsigned status;
	struct MHD_Response *resp; /* built from the head, not yet queued */
	enum proxy_framing framing;
	uint64_t remaining; /* LENGTH: body left; CHUNKED: chunk left */
	enum proxy_chunk_state chunk_state;

	unsigned fail_status;
	struct proxy_tunnel *tunnel;
};

struct proxy_pool {
	struct loop *loop;
	void (*wake)(void *arg); /* run MHD soon (see proxy_pool_new) */
	void *wake_arg;
	LIST_HEAD(, proxy_idle) idle; /* most recently used first */
	LIST_HEAD(, proxy_req) reqs;  /* live requests */
	unsigned rr;
	bool stopping;
};

static inline const char *proxy_server_text(const struct proxy_req *pr)
{
	return pr->up->servers[pr->srv].text;
}

/* proxy.c */
void proxy_resume(struct proxy_req *pr);
ssize_t proxy_body_reader(void *cls, uint64_t pos, char *buf, size_t max);
void proxy_body_reader_free(void *cls);
void proxy_upgrade_cb(void *cls, struct MHD_Connection *mc, void *req_cls,
		      const char *extra_in, size_t extra_in_size,
		      MHD_socket sock, struct MHD_UpgradeResponseHandle *urh);

/* proxy_upstream.c */
void proxy_idle_free_all(struct proxy_pool *p);
void proxy_close_upstream(struct proxy_req *pr);
void proxy_upstream_done(struct proxy_req *pr);
void proxy_fail(struct proxy_req *pr, unsigned status, const char *note,
		const char *detail);
void proxy_update_watch(struct proxy_req *pr);
void proxy_progress(struct proxy_req *pr);
void proxy_send(struct proxy_req *pr);
void proxy_connect(struct proxy_req *pr, bool allow_pool);

/* proxy_headers.c */
void proxy_name_norm(const char *in, char *out, size_t cap);
bool proxy_has_token(const char *value, const char *token);
/* Append the tokens of a Connection header's VALUE to LIST (canonical
 * names, each followed by ","; what proxy_has_token reads). A value is
 * dropped when LIST is full. */
void proxy_conn_tokens_add(char *list, size_t cap, const char *value);
bool proxy_is_hop_by_hop(const char *norm);
int proxy_build_head(struct proxy_req *pr);

#endif

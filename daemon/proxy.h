/* SPDX-License-Identifier: MIT */
/*
 * Reverse proxy: HTTP/1.1 to upstreams over non-blocking sockets on the
 * worker's event loop, with a per-worker pool of idle keep-alive
 * connections. The client's MHD connection is suspended while the proxy
 * waits for the upstream (request body backpressure, response head,
 * response body) and resumed when it can go on, so a worker never blocks.
 * Adds the verified client identity as headers, after removing any
 * incoming header that could forge it.
 */
#ifndef MTLSGW_PROXY_H
#define MTLSGW_PROXY_H

#include <stddef.h>
#include <microhttpd.h>

#define PROXY_BUF_SIZE		   (32 * 1024) /* request out / response head in */
#define PROXY_BLOCK_SIZE	   (64 * 1024) /* MHD's buffer for response bodies */
#define PROXY_TUNNEL_BUF_SIZE	   (16 * 1024) /* per direction, WebSocket */
#define PROXY_IDLE_TIMEOUT_MS	   60000 /* idle pooled upstream connection */
#define PROXY_MAX_RESPONSE_HEADERS 128

struct http_request;
struct loop;
struct proxy_pool;

/* One per worker (per HTTP server): idle upstream connections and the
 * requests under way. Not thread-safe: the worker's thread only. */
/* WAKE(WAKE_ARG) asks the HTTP server to run MHD soon, after the proxy
 * resumed a connection (external polling has no ITC to do it). */
struct proxy_pool *proxy_pool_new(struct loop *l, void (*wake)(void *arg),
				  void *wake_arg);
/* Before MHD_stop_daemon: end every tunnel and resume every connection
 * the proxy suspended (MHD refuses to stop with suspended ones). */
void proxy_pool_stop(struct proxy_pool *p);
void proxy_pool_free(struct proxy_pool *p);

/*
 * The access handler for a location with proxy_pass, called for every
 * MHD call of an admitted request: the headers call, each body chunk and
 * the final call (possibly repeated after a resume).
 */
enum MHD_Result proxy_handle(struct http_request *rq, const char *upload_data,
			     size_t *upload_data_size);

#endif

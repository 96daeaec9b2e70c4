/* SPDX-License-Identifier: MIT */
/*
 * Per-identity connection, request and bandwidth limits ([limits...] and
 * [bpf] in the config). Three modes:
 *   bpf        eBPF programs attached to the daemon's cgroup v2 count and
 *              enforce in the kernel (bpf/mtlsgw.bpf.c); maps and links are
 *              pinned under /sys/fs/bpf/mtlsgw/<instance>/ and survive
 *              restarts; bandwidth limits are enforced per packet.
 *   userspace  the same limiter code (include/mtlsgw_limiter.h) in this
 *              process: max_conns, conn_rate/burst, req_rate/burst; no
 *              bandwidth limits, no counters outside the process.
 *   off        nothing is counted or limited.
 * An identity is the client certificate's SHA-256 fingerprint when it was
 * verified, else the client's address prefix ([limits]
 * anonymous_prefix_v4/_v6; each prefix is limited by [limits anonymous]).
 * Limits never fail open: a connection for which no limiter state can be
 * had (state table full of busy identities, no memory) is refused.
 *
 * limits_new(), limits_reload() and limits_free() run in the main thread;
 * limits_admit(), limits_request() and limits_release() from any worker
 * thread, concurrently.
 */
#ifndef MTLSGW_LIMITS_H
#define MTLSGW_LIMITS_H

#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "identity.h"

struct limits;

/*
 * Set up the mode cfg->bpf_mode asks for and log one line saying which is
 * in force. BPF mode moves the process into a cgroup of its own when it
 * sits in the root cgroup: call this before creating any listening socket
 * (sockets belong to the cgroup of their creator, accepted ones to their
 * listener's). NULL on failure (mode = required without BPF, or no
 * memory), with the reason logged.
 */
struct limits *limits_new(const struct config *cfg);

/*
 * After the TLS handshake, before any HTTP: bind TCP_FD to the client's
 * identity (ID if verified, else PEER) and count the connection.
 * 0 admitted; 1 refused by a limit (answer 429 with Retry-After:
 * *RETRY_AFTER_S and close); 2 refused because no limiter state could be
 * had (answer as for 1; logged here, rate-limited); -1 internal error,
 * errno set, not logged here (log it and refuse as for 2). Call
 * limits_release() at close for 0 only.
 */
int limits_admit(struct limits *l, int tcp_fd, const struct identity *id,
		 const struct sockaddr *peer, socklen_t peer_len,
		 unsigned *retry_after_s);

/*
 * One HTTP request on an admitted connection. 0 ok; 1 over req_rate, or
 * no limiter state (answer that request 429 with Retry-After, keep the
 * connection);
 * -1 internal error, errno set, not logged here (serve it).
 */
int limits_request(struct limits *l, int tcp_fd, unsigned *retry_after_s);

/* The connection on TCP_FD is closing (call before close()). A no-op in
 * bpf mode, where the kernel sees the socket go away. */
void limits_release(struct limits *l, int tcp_fd);

/*
 * SIGHUP: apply CFG's [limits...] sections. Entries the config names are
 * (re)written; entries an earlier config wrote and CFG no longer names are
 * removed; entries an operator added with bpftool (from_config = 0) stay.
 * The mode and the instance do not change until a restart. 0 or -1 (the
 * old limits stay in force, reason logged).
 */
int limits_reload(struct limits *l, const struct config *cfg);

/*
 * Bytes sent to the identity NAME (a fingerprint) as its cert_stats entry
 * counts them: IP bytes from admission on, what bandwidth_out meters.
 * 0 with *BYTES set (0 when it has no entry); -1 with errno ENOTSUP when
 * nothing counts bytes (userspace and off modes). Any thread; one
 * syscall (the fleet's sync thread reads its active identities so).
 */
int limits_bytes_out(struct limits *l, const char *name, uint64_t *bytes);

/* "bpf", "userspace" or "off". */
const char *limits_mode_name(const struct limits *l);

/*
 * Release the handle. In bpf mode the pinned maps and links stay: the
 * programs keep counting and enforcing for connections still open, and
 * the next start picks the counters up. NULL is a no-op.
 */
void limits_free(struct limits *l);

#endif

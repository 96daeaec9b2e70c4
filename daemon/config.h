/* SPDX-License-Identifier: MIT */
/*
 * Parsed configuration: plain structs built whole by config_load(), never
 * modified afterwards, swapped in as a unit on reload. Every default is a
 * #define here. Relative paths are already resolved against the config
 * file's folder. Each value remembers the line it came from so that later
 * checks (tls.c: key does not match certificate) can say FILE:LINE.
 */
#ifndef MTLSGW_CONFIG_H
#define MTLSGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTEN	  16
#define CONFIG_MAX_WORKERS	  64
#define CONFIG_DEFAULT_LISTEN	  "127.0.0.1:8443"
#define CONFIG_DEFAULT_ACCESS_LOG "stderr"
#define CONFIG_DEFAULT_ERROR_LOG  "stderr"
#define CONFIG_DEFAULT_LOG_LEVEL  "info"
/* Limits: connections per process, request line + headers (bytes),
 * request bodies on non-proxied paths (bytes). */
#define CONFIG_DEFAULT_MAX_CONNECTIONS 10000
#define CONFIG_DEFAULT_MAX_HEADER_SIZE (16 * 1024)
#define CONFIG_DEFAULT_MAX_BODY_SIZE   (1024 * 1024)
/* Idle keep-alive or stalled request; graceful stop deadline. */
#define CONFIG_DEFAULT_REQUEST_TIMEOUT_MS	   60000
#define CONFIG_DEFAULT_DRAIN_TIMEOUT_MS		   10000
#define CONFIG_DEFAULT_VERIFY_DEPTH		   2
#define CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS	   10000
#define CONFIG_DEFAULT_OCSP_TIMEOUT_MS		   2000
#define CONFIG_DEFAULT_OCSP_CACHE_SIZE		   10000
#define CONFIG_DEFAULT_CRL_CHECK_INTERVAL_MS	   30000
#define CONFIG_DEFAULT_INDEX			   "index.html"
#define CONFIG_DEFAULT_HEADER_PREFIX		   "X-Client-"
#define CONFIG_DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS 2000
#define CONFIG_DEFAULT_UPSTREAM_READ_TIMEOUT_MS	   30000
#define CONFIG_DEFAULT_UPSTREAM_KEEPALIVE	   32
#define CONFIG_DEFAULT_BPF_INSTANCE		   "default"
#define CONFIG_DEFAULT_ANONYMOUS_PREFIX_V4	   32
#define CONFIG_DEFAULT_ANONYMOUS_PREFIX_V6	   64
#define CONFIG_MAX_UPSTREAM_SERVERS		   16
#define CONFIG_DEFAULT_FLEET_SYNC_MS		   200
#define CONFIG_DEFAULT_FLEET_KEY_PREFIX		   "mtlsgw:"
/* SIGTERM: keep accepting (with /ready at 503) this long, then drain. */
#define CONFIG_DEFAULT_DRAIN_DELAY_MS 0
#define CONFIG_MAX_PROXY_FROM	      64

enum config_client_cert {
	CONFIG_CLIENT_CERT_NONE,     /* certificate ignored for policy */
	CONFIG_CLIENT_CERT_OPTIONAL, /* default: allow lists apply if presented
				      */
	CONFIG_CLIENT_CERT_REQUIRE,  /* no verified certificate: 403 */
};

enum config_ktls { CONFIG_KTLS_AUTO, CONFIG_KTLS_ON, CONFIG_KTLS_OFF };
enum config_bpf_mode { CONFIG_BPF_AUTO, CONFIG_BPF_REQUIRED, CONFIG_BPF_OFF };
enum config_ocsp { CONFIG_OCSP_OFF, CONFIG_OCSP_LEAF, CONFIG_OCSP_CHAIN };
enum config_ocsp_fail { CONFIG_OCSP_FAIL_CLOSED, CONFIG_OCSP_FAIL_OPEN };
/* [limits] fleet_fail: what fleet limits become once Redis has been
 * unreachable for longer than the hold time (daemon/fleet.h). */
enum config_fleet_fail { CONFIG_FLEET_FAIL_STATIC, CONFIG_FLEET_FAIL_LOCAL };

/* A socket address given as "127.0.0.1:8443", "[::1]:8443" or "*:8443". */
struct config_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64]; /* as written, for logs */
};

struct config_listen {
	struct config_addr addr;
	bool proxy_protocol; /* "listen = 127.0.0.1:8443 proxy_protocol" */
	int line;
};

/* "proxy_from = 10.0.0.0/8, 2001:db8::/32": a source network allowed to
 * send PROXY headers. ADDR is the network in network byte order, host
 * bits zero (config_values.c refuses others). */
struct config_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix; /* bits */
	int line;
};

/* A repeatable key: every occurrence appends. */
struct config_strlist {
	char **items;
	size_t count;
};

struct config_location {
	char *prefix; /* from "[location PREFIX]"; no trailing '/' except "/" */
	int line;     /* of the section header */
	enum config_client_cert client_cert;
	/* Exactly one handler: root (files), return_status, or proxy_upstream.
	 */
	char *root; /* absolute, realpath()ed at load; NULL if none */
	char *index;
	int return_status; /* 0 = not a "return" location */
	char *return_body;
	/* Allow lists, OR-ed; any set => a verified cert must match one. */
	struct config_strlist allow_subject;	 /* RFC 2253 DN, or "CN=..." */
	struct config_strlist allow_san;	 /* DNS name or URI */
	struct config_strlist allow_fingerprint; /* lowercase hex, no colons */
	/* Reverse proxy: "proxy_pass = http://NAME_OR_HOST:PORT/path/" */
	char *proxy_upstream; /* upstream name, or NULL */
	char *proxy_path;     /* replaces the matched prefix; "" if none */
	bool forward_cert;
	bool websocket;
	bool metrics;	     /* "metrics = yes": Prometheus text of metrics.c */
	bool ready;	     /* "ready = yes": 200, or 503 (ready.c) */
	char *header_prefix; /* default CONFIG_DEFAULT_HEADER_PREFIX */
};

struct config_upstream {
	char *name; /* "[upstream NAME]", or "host:port" for an inline one */
	int line;
	struct config_addr servers[CONFIG_MAX_UPSTREAM_SERVERS];
	size_t n_servers;
	unsigned connect_timeout_ms;
	unsigned read_timeout_ms;
	unsigned keepalive;
};

/* Rate-limit settings for one identity class. 0 = unlimited. */
#define CONFIG_LIMIT_MAX_CONNS	(1u << 0)
#define CONFIG_LIMIT_CONN_RATE	(1u << 1)
#define CONFIG_LIMIT_CONN_BURST (1u << 2)
#define CONFIG_LIMIT_REQ_RATE	(1u << 3)
#define CONFIG_LIMIT_REQ_BURST	(1u << 4)
#define CONFIG_LIMIT_BW_OUT	(1u << 5)
#define CONFIG_LIMIT_BW_IN	(1u << 6)

/* The fleet-wide ones (daemon/fleet.h). */
#define CONFIG_LIMIT_FLEET_MAX_CONNS (1u << 7)
#define CONFIG_LIMIT_FLEET_REQ_RATE  (1u << 8)
#define CONFIG_LIMIT_FLEET_BW_OUT    (1u << 9)
struct config_limit {
	char key[72]; /* "default", "anonymous" or 64 lowercase hex chars */
	int line;
	uint32_t set;	     /* CONFIG_LIMIT_* bits present in this section */
	uint64_t max_conns;  /* concurrent */
	uint64_t conn_rate;  /* new connections per second */
	uint64_t conn_burst; /* bucket size */
	uint64_t req_rate;   /* requests per second */
	uint64_t req_burst;
	uint64_t bandwidth_out; /* bytes per second */
	uint64_t bandwidth_in;
	/* Whole fleet (every gateway sharing [fleet] redis); 0 = none. */
	uint64_t fleet_max_conns;
	uint64_t fleet_req_rate;      /* per second, fixed 1 s windows */
	uint64_t fleet_bandwidth_out; /* bytes per second, fixed windows */
	int fleet_fail;		      /* enum config_fleet_fail; [limits] */
};

struct config {
	char *path; /* as given */
	char *dir;  /* absolute folder of the file; relative paths use it */

	/* [server] */
	struct config_listen listen[CONFIG_MAX_LISTEN];
	size_t n_listen;
	unsigned workers; /* "auto" => number of online CPUs */
	char *access_log; /* "stderr", "off" or an absolute path */
	char *error_log;
	char *log_level; /* "error" | "warn" | "info" | "debug" */
	unsigned max_connections;
	size_t max_header_size;
	size_t max_body_size;
	unsigned request_timeout_ms;
	unsigned drain_timeout_ms;
	unsigned drain_delay_ms; /* SIGTERM: /ready 503, accept this long */
	/* Who may send a PROXY header on a proxy_protocol listener; none
	 * listed = anyone (start-up warns). */
	struct config_cidr proxy_from[CONFIG_MAX_PROXY_FROM];
	size_t n_proxy_from;
	char *user; /* drop to this user after start-up; NULL = stay */
	char *pid_file;

	/* [tls] */
	char *cert, *key, *client_ca, *crl; /* crl NULL if unset */
	int cert_line, key_line, client_ca_line, crl_line;
	unsigned verify_depth;
	int min_version; /* TLS1_2_VERSION or TLS1_3_VERSION */
	unsigned handshake_timeout_ms;
	enum config_ktls ktls;
	bool session_tickets; /* default yes */
	/* Revocation beyond the CRL file (ocsp.c, crl.c). */
	enum config_ocsp ocsp;
	char *ocsp_responder; /* NULL: the certificate's AIA URL */
	int ocsp_responder_line;
	unsigned ocsp_timeout_ms;
	enum config_ocsp_fail ocsp_fail;
	unsigned ocsp_cache_size;	/* per worker */
	unsigned crl_check_interval_ms; /* 0: re-read on SIGHUP only */

	/* [location ...], in file order; matching uses longest prefix. */
	struct config_location *locations;
	size_t n_locations;

	/* [upstream NAME] plus inline host:port upstreams from proxy_pass. */
	struct config_upstream *upstreams;
	size_t n_upstreams;

	/* [limits], [limits anonymous], [limits sha256:HEX] */
	struct config_limit limit_default;
	struct config_limit
		limit_anonymous; /* inherits unset keys from default */
	struct config_limit *limit_overrides;
	size_t n_limit_overrides;
	/* [limits] only: clients without a certificate are keyed by their
	 * address's prefix of this length (bits) */
	unsigned anonymous_prefix_v4, anonymous_prefix_v6;

	/* [bpf] */
	enum config_bpf_mode bpf_mode;
	char *bpf_instance;

	/* [fleet]; fleet off when redis is empty */
	struct config_strlist fleet_redis; /* host:port or unix:/path */
	char *fleet_sentinel_master;	   /* redis = Sentinel addresses */
	char *fleet_password_file;
	unsigned fleet_sync_ms;
	char *fleet_key_prefix;
	char *fleet_host_id; /* "auto" => hostname */
	bool fleet_required; /* /ready 503 while Redis is unreachable */
	bool fleet_cluster;  /* redis = seed nodes of a Redis Cluster */
	int fleet_line;	     /* of the [fleet] header, 0 if none */
};

/*
 * Parse and check PATH. On success *out is a complete config and 0 is
 * returned. On failure every problem found is printed to ERRORS as
 * "FILE:LINE: message" (one per line) and -1 is returned.
 */
int config_load(const char *path, FILE *errors, struct config **out);
void config_free(struct config *cfg);

/* "sha256:AB:CD:..", "abcd..." -> 64 lowercase hex digits in OUT (colons
 * ignored, as openssl x509 -fingerprint prints them); -1 if not that. */
int config_normalise_fingerprint(const char *in, char out[65]);

/* The upstream a location proxies to, or NULL. */
const struct config_upstream *config_find_upstream(const struct config *cfg,
						   const char *name);

#endif

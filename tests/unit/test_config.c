// SPDX-License-Identifier: MIT
/*
 * config_load(): the documented examples parse to the right values, and
 * every kind of mistake is refused with the right "FILE:LINE: message".
 * Certificates are dummy files: the loader only checks that they exist
 * and can be read (tls.c parses them).
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/tls1.h>

#include "daemon/config.h"

#define TLS_OK                                                                 \
	"[tls]\n"                                                              \
	"cert = ../certs/server.crt\n"                                         \
	"key = ../certs/server.key\n"                                          \
	"client_ca = ../certs/client-ca.pem\n"

#define FP_LOWER                                                               \
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define FP_COLONS                                                              \
	"sha256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"              \
	"00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"

static char tmpdir[] = "/tmp/mtlsgw-test-config-XXXXXX";
static char conf_path[600];
static char conf_dir[100];
static char *errs; /* error output of the last load */
static size_t errs_len;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int group_setup(void **state)
{
	char p[600];

	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(conf_dir, sizeof(conf_dir), "%s/conf", tmpdir);
	snprintf(conf_path, sizeof(conf_path), "%s/test.conf", conf_dir);
	snprintf(p, sizeof(p), "%s/certs", tmpdir);
	if (mkdir(conf_dir, 0755) || mkdir(p, 0755))
		return -1;
	snprintf(p, sizeof(p), "%s/www", conf_dir);
	if (mkdir(p, 0755))
		return -1;
	snprintf(p, sizeof(p), "%s/certs/a-directory.pem", tmpdir);
	if (mkdir(p, 0755))
		return -1;
	static const char *const files[] = {"server.crt", "server.key",
					    "client-ca.pem", "crl.pem"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/certs/%s", tmpdir, files[i]);
		write_file(p, "dummy\n");
	}
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_teardown(void **state)
{
	(void)state;
	free(errs);
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes TEXT to conf/test.conf and loads it; errors go to `errs`. */
static int load(const char *text, struct config **cfg)
{
	FILE *mem;
	int rc;

	write_file(conf_path, text);
	free(errs);
	errs = NULL;
	mem = open_memstream(&errs, &errs_len);
	assert_non_null(mem);
	rc = config_load(conf_path, mem, cfg);
	fclose(mem);
	if (rc == 0)
		assert_non_null(*cfg);
	else
		assert_null(*cfg);
	return rc;
}

static struct config *load_ok(const char *text)
{
	struct config *cfg = NULL;

	if (load(text, &cfg)) {
		print_error("unexpected errors:\n%s", errs);
		fail();
	}
	assert_string_equal(errs, "");
	return cfg;
}

/* Loading TEXT fails, and one error line starts with "FILE:LINE: " and
 * contains MSG. */
static void expect_error_at(const char *text, int line, const char *msg)
{
	struct config *cfg = NULL;
	char head[700];
	const char *p, *eol;
	size_t hlen;

	assert_int_equal(load(text, &cfg), -1);
	hlen = (size_t)snprintf(head, sizeof(head), "%s:%d: ", conf_path, line);
	for (p = errs; *p; p = *eol ? eol + 1 : eol) {
		eol = strchr(p, '\n');
		if (!eol)
			eol = p + strlen(p);
		if (!strncmp(p, head, hlen) &&
		    memmem(p + hlen, (size_t)(eol - p) - hlen, msg,
			   strlen(msg)))
			return;
	}
	print_error("wanted: %s... %s ...\ngot:\n%s", head, msg, errs);
	fail();
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void path_in(char *out, size_t len, const char *rel)
{
	char *real;

	snprintf(out, len, "%s/%s", tmpdir, rel);
	real = realpath(out, NULL);
	assert_non_null(real);
	snprintf(out, len, "%s", real);
	free(real);
}

static unsigned short addr_port(const struct config_addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

/* ---- the documented examples */

static void test_demo_config(void **state)
{
	/* conf/mtlsgw.conf as issue 2 shows it, comments included */
	static const char text[] =
		"[server]\n"
		"listen = 127.0.0.1:8443          ; repeatable; [::1]:8443 "
		"works too\n"
		"workers = auto                    ; worker threads, auto = "
		"number of cores\n"
		"access_log = stderr               ; or a file path\n"
		"[tls]\n"
		"cert = ../certs/server.crt\n"
		"key = ../certs/server.key\n"
		"client_ca = ../certs/client-ca.pem\n"
		"crl = ../certs/crl.pem            ; optional\n"
		"verify_depth = 2\n"
		"min_version = 1.2                 ; 1.2 or 1.3\n"
		"handshake_timeout = 10s\n"
		"[location /]\n"
		"root = www                        ; conf/www: the article's "
		"pages\n"
		"[location /protected]\n"
		"client_cert = require             ; none | optional (default) "
		"| require\n"
		"root = www\n"
		"[location /health]\n"
		"return = 200 ok\n";
	struct config *cfg = load_ok(text);
	const struct sockaddr_in *sin;
	char p[600];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	(void)state;
	assert_int_equal(cfg->n_listen, 1);
	sin = (const struct sockaddr_in *)&cfg->listen[0].addr.ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(ntohs(sin->sin_port), 8443);
	assert_int_equal(cfg->listen[0].addr.len, sizeof(struct sockaddr_in));
	assert_string_equal(cfg->listen[0].addr.text, "127.0.0.1:8443");
	assert_false(cfg->listen[0].proxy_protocol);
	assert_int_equal(cfg->listen[0].line, 2);
	assert_int_equal(cfg->workers,
			 ncpu > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : ncpu);
	assert_string_equal(cfg->access_log, "stderr");

	path_in(p, sizeof(p), "certs/server.crt");
	assert_string_equal(cfg->cert, p);
	assert_int_equal(cfg->cert_line, 6);
	path_in(p, sizeof(p), "certs/server.key");
	assert_string_equal(cfg->key, p);
	assert_int_equal(cfg->key_line, 7);
	path_in(p, sizeof(p), "certs/client-ca.pem");
	assert_string_equal(cfg->client_ca, p);
	assert_int_equal(cfg->client_ca_line, 8);
	path_in(p, sizeof(p), "certs/crl.pem");
	assert_string_equal(cfg->crl, p);
	assert_int_equal(cfg->crl_line, 9);
	assert_int_equal(cfg->verify_depth, 2);
	assert_int_equal(cfg->min_version, TLS1_2_VERSION);
	assert_int_equal(cfg->handshake_timeout_ms, 10000);

	assert_int_equal(cfg->n_locations, 3);
	path_in(p, sizeof(p), "conf/www");
	assert_string_equal(cfg->locations[0].prefix, "/");
	assert_int_equal(cfg->locations[0].line, 13);
	assert_int_equal(cfg->locations[0].client_cert,
			 CONFIG_CLIENT_CERT_OPTIONAL);
	assert_string_equal(cfg->locations[0].root, p);
	assert_string_equal(cfg->locations[0].index, CONFIG_DEFAULT_INDEX);
	assert_int_equal(cfg->locations[0].return_status, 0);
	assert_null(cfg->locations[0].proxy_upstream);
	assert_string_equal(cfg->locations[1].prefix, "/protected");
	assert_int_equal(cfg->locations[1].client_cert,
			 CONFIG_CLIENT_CERT_REQUIRE);
	assert_string_equal(cfg->locations[1].root, p);
	assert_string_equal(cfg->locations[2].prefix, "/health");
	assert_null(cfg->locations[2].root);
	assert_int_equal(cfg->locations[2].return_status, 200);
	assert_string_equal(cfg->locations[2].return_body, "ok");

	/* everything not written takes the config.h default */
	assert_string_equal(cfg->error_log, CONFIG_DEFAULT_ERROR_LOG);
	assert_string_equal(cfg->log_level, CONFIG_DEFAULT_LOG_LEVEL);
	assert_int_equal(cfg->max_connections, CONFIG_DEFAULT_MAX_CONNECTIONS);
	assert_int_equal(cfg->max_header_size, CONFIG_DEFAULT_MAX_HEADER_SIZE);
	assert_int_equal(cfg->max_body_size, CONFIG_DEFAULT_MAX_BODY_SIZE);
	assert_int_equal(cfg->request_timeout_ms,
			 CONFIG_DEFAULT_REQUEST_TIMEOUT_MS);
	assert_int_equal(cfg->drain_timeout_ms,
			 CONFIG_DEFAULT_DRAIN_TIMEOUT_MS);
	assert_null(cfg->user);
	assert_null(cfg->pid_file);
	assert_int_equal(cfg->ktls, CONFIG_KTLS_AUTO);
	assert_true(cfg->session_tickets);
	assert_int_equal(cfg->bpf_mode, CONFIG_BPF_AUTO);
	assert_string_equal(cfg->bpf_instance, CONFIG_DEFAULT_BPF_INSTANCE);
	assert_int_equal(cfg->n_upstreams, 0);
	assert_int_equal(cfg->n_limit_overrides, 0);
	assert_string_equal(cfg->limit_default.key, "default");
	assert_int_equal(cfg->limit_default.max_conns, 0);
	config_free(cfg);
}

static void test_upstream_example(void **state)
{
	/* issue 5's example */
	struct config *cfg = load_ok(
		TLS_OK "[upstream orders]\n"
		       "server = 127.0.0.1:9001           ; repeatable: round "
		       "robin\n"
		       "server = 127.0.0.1:9002\n"
		       "connect_timeout = 2s\n"
		       "read_timeout = 30s\n"
		       "keepalive = 32                    ; idle pooled\n"
		       "[location /orders/]\n"
		       "client_cert = require\n"
		       "allow_san = spiffe://corp/ns/web/sa/frontend\n"
		       "proxy_pass = http://orders/api/   ; upstream name\n"
		       "forward_cert = yes\n"
		       "websocket = on\n"
		       "header_prefix = X-Mtls-\n");
	const struct config_upstream *u;
	const struct config_location *loc;

	(void)state;
	assert_int_equal(cfg->n_upstreams, 1);
	u = config_find_upstream(cfg, "orders");
	assert_non_null(u);
	assert_ptr_equal(u, &cfg->upstreams[0]);
	assert_null(config_find_upstream(cfg, "order"));
	assert_int_equal(u->line, 5);
	assert_int_equal(u->n_servers, 2);
	assert_string_equal(u->servers[0].text, "127.0.0.1:9001");
	assert_int_equal(addr_port(&u->servers[1]), 9002);
	assert_int_equal(u->connect_timeout_ms, 2000);
	assert_int_equal(u->read_timeout_ms, 30000);
	assert_int_equal(u->keepalive, 32);

	assert_int_equal(cfg->n_locations, 1);
	loc = &cfg->locations[0];
	assert_string_equal(loc->prefix, "/orders");
	assert_int_equal(loc->client_cert, CONFIG_CLIENT_CERT_REQUIRE);
	assert_int_equal(loc->allow_san.count, 1);
	assert_string_equal(loc->allow_san.items[0],
			    "spiffe://corp/ns/web/sa/frontend");
	assert_string_equal(loc->proxy_upstream, "orders");
	assert_string_equal(loc->proxy_path, "/api/");
	assert_true(loc->forward_cert);
	assert_true(loc->websocket);
	assert_string_equal(loc->header_prefix, "X-Mtls-");
	assert_null(loc->root);
	config_free(cfg);
}

static void test_inline_upstream(void **state)
{
	struct config *cfg =
		load_ok(TLS_OK "[location /a]\n"
			       "proxy_pass = http://127.0.0.1:9001\n"
			       "[location /b]\n"
			       "proxy_pass = http://127.0.0.1:9001/b\n"
			       "[location /c]\n"
			       "proxy_pass = http://[::1]:9002/\n");
	const struct config_upstream *u;

	(void)state;
	assert_int_equal(cfg->n_upstreams, 2); /* /a and /b share one */
	u = config_find_upstream(cfg, "127.0.0.1:9001");
	assert_non_null(u);
	assert_int_equal(u->n_servers, 1);
	assert_int_equal(addr_port(&u->servers[0]), 9001);
	assert_int_equal(u->connect_timeout_ms,
			 CONFIG_DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS);
	assert_int_equal(u->read_timeout_ms,
			 CONFIG_DEFAULT_UPSTREAM_READ_TIMEOUT_MS);
	assert_int_equal(u->keepalive, CONFIG_DEFAULT_UPSTREAM_KEEPALIVE);
	u = config_find_upstream(cfg, "[::1]:9002");
	assert_non_null(u);
	assert_int_equal(u->servers[0].ss.ss_family, AF_INET6);
	assert_string_equal(cfg->locations[0].proxy_upstream, "127.0.0.1:9001");
	assert_string_equal(cfg->locations[0].proxy_path, "");
	assert_string_equal(cfg->locations[1].proxy_path, "/b");
	assert_string_equal(cfg->locations[2].proxy_upstream, "[::1]:9002");
	assert_string_equal(cfg->locations[2].proxy_path, "/");
	config_free(cfg);
}

static void test_limits_inheritance(void **state)
{
	/* issue 4's example, plus partial anonymous and override sections */
	struct config *cfg = load_ok(
		TLS_OK "[limits]                    ; defaults\n"
		       "max_conns = 100\n"
		       "conn_rate = 50/s\n"
		       "conn_burst = 100\n"
		       "req_rate = 1000/s\n"
		       "req_burst = 2000\n"
		       "bandwidth_out = 100M        ; bytes per second\n"
		       "bandwidth_in = 10M\n"
		       "[limits " FP_COLONS "]\n"
		       "max_conns = 2\n"
		       "req_rate = 0\n"
		       "[limits anonymous]\n"
		       "conn_rate = 3000/m\n"
		       "bandwidth_in = 1K\n"
		       "[bpf]\n"
		       "mode = required\n"
		       "instance = test_1-a\n");
	const struct config_limit *d = &cfg->limit_default;
	const struct config_limit *a = &cfg->limit_anonymous;
	const struct config_limit *o;

	(void)state;
	assert_string_equal(d->key, "default");
	assert_int_equal(d->max_conns, 100);
	assert_int_equal(d->conn_rate, 50);
	assert_int_equal(d->conn_burst, 100);
	assert_int_equal(d->req_rate, 1000);
	assert_int_equal(d->req_burst, 2000);
	assert_int_equal(d->bandwidth_out, 100ull << 20);
	assert_int_equal(d->bandwidth_in, 10ull << 20);
	assert_int_equal(d->set, 0x7f);

	assert_int_equal(cfg->n_limit_overrides, 1);
	o = &cfg->limit_overrides[0];
	assert_string_equal(o->key, FP_LOWER);
	assert_int_equal(o->line, 13);
	assert_int_equal(o->set,
			 CONFIG_LIMIT_MAX_CONNS | CONFIG_LIMIT_REQ_RATE);
	assert_int_equal(o->max_conns, 2);
	assert_int_equal(o->req_rate, 0); /* set to unlimited, not inherited */
	assert_int_equal(o->conn_rate, 50);
	assert_int_equal(o->conn_burst, 100);
	assert_int_equal(o->req_burst, 2000);
	assert_int_equal(o->bandwidth_out, 100ull << 20);
	assert_int_equal(o->bandwidth_in, 10ull << 20);

	assert_string_equal(a->key, "anonymous");
	assert_int_equal(a->set, CONFIG_LIMIT_CONN_RATE | CONFIG_LIMIT_BW_IN);
	assert_int_equal(a->conn_rate, 50); /* 3000/m */
	assert_int_equal(a->bandwidth_in, 1024);
	assert_int_equal(a->max_conns, 100);
	assert_int_equal(a->req_rate, 1000);
	assert_int_equal(a->bandwidth_out, 100ull << 20);

	assert_int_equal(cfg->bpf_mode, CONFIG_BPF_REQUIRED);
	assert_string_equal(cfg->bpf_instance, "test_1-a");
	config_free(cfg);
}

static void test_units(void **state)
{
	struct config *cfg =
		load_ok("[server]\n"
			"workers = 3\n"
			"request_timeout = 500ms\n"
			"drain_timeout = 2m\n"
			"max_header_size = 16K\n"
			"max_body_size = 1G\n"
			"max_connections = 5\n"
			"log_level = debug\n"
			"access_log = off\n"
			"error_log = logs/error.log\n"
			"pid_file = /run/mtlsgw.pid\n"
			"user = www-data\n" TLS_OK "handshake_timeout = 7\n"
			"min_version = 1.3\n"
			"ktls = off\n"
			"session_tickets = false\n"
			"verify_depth = 0\n"
			"[upstream u]\n"
			"server = 127.0.0.1:1\n"
			"read_timeout = 1h\n"
			"keepalive = 0\n"
			"[limits]\n"
			"req_rate = 36000/h\n"
			"conn_rate = 7\n"
			"bandwidth_out = 512K/s\n"
			"bandwidth_in = 123\n");
	char p[600];

	(void)state;
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->request_timeout_ms, 500);
	assert_int_equal(cfg->drain_timeout_ms, 120000);
	assert_int_equal(cfg->max_header_size, 16384);
	assert_int_equal(cfg->max_body_size, 1ull << 30);
	assert_int_equal(cfg->max_connections, 5);
	assert_string_equal(cfg->log_level, "debug");
	assert_string_equal(cfg->access_log, "off");
	snprintf(p, sizeof(p), "%s/logs/error.log", conf_dir);
	assert_string_equal(cfg->error_log, p);
	assert_string_equal(cfg->pid_file, "/run/mtlsgw.pid");
	assert_string_equal(cfg->user, "www-data");
	assert_int_equal(cfg->handshake_timeout_ms, 7000);
	assert_int_equal(cfg->min_version, TLS1_3_VERSION);
	assert_int_equal(cfg->ktls, CONFIG_KTLS_OFF);
	assert_false(cfg->session_tickets);
	assert_int_equal(cfg->verify_depth, 0);
	assert_int_equal(cfg->upstreams[0].read_timeout_ms, 3600000);
	assert_int_equal(cfg->upstreams[0].keepalive, 0);
	assert_int_equal(cfg->limit_default.req_rate, 10);
	assert_int_equal(cfg->limit_default.conn_rate, 7);
	assert_int_equal(cfg->limit_default.bandwidth_out, 512 * 1024);
	assert_int_equal(cfg->limit_default.bandwidth_in, 123);
	/* no listen line: the default one */
	assert_int_equal(cfg->n_listen, 1);
	assert_string_equal(cfg->listen[0].addr.text, CONFIG_DEFAULT_LISTEN);
	config_free(cfg);
}

static void test_listen_forms(void **state)
{
	struct config *cfg =
		load_ok("[server]\n"
			"listen = 127.0.0.1:8443\n"
			"listen = [::1]:8443 proxy_protocol\n"
			"listen = *:9443\n"
			"listen = [::]:9443   proxy_protocol  ; x\n"
			"workers = 1\n" TLS_OK);
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	(void)state;
	assert_int_equal(cfg->n_listen, 4);
	assert_false(cfg->listen[0].proxy_protocol);
	sin6 = (const struct sockaddr_in6 *)&cfg->listen[1].addr.ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	assert_int_equal(ntohs(sin6->sin6_port), 8443);
	assert_int_equal(cfg->listen[1].addr.len, sizeof(*sin6));
	assert_true(cfg->listen[1].proxy_protocol);
	assert_string_equal(cfg->listen[1].addr.text, "[::1]:8443");
	sin = (const struct sockaddr_in *)&cfg->listen[2].addr.ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(ntohs(sin->sin_port), 9443);
	sin6 = (const struct sockaddr_in6 *)&cfg->listen[3].addr.ss;
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
	assert_true(cfg->listen[3].proxy_protocol);
	assert_int_equal(cfg->listen[3].line, 5);
	assert_int_equal(cfg->workers, 1);
	config_free(cfg);
}

static void test_listen_errors(void **state)
{
	(void)state;
	expect_error_at("[server]\nlisten = ::1:8443\n" TLS_OK, 2,
			"bad value '::1:8443' for listen: an IPv6 address "
			"needs brackets");
	expect_error_at("[server]\nlisten = 127.0.0.1\n" TLS_OK, 2,
			"bad value '127.0.0.1' for listen: expected HOST:PORT");
	expect_error_at("[server]\nlisten = 127.0.0.1:0\n" TLS_OK, 2,
			"port must be a number from 1 to 65535");
	expect_error_at("[server]\nlisten = 127.0.0.1:65536\n" TLS_OK, 2,
			"port must be a number from 1 to 65535");
	expect_error_at("[server]\nlisten = [::1:80\n" TLS_OK, 2,
			"expected [IPV6]:PORT");
	expect_error_at("[server]\nlisten = 127.0.0.1:80 proxy\n" TLS_OK, 2,
			"bad value '127.0.0.1:80 proxy' for listen: expected "
			"ADDRESS:PORT [proxy_protocol]");
	expect_error_at("[server]\nlisten = 127.0.0.1:80\n"
			"listen = 127.0.0.1:80 proxy_protocol\n" TLS_OK,
			3, "duplicate listen 127.0.0.1:80 (first at line 2)");
}

static void test_comments_and_layout(void **state)
{
	/* inline "; comment" only after whitespace; '#' and ';' comment
	 * lines; indented keys are keys, not continuations; CRLF ends */
	struct config *cfg =
		load_ok("# a comment\r\n"
			"; another\r\n"
			"\r\n"
			"[server]   ; the server\r\n"
			"    workers = 2\r\n"
			"\tlog_level = warn\r\n" TLS_OK "[location /x]\n"
			"  return = 403 go away ; not part of the body\n"
			"  allow_subject = CN=a;b\n"
			"  allow_subject = CN=client1,O=mtlsgw demo\n"
			"[location /y] # why not\n"
			"return = 204\n");

	(void)state;
	assert_int_equal(cfg->workers, 2);
	assert_string_equal(cfg->log_level, "warn");
	assert_int_equal(cfg->locations[0].return_status, 403);
	assert_string_equal(cfg->locations[0].return_body, "go away");
	assert_int_equal(cfg->locations[0].allow_subject.count, 2);
	assert_string_equal(cfg->locations[0].allow_subject.items[0], "CN=a;b");
	assert_string_equal(cfg->locations[0].allow_subject.items[1],
			    "CN=client1,O=mtlsgw demo");
	assert_int_equal(cfg->locations[1].return_status, 204);
	assert_string_equal(cfg->locations[1].return_body, "");
	config_free(cfg);
}

static void test_location_prefix_normalised(void **state)
{
	struct config *cfg =
		load_ok(TLS_OK "[location /]\nreturn = 200\n"
			       "[location /orders/]\nreturn = 200\n"
			       "[location //a//b/]\nreturn = 200\n");

	(void)state;
	assert_int_equal(cfg->n_locations, 3);
	assert_string_equal(cfg->locations[0].prefix, "/");
	assert_string_equal(cfg->locations[1].prefix, "/orders");
	assert_string_equal(cfg->locations[2].prefix, "/a/b");
	assert_int_equal(cfg->locations[2].line, 9);
	config_free(cfg);
}

static void test_fingerprints(void **state)
{
	struct config *cfg =
		load_ok(TLS_OK "[location /]\n"
			       "root = www\n"
			       "allow_fingerprint = " FP_COLONS "\n"
			       "allow_fingerprint = " FP_LOWER "\n"
			       "allow_fingerprint = SHA256:" FP_LOWER "\n");
	const struct config_strlist *l = &cfg->locations[0].allow_fingerprint;

	(void)state;
	assert_int_equal(l->count, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(l->items[i], FP_LOWER);
	config_free(cfg);
}

/* ---- errors, each with its FILE:LINE */

static void test_error_unknown_section(void **state)
{
	(void)state;
	expect_error_at(TLS_OK "[frobnicate]\nx = 1\n", 5,
			"unknown section [frobnicate]");
	expect_error_at(TLS_OK "[tls extra]\n", 5,
			"[tls] takes no argument (got 'extra')");
	expect_error_at(TLS_OK "[server\n", 5, "section header without ']'");
	expect_error_at(TLS_OK "[server] junk\n", 5,
			"unexpected text after ']': 'junk'");
}

static void test_error_unknown_key(void **state)
{
	(void)state;
	expect_error_at("[server]\nlisten_on = 1.2.3.4:5\n" TLS_OK, 2,
			"unknown key 'listen_on' in [server]");
	expect_error_at(TLS_OK "[location /app]\nroot = www\nroots = www\n", 7,
			"unknown key 'roots' in [location /app]");
	/* a key valid elsewhere is unknown in the wrong section */
	expect_error_at(TLS_OK "[upstream u]\nserver = 1.2.3.4:5\nroot = x\n",
			7, "unknown key 'root' in [upstream u]");
	expect_error_at("workers = 2\n" TLS_OK, 1,
			"key 'workers' outside any section");
}

/* proxy_from: lists and repeats add up; drain_delay; ready = yes. */
static void test_load_balancer_keys(void **state)
{
	struct config *cfg;
	unsigned char v6[16];

	(void)state;
	cfg = load_ok("[server]\n"
		      "listen = 127.0.0.1:8443 proxy_protocol\n"
		      "proxy_from = 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32\n"
		      "proxy_from = 127.0.0.1/32\n"
		      "drain_delay = 5s\n" TLS_OK "[location /ready]\n"
		      "ready = yes\n");
	assert_int_equal(cfg->n_proxy_from, 4);
	assert_int_equal(cfg->proxy_from[0].family, AF_INET);
	assert_int_equal(cfg->proxy_from[0].prefix, 8);
	assert_int_equal(cfg->proxy_from[0].addr[0], 10);
	assert_int_equal(cfg->proxy_from[1].prefix, 32);
	assert_int_equal(cfg->proxy_from[1].addr[3], 7);
	assert_int_equal(cfg->proxy_from[2].family, AF_INET6);
	assert_int_equal(cfg->proxy_from[2].prefix, 32);
	inet_pton(AF_INET6, "2001:db8::", v6);
	assert_memory_equal(cfg->proxy_from[2].addr, v6, 16);
	assert_int_equal(cfg->proxy_from[3].line, 4);
	assert_int_equal(cfg->drain_delay_ms, 5000);
	assert_true(cfg->locations[0].ready);
	config_free(cfg);

	cfg = load_ok("[server]\n" TLS_OK);
	assert_int_equal(cfg->n_proxy_from, 0);
	assert_int_equal(cfg->drain_delay_ms, 0);
	config_free(cfg);
}

static void test_error_load_balancer_keys(void **state)
{
	static const struct {
		const char *line, *msg;
	} cases[] = {
		{"proxy_from = 10.0.0.1/8",
		 "bad value '10.0.0.1/8' for proxy_from: '10.0.0.1/8': host "
		 "bits are set"},
		{"proxy_from = 10.0.0.0/33",
		 "'10.0.0.0/33': prefix length must be 0 to 32"},
		{"proxy_from = ::/129",
		 "'::/129': prefix length must be 0 to 128"},
		{"proxy_from = 10.0.0.0/x", "prefix length must be 0 to 32"},
		{"proxy_from = 10.0.0.0/8, lb.example",
		 "'lb.example': not an IPv4 or IPv6 address"},
		{"proxy_from = 10.0.0.0/8,,10.1.0.0/16", "empty item"},
		{"proxy_from = 10.0.0.0/8,", "empty item"},
		{"proxy_from = 2001:db8::1/32", "host bits are set"},
		{"drain_delay = soon", "bad value 'soon' for drain_delay"},
		{"drain_delay = 2h", "bad value '2h' for drain_delay"},
	};
	char text[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
			 "[server]\n%s\nlisten = 127.0.0.1:1 "
			 "proxy_protocol\n" TLS_OK,
			 cases[i].line);
		expect_error_at(text, 2, cases[i].msg);
	}
	expect_error_at("[server]\nlisten = 127.0.0.1:1\n"
			"proxy_from = 127.0.0.1\n" TLS_OK,
			3,
			"proxy_from (line 3) has no effect: no listen line is "
			"marked proxy_protocol");
	expect_error_at("[server]\n" TLS_OK "[location /r]\nready = yes\n"
			"return = 200 ok\n",
			8, "[location /r]: ready (line 7) and return (line 8)");
	expect_error_at("[server]\n" TLS_OK "[location /r]\nready = maybe\n", 7,
			"bad value 'maybe' for ready: expected yes or no");
}

static void test_error_bad_values(void **state)
{
	static const struct {
		const char *line, *msg;
	} cases[] = {
		{"workers = lots",
		 "bad value 'lots' for workers: expected auto or a number "
		 "from 1 to 64"},
		{"workers = 0", "bad value '0' for workers"},
		{"workers = 65", "bad value '65' for workers"},
		{"workers = -1", "bad value '-1' for workers"},
		{"request_timeout = 10x",
		 "bad value '10x' for request_timeout: expected a duration"},
		{"request_timeout = 0", "bad value '0' for request_timeout"},
		{"request_timeout = 1.5s", "bad value '1.5s' for request_"},
		{"max_body_size = 1T",
		 "bad value '1T' for max_body_size: expected a size in bytes"},
		{"max_header_size = 100",
		 "bad value '100' for max_header_size"}, /* below 1K */
		{"max_connections = 99999999999999999999999",
		 "bad value '99999999999999999999999' for max_connections"},
		{"log_level = loud",
		 "bad value 'loud' for log_level: expected one of error, warn, "
		 "info, debug"},
		{"user = a/b", "bad value 'a/b' for user"},
	};
	char text[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[server]\n%s\n" TLS_OK,
			 cases[i].line);
		expect_error_at(text, 2, cases[i].msg);
	}

	static const struct {
		const char *line, *msg;
	} tls_cases[] = {
		{"min_version = 1.1",
		 "bad value '1.1' for min_version: expected one of 1.2, 1.3"},
		{"ktls = sometimes",
		 "bad value 'sometimes' for ktls: expected one of auto, on, "
		 "off"},
		{"session_tickets = maybe",
		 "bad value 'maybe' for session_tickets: expected yes or no"},
		{"verify_depth = 17", "bad value '17' for verify_depth"},
		{"handshake_timeout = 2d", "bad value '2d' for handshake"},
	};
	for (size_t i = 0; i < sizeof(tls_cases) / sizeof(tls_cases[0]); i++) {
		snprintf(text, sizeof(text), TLS_OK "%s\n", tls_cases[i].line);
		expect_error_at(text, 5, tls_cases[i].msg);
	}

	static const struct {
		const char *line, *msg;
	} lim_cases[] = {
		{"conn_rate = 100/m",
		 "bad value '100/m' for conn_rate: expected a whole number "
		 "per second"},
		{"conn_rate = 5/x", "bad value '5/x' for conn_rate: expected a "
				    "rate"},
		{"req_rate = fast", "bad value 'fast' for req_rate"},
		{"bandwidth_in = -1", "bad value '-1' for bandwidth_in"},
		{"bandwidth_out = 10M/m",
		 "bad value '10M/m' for bandwidth_out"},
		{"max_conns = 1K", "bad value '1K' for max_conns"},
		{"req_burst = 4294967296", "bad value '4294967296' for req_"},
	};
	for (size_t i = 0; i < sizeof(lim_cases) / sizeof(lim_cases[0]); i++) {
		snprintf(text, sizeof(text), TLS_OK "[limits]\n%s\n",
			 lim_cases[i].line);
		expect_error_at(text, 6, lim_cases[i].msg);
	}

	static const struct {
		const char *line, *msg;
	} loc_cases[] = {
		{"client_cert = always",
		 "bad value 'always' for client_cert: expected one of none, "
		 "optional, require"},
		{"return = 99 too low", "bad value '99 too low' for return"},
		{"return = 600", "bad value '600' for return"},
		{"return = 200ok", "bad value '200ok' for return"},
		{"proxy_pass = ftp://x:1", "bad value 'ftp://x:1' for proxy_"},
		{"proxy_pass = https://x:1/",
		 "(TLS to upstreams is not supported)"},
		{"proxy_pass = http:///x", "bad value 'http:///x'"},
		{"proxy_pass = http://a b:1", "bad value 'http://a b:1'"},
		{"proxy_pass = http://1.2.3.4:0/", "port must be a number"},
		{"allow_subject = client1",
		 "bad value 'client1' for allow_subject: expected an RFC 2253 "
		 "name"},
		{"allow_san = a b", "bad value 'a b' for allow_san"},
		{"header_prefix = X_Client:", "bad value 'X_Client:' for "
					      "header_prefix"},
		{"index = ../secret", "bad value '../secret' for index"},
		{"websocket = 2", "bad value '2' for websocket"},
	};
	for (size_t i = 0; i < sizeof(loc_cases) / sizeof(loc_cases[0]); i++) {
		snprintf(text, sizeof(text), TLS_OK "[location /]\n%s\n",
			 loc_cases[i].line);
		expect_error_at(text, 6, loc_cases[i].msg);
	}

	expect_error_at(TLS_OK "[bpf]\ninstance = a/b\n", 6,
			"bad value 'a/b' for instance: expected 1-32 letters");
	expect_error_at(TLS_OK "[bpf]\ninstance = "
			       "abcdefghijabcdefghijabcdefghijabc\n",
			6, "for instance");
	expect_error_at(TLS_OK "[bpf]\nmode = maybe\n", 6,
			"bad value 'maybe' for mode: expected one of auto, "
			"required, off");
	expect_error_at(TLS_OK "[upstream u]\nserver = nope\n", 6,
			"bad value 'nope' for server: expected HOST:PORT");
	expect_error_at(TLS_OK "[server]\nworkers =\n", 6,
			"missing value for 'workers'");
}

static void test_error_duplicate_key(void **state)
{
	(void)state;
	expect_error_at(
		"[server]\nworkers = 2\nworkers = 3\n" TLS_OK, 3,
		"duplicate key 'workers' in [server] (first at line 2)");
	/* a second [tls] section merges; keys still appear once */
	expect_error_at(TLS_OK "[tls]\ncert = ../certs/server.crt\n", 6,
			"duplicate key 'cert' in [tls] (first at line 2)");
	expect_error_at(TLS_OK "[location /]\nroot = www\nroot = www\n", 7,
			"duplicate key 'root' in [location /] (first at line "
			"6)");
	/* repeatable keys are not duplicates */
	struct config *cfg = load_ok(TLS_OK "[location /]\nroot = www\n"
					    "allow_san = a\nallow_san = b\n"
					    "allow_subject = CN=a\n"
					    "allow_subject = CN=b\n");
	assert_int_equal(cfg->locations[0].allow_san.count, 2);
	assert_string_equal(cfg->locations[0].allow_san.items[1], "b");
	config_free(cfg);
}

static void test_error_missing_equals(void **state)
{
	(void)state;
	expect_error_at(TLS_OK "[server]\nworkers 2\n", 6,
			"expected 'key = value', got 'workers 2'");
	/* inih would take ':' as a separator; we do not */
	expect_error_at(TLS_OK "[server]\nworkers: 2\n", 6,
			"expected 'key = value', got 'workers: 2'");
	expect_error_at(TLS_OK "[server]\n= 2\n", 6, "expected 'key = value'");
	/* '=' inside a comment does not count */
	expect_error_at(TLS_OK "[server]\nworkers ; = 2\n", 6,
			"expected 'key = value'");
}

static void test_error_line_too_long(void **state)
{
	char text[1024], value[400];

	(void)state;
	/* 199 characters is the longest line: accepted */
	memset(value, 'a', 199 - strlen("allow_san = "));
	value[199 - strlen("allow_san = ")] = '\0';
	snprintf(text, sizeof(text),
		 TLS_OK "[location /]\nroot = www\nallow_san = %s\n", value);
	struct config *cfg = load_ok(text);
	assert_int_equal(strlen(cfg->locations[0].allow_san.items[0]),
			 strlen(value));
	config_free(cfg);

	/* one more is refused, never truncated */
	memset(value, 'a', 200 - strlen("allow_san = "));
	value[200 - strlen("allow_san = ")] = '\0';
	snprintf(text, sizeof(text),
		 TLS_OK "[location /]\nroot = www\nallow_san = %s\n", value);
	expect_error_at(text, 7, "line too long (max 199 characters)");
	assert_int_equal(count_lines(errs), 1);
}

static void test_error_tls_required(void **state)
{
	(void)state;
	expect_error_at("[server]\nworkers = 1\n[tls]\n"
			"cert = ../certs/server.crt\n",
			3, "missing required key 'key' in [tls]");
	assert_non_null(strstr(errs, ":3: missing required key 'client_ca' in "
				     "[tls]"));
	assert_int_equal(count_lines(errs), 2);
	expect_error_at("[server]\nworkers = 1\n", 2, "missing [tls] section");
}

static void test_error_files(void **state)
{
	char want[700];

	(void)state;
	snprintf(want, sizeof(want),
		 "cert: cannot read %s/../certs/nope.crt: No such file or "
		 "directory",
		 conf_dir);
	expect_error_at("[tls]\ncert = ../certs/nope.crt\n"
			"key = ../certs/server.key\n"
			"client_ca = ../certs/client-ca.pem\n",
			2, want);
	/* not reported again as "missing" */
	assert_int_equal(count_lines(errs), 1);
	expect_error_at(TLS_OK "crl = /nonexistent/crl.pem\n", 5,
			"crl: cannot read /nonexistent/crl.pem: No such file");
	expect_error_at(TLS_OK "crl = ../certs/a-directory.pem\n", 5,
			"is not a regular file");
	expect_error_at(TLS_OK "[location /]\nroot = nowhere\n", 6,
			"root: cannot use");
	expect_error_at(TLS_OK "[location /]\nroot = ../certs/crl.pem\n", 6,
			"crl.pem is not a directory");
	if (geteuid() != 0) {
		char p[600];

		snprintf(p, sizeof(p), "%s/certs/server.key", tmpdir);
		assert_int_equal(chmod(p, 0), 0);
		expect_error_at(TLS_OK, 3, "key: cannot read");
		assert_non_null(strstr(errs, "Permission denied"));
		assert_int_equal(chmod(p, 0644), 0);
	}
}

static void test_error_locations(void **state)
{
	(void)state;
	expect_error_at(TLS_OK "[location /a]\nclient_cert = require\n", 5,
			"[location /a] has no handler: set root, return, "
			"proxy_pass, metrics or ready");
	expect_error_at(TLS_OK "[location /a]\nmetrics = no\n", 5,
			"[location /a] has no handler");
	expect_error_at(TLS_OK "[location /a]\nmetrics = yes\nroot = www\n", 7,
			"[location /a]: metrics (line 6) and root (line 7) are "
			"both set");
	expect_error_at(TLS_OK "[location /a]\nroot = www\nreturn = 200 ok\n",
			7,
			"[location /a]: root (line 6) and return (line 7) are "
			"both set");
	expect_error_at(TLS_OK "[location /a]\nproxy_pass = http://1.2.3.4:5\n"
			       "return = 200 ok\n",
			7,
			"[location /a]: proxy_pass (line 6) and return (line "
			"7) are both set");
	expect_error_at(TLS_OK "[location /orders/]\nroot = www\n"
			       "[location /orders]\nroot = www\n",
			7, "duplicate [location /orders] (first at line 5)");
	expect_error_at(TLS_OK "[location orders]\nroot = www\n", 5,
			"location prefix 'orders' must start with '/'");
	expect_error_at(TLS_OK "[location]\n", 5,
			"[location] needs a path prefix");
	expect_error_at(TLS_OK "[location /a/../b]\nroot = www\n", 5,
			"has a '.' or '..' segment");
	expect_error_at(TLS_OK "[location /a%2fb]\nroot = www\n", 5,
			"expected a plain path");
	/* a refused header's keys are skipped, not misattributed */
	assert_int_equal(count_lines(errs), 1);
	expect_error_at(TLS_OK "[location /o]\nproxy_pass = http://orders/\n",
			6, "proxy_pass: unknown upstream 'orders'");
	/* the upstream may come after the location */
	struct config *cfg = load_ok(TLS_OK "[location /o]\n"
					    "proxy_pass = http://orders/\n"
					    "[upstream orders]\n"
					    "server = 127.0.0.1:9\n");
	assert_string_equal(cfg->locations[0].proxy_upstream, "orders");
	config_free(cfg);
	expect_error_at(TLS_OK "[upstream orders]\nkeepalive = 1\n", 5,
			"[upstream orders] has no server");
	expect_error_at(TLS_OK "[upstream a]\nserver = 1.2.3.4:5\n"
			       "[upstream a]\nserver = 1.2.3.4:6\n",
			7, "duplicate [upstream a] (first at line 5)");
	expect_error_at(TLS_OK "[upstream a:b]\n", 5,
			"bad upstream name 'a:b'");
}

static void test_error_allow_with_none(void **state)
{
	(void)state;
	expect_error_at(TLS_OK "[location /pub]\n"
			       "client_cert = none\n"
			       "root = www\n"
			       "allow_san = spiffe://x\n",
			8,
			"[location /pub]: allow_san (line 8) conflicts with "
			"client_cert = none (line 6)");
	/* the order of the keys does not matter */
	expect_error_at(TLS_OK "[location /pub]\n"
			       "allow_fingerprint = " FP_LOWER "\n"
			       "root = www\n"
			       "client_cert = none\n",
			6,
			"allow_fingerprint (line 6) conflicts with client_cert "
			"= none (line 8)");
}

static void test_error_fingerprints(void **state)
{
	(void)state;
	expect_error_at(TLS_OK "[location /]\nroot = www\n"
			       "allow_fingerprint = abcd\n",
			7,
			"bad value 'abcd' for allow_fingerprint: expected a "
			"SHA-256 fingerprint");
	expect_error_at(TLS_OK "[location /]\nroot = www\n"
			       "allow_fingerprint = " FP_LOWER "00\n",
			7, "for allow_fingerprint");
	expect_error_at(TLS_OK "[location /]\nroot = www\n"
			       "allow_fingerprint = "
			       "g0112233445566778899aabbccddeeff00112233445566"
			       "778899aabbccddeeff\n",
			7, "for allow_fingerprint");
	expect_error_at(TLS_OK "[limits sha256:1234]\nmax_conns = 1\n", 5,
			"bad fingerprint in [limits sha256:1234]: expected "
			"sha256: and 64 hex digits");
	assert_int_equal(count_lines(errs), 1);
	expect_error_at(TLS_OK "[limits bob]\n", 5,
			"unknown section [limits bob]");
	expect_error_at(TLS_OK "[limits sha256:" FP_LOWER "]\nmax_conns = 1\n"
			       "[limits " FP_COLONS "]\n",
			7,
			"duplicate [limits sha256:" FP_LOWER "] (first at "
			"line 5)");
}

static void test_all_errors_reported(void **state)
{
	struct config *cfg = NULL;

	(void)state;
	assert_int_equal(load("[server]\n"
			      "workers = none\n"
			      "bogus = 1\n"
			      "[tls]\n"
			      "cert = ../certs/server.crt\n"
			      "[location /x]\n"
			      "client_cert = maybe\n",
			      &cfg),
			 -1);
	assert_non_null(strstr(errs, ":2: bad value 'none' for workers"));
	assert_non_null(strstr(errs, ":3: unknown key 'bogus' in [server]"));
	assert_non_null(strstr(errs, ":4: missing required key 'key'"));
	assert_non_null(strstr(errs, ":4: missing required key 'client_ca'"));
	assert_non_null(strstr(errs, ":6: [location /x] has no handler"));
	assert_non_null(strstr(errs, ":7: bad value 'maybe' for client_cert"));
	assert_int_equal(count_lines(errs), 6);
}

static void test_cannot_open(void **state)
{
	struct config *cfg = (struct config *)1;
	char *out = NULL;
	size_t len;
	FILE *mem = open_memstream(&out, &len);

	(void)state;
	assert_int_equal(config_load("/nonexistent/x.conf", mem, &cfg), -1);
	fclose(mem);
	assert_null(cfg);
	assert_non_null(strstr(out, "/nonexistent/x.conf: cannot open"));
	free(out);
	config_free(NULL);
	assert_null(config_find_upstream(NULL, "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demo_config),
		cmocka_unit_test(test_upstream_example),
		cmocka_unit_test(test_inline_upstream),
		cmocka_unit_test(test_limits_inheritance),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_listen_errors),
		cmocka_unit_test(test_comments_and_layout),
		cmocka_unit_test(test_location_prefix_normalised),
		cmocka_unit_test(test_fingerprints),
		cmocka_unit_test(test_error_unknown_section),
		cmocka_unit_test(test_error_unknown_key),
		cmocka_unit_test(test_error_bad_values),
		cmocka_unit_test(test_load_balancer_keys),
		cmocka_unit_test(test_error_load_balancer_keys),
		cmocka_unit_test(test_error_duplicate_key),
		cmocka_unit_test(test_error_missing_equals),
		cmocka_unit_test(test_error_line_too_long),
		cmocka_unit_test(test_error_tls_required),
		cmocka_unit_test(test_error_files),
		cmocka_unit_test(test_error_locations),
		cmocka_unit_test(test_error_allow_with_none),
		cmocka_unit_test(test_error_fingerprints),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_cannot_open),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/* SPDX-License-Identifier: MIT */
/*
 * Kernel TLS. OpenSSL does the handshake and, with SSL_OP_ENABLE_KTLS,
 * hands the record keys to the kernel itself for TLS 1.2 (TX and RX) and
 * for TLS 1.3 TX. OpenSSL 3.0 does not install TLS 1.3 RX keys (3.2 and
 * later do; then BIO_get_ktls_recv() is already true and nothing here
 * runs). For that one case this file installs RX itself: the client
 * application traffic secret comes from the keylog callback, key and IV
 * from OpenSSL's own TLS13-KDF, and the record sequence is 0, which holds
 * only while no application record has been read through OpenSSL.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/tls.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "hex.h"
#include "ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define KTLS_ULP_FILE	"/proc/sys/net/ipv4/tcp_available_ulp"
#define KTLS_IV_LEN	12 /* TLS 1.3 per-record nonce base, all three AEADs */
#define KTLS_SECRET_MAX EVP_MAX_MD_SIZE

/* A connection's client application traffic secret, from the keylog
 * callback to ktls_after_handshake(). Lives in the SSL's ex_data. */
struct ktls_secret {
	size_t len;
	unsigned char secret[KTLS_SECRET_MAX];
};

static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;
static int ktls_ex_index = -1;
static EVP_KDF *ktls_kdf; /* TLS13-KDF, fetched once, shared by threads */
static unsigned ktls_cipher_mask;

/* The three crypto_info layouts the kernel takes for our AEADs. */
union ktls_crypto_info {
	struct tls_crypto_info info;
	struct tls12_crypto_info_aes_gcm_128 gcm128;
	struct tls12_crypto_info_aes_gcm_256 gcm256;
	struct tls12_crypto_info_chacha20_poly1305 chacha;
};

struct ktls_cipher {
	unsigned bit;
	const char *name;
	int nid;	     /* OpenSSL's NID of the AEAD */
	unsigned short type; /* TLS_CIPHER_* */
	size_t key_len;
	size_t info_len;
};

static const struct ktls_cipher ktls_cipher_table[] = {
	{KTLS_CIPHER_AES_128_GCM, "AES-128-GCM", NID_aes_128_gcm,
	 TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_128_KEY_SIZE,
	 sizeof(struct tls12_crypto_info_aes_gcm_128)},
	{KTLS_CIPHER_AES_256_GCM, "AES-256-GCM", NID_aes_256_gcm,
	 TLS_CIPHER_AES_GCM_256, TLS_CIPHER_AES_GCM_256_KEY_SIZE,
	 sizeof(struct tls12_crypto_info_aes_gcm_256)},
	{KTLS_CIPHER_CHACHA20_POLY1305, "CHACHA20-POLY1305",
	 NID_chacha20_poly1305, TLS_CIPHER_CHACHA20_POLY1305,
	 TLS_CIPHER_CHACHA20_POLY1305_KEY_SIZE,
	 sizeof(struct tls12_crypto_info_chacha20_poly1305)},
};
#define KTLS_N_CIPHERS                                                         \
	(sizeof(ktls_cipher_table) / sizeof(ktls_cipher_table[0]))

static const struct ktls_cipher *ktls_cipher_by_nid(int nid)
{
	for (size_t i = 0; i < KTLS_N_CIPHERS; i++)
		if (ktls_cipher_table[i].nid == nid)
			return &ktls_cipher_table[i];
	return NULL;
}

/*
 * Fill CI for TLS 1.3 with KEY and the 12-byte IV, record sequence 0. The
 * kernel splits a GCM IV into a 4-byte salt and 8 bytes of "iv"; for
 * ChaCha20-Poly1305 the iv field holds all 12.
 */
static void ktls_fill_info(union ktls_crypto_info *ci,
			   const struct ktls_cipher *c,
			   const unsigned char *key,
			   const unsigned char iv[KTLS_IV_LEN])
{
	memset(ci, 0, sizeof(*ci));
	ci->info.version = TLS_1_3_VERSION;
	ci->info.cipher_type = c->type;
	switch (c->type) {
	case TLS_CIPHER_AES_GCM_128:
		memcpy(ci->gcm128.salt, iv, TLS_CIPHER_AES_GCM_128_SALT_SIZE);
		memcpy(ci->gcm128.iv, iv + TLS_CIPHER_AES_GCM_128_SALT_SIZE,
		       TLS_CIPHER_AES_GCM_128_IV_SIZE);
		memcpy(ci->gcm128.key, key, c->key_len);
		break;
	case TLS_CIPHER_AES_GCM_256:
		memcpy(ci->gcm256.salt, iv, TLS_CIPHER_AES_GCM_256_SALT_SIZE);
		memcpy(ci->gcm256.iv, iv + TLS_CIPHER_AES_GCM_256_SALT_SIZE,
		       TLS_CIPHER_AES_GCM_256_IV_SIZE);
		memcpy(ci->gcm256.key, key, c->key_len);
		break;
	case TLS_CIPHER_CHACHA20_POLY1305:
		memcpy(ci->chacha.iv, iv, TLS_CIPHER_CHACHA20_POLY1305_IV_SIZE);
		memcpy(ci->chacha.key, key, c->key_len);
		break;
	}
}

/* ---- start-up probe ---------------------------------------------------- */

/* An established loopback TCP connection: *A connected to *B. */
static int ktls_loopback_pair(int *a, int *b)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int lfd = -1, fam;

	*a = *b = -1;
	for (fam = 0; fam < 2 && lfd < 0; fam++) {
		memset(&ss, 0, sizeof(ss));
		if (fam == 0) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_family = AF_INET;
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			len = sizeof(*sin);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = in6addr_loopback;
			len = sizeof(*sin6);
		}
		lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0)
			continue;
		if (bind(lfd, (struct sockaddr *)&ss, len) < 0 ||
		    listen(lfd, 1) < 0 ||
		    getsockname(lfd, (struct sockaddr *)&ss, &len) < 0) {
			close(lfd);
			lfd = -1;
		}
	}
	if (lfd < 0)
		return -1;
	*a = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*a < 0 || connect(*a, (struct sockaddr *)&ss, len) < 0)
		goto bad;
	*b = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*b < 0)
		goto bad;
	close(lfd);
	return 0;
bad:
	if (*a >= 0)
		close(*a);
	*a = -1;
	close(lfd);
	return -1;
}

static void ktls_close_pair(int a, int b)
{
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
}

/* Can the kernel take cipher C's key on both ends (TX on one, RX on the
 * other)? The key is a dummy on a connection that carries no data. */
static bool ktls_probe_cipher(const struct ktls_cipher *c)
{
	static const unsigned char key[32], iv[KTLS_IV_LEN];
	union ktls_crypto_info ci;
	bool ok = false;
	int a, b;

	if (ktls_loopback_pair(&a, &b) < 0)
		return false;
	ktls_fill_info(&ci, c, key, iv);
	if (setsockopt(a, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 &&
	    setsockopt(b, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 &&
	    setsockopt(a, SOL_TLS, TLS_TX, &ci, c->info_len) == 0 &&
	    setsockopt(b, SOL_TLS, TLS_RX, &ci, c->info_len) == 0)
		ok = true;
	ktls_close_pair(a, b);
	return ok;
}

/* First line of the available-ULP list, for messages ("?" if unreadable). */
static void ktls_read_ulps(char *out, size_t len)
{
	FILE *f = fopen(KTLS_ULP_FILE, "re");

	snprintf(out, len, "?");
	if (!f)
		return;
	if (fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
	if (!out[0])
		snprintf(out, len, "none");
}

int ktls_probe(enum config_ktls mode, char *why, size_t why_len)
{
	char ulps[128];
	size_t off = 0;
	int a, b, err;

	ktls_cipher_mask = 0;
	if (mode == CONFIG_KTLS_OFF) {
		snprintf(why, why_len, "ktls = off");
		return 0;
	}
	if (ktls_loopback_pair(&a, &b) < 0) {
		snprintf(why, why_len,
			 "cannot probe: no loopback TCP connection (%s)",
			 strerror(errno));
		return 0;
	}
	/*
	 * Setting the ULP makes the kernel load tls.ko if it is a module and
	 * we have CAP_NET_ADMIN (request_module "tcp-ulp-tls"): no need to
	 * run modprobe ourselves.
	 */
	err = setsockopt(a, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0 ? errno
									: 0;
	ktls_close_pair(a, b);
	if (err) {
		ktls_read_ulps(ulps, sizeof(ulps));
		snprintf(why, why_len,
			 "kernel has no tls ULP (tcp_available_ulp: %s; "
			 "TCP_ULP tls: %s%s)",
			 ulps, strerror(err),
			 err == ENOENT ? "; needs CONFIG_TLS or tls.ko" : "");
		return 0;
	}
	why[0] = '\0';
	for (size_t i = 0; i < KTLS_N_CIPHERS; i++) {
		const struct ktls_cipher *c = &ktls_cipher_table[i];

		if (!ktls_probe_cipher(c))
			continue;
		ktls_cipher_mask |= c->bit;
		if (off < why_len)
			off += (size_t)snprintf(why + off, why_len - off,
						"%s%s", off ? " " : "",
						c->name);
	}
	if (!ktls_cipher_mask) {
		snprintf(why, why_len,
			 "kernel tls ULP takes none of AES-128-GCM, "
			 "AES-256-GCM, "
			 "CHACHA20-POLY1305 (crypto modules missing?)");
		return 0;
	}
	return 1;
}

unsigned ktls_ciphers(void)
{
	return ktls_cipher_mask;
}

/* ---- per-connection secret ---------------------------------------------- */

static void ktls_secret_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
			     int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr)
		OPENSSL_clear_free(ptr, sizeof(struct ktls_secret));
}

static void ktls_init_once(void)
{
	ktls_ex_index =
		SSL_get_ex_new_index(0, NULL, NULL, NULL, ktls_secret_free);
	ktls_kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_3_KDF, NULL);
}

/*
 * OpenSSL's keylog line: "LABEL <client_random hex> <secret hex>". Only
 * the client application traffic secret is kept; the line itself is
 * OpenSSL's buffer, cleared by OpenSSL after this returns.
 */
static void ktls_keylog(const SSL *cssl, const char *line)
{
	static const char label[] = "CLIENT_TRAFFIC_SECRET_0 ";
	/* ex_data is per SSL; the callback gets it const only by API. */
	SSL *ssl = (SSL *)cssl;
	struct ktls_secret *s;
	const char *p;
	size_t n = 0;

	if (strncmp(line, label, sizeof(label) - 1) != 0)
		return;
	p = strchr(line + sizeof(label) - 1, ' ');
	if (!p)
		return;
	p++;
	s = SSL_get_ex_data(ssl, ktls_ex_index);
	if (!s) {
		s = OPENSSL_zalloc(sizeof(*s));
		if (!s || !SSL_set_ex_data(ssl, ktls_ex_index, s)) {
			OPENSSL_free(s);
			return;
		}
	}
	while (p[0] && p[1] && n < sizeof(s->secret)) {
		int hi = hex_value(p[0]), lo = hex_value(p[1]);

		if (hi < 0 || lo < 0)
			break;
		s->secret[n++] = (unsigned char)(hi << 4 | lo);
		p += 2;
	}
	s->len = (p[0] == '\0' || p[0] == '\n') ? n : 0;
}

/* Wipe and drop SSL's captured secret (if any). */
static void ktls_secret_drop(SSL *ssl)
{
	struct ktls_secret *s;

	if (ktls_ex_index < 0)
		return;
	s = SSL_get_ex_data(ssl, ktls_ex_index);
	if (!s)
		return;
	SSL_set_ex_data(ssl, ktls_ex_index, NULL);
	OPENSSL_clear_free(s, sizeof(*s));
}

int ktls_ctx_setup(SSL_CTX *ctx, bool enable)
{
	pthread_once(&ktls_once, ktls_init_once);
	if (!enable) {
		SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
		SSL_CTX_set_keylog_callback(ctx, NULL);
		/* No kernel to hand records to: read as much as is there in one
		 * read() (a handshake took ~12 reads of header, then body). */
		SSL_CTX_set_read_ahead(ctx, 1);
		return 0;
	}
	/* Nothing may be read past the Finished message: the kernel takes
	 * the records that follow. */
	SSL_CTX_set_read_ahead(ctx, 0);
	if (ktls_ex_index < 0 || !ktls_kdf)
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	SSL_CTX_set_keylog_callback(ctx, ktls_keylog);
	return 0;
}

/* ---- TLS 1.3 RX ------------------------------------------------------- */

/* HKDF-Expand-Label(secret, LABEL, "", OUT_LEN) of RFC 8446 7.1, done by
 * OpenSSL's TLS13-KDF. */
static int ktls_expand_label(const EVP_MD *md, const unsigned char *secret,
			     size_t secret_len, const char *label,
			     unsigned char *out, size_t out_len)
{
	static const char prefix[] = "tls13 ";
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM params[6];
	EVP_KDF_CTX *kctx;
	int ok;

	kctx = EVP_KDF_CTX_new(ktls_kdf);
	if (!kctx)
		return -1;
	params[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	params[1] = OSSL_PARAM_construct_utf8_string(
		OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0);
	params[2] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
	params[3] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_PREFIX, (void *)prefix, sizeof(prefix) - 1);
	params[4] = OSSL_PARAM_construct_octet_string(
		OSSL_KDF_PARAM_LABEL, (void *)label, strlen(label));
	params[5] = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(kctx, out, out_len, params);
	EVP_KDF_CTX_free(kctx);
	return ok == 1 ? 0 : -1;
}

int ktls_tls13_key_iv(const EVP_MD *md, const unsigned char *secret,
		      size_t secret_len, unsigned char *key, size_t key_len,
		      unsigned char iv[KTLS_TLS13_IV_LEN])
{
	pthread_once(&ktls_once, ktls_init_once);
	if (!ktls_kdf || !md || secret_len != (size_t)EVP_MD_get_size(md))
		return -1;
	if (ktls_expand_label(md, secret, secret_len, "key", key, key_len) <
		    0 ||
	    ktls_expand_label(md, secret, secret_len, "iv", iv,
			      KTLS_TLS13_IV_LEN) < 0) {
		OPENSSL_cleanse(key, key_len);
		return -1;
	}
	return 0;
}

/* Install the client->server direction of a TLS 1.3 connection. */
static int ktls_install_rx13(SSL *ssl, int fd, const struct ktls_secret *s,
			     const char **reason)
{
	const SSL_CIPHER *sc = SSL_get_current_cipher(ssl);
	const struct ktls_cipher *c;
	unsigned char key[32], iv[KTLS_IV_LEN];
	union ktls_crypto_info ci;
	int rc;

	c = sc ? ktls_cipher_by_nid(SSL_CIPHER_get_cipher_nid(sc)) : NULL;
	if (!c || !(ktls_cipher_mask & c->bit)) {
		*reason = "cipher not offloaded";
		return -1;
	}
	if (ktls_tls13_key_iv(SSL_CIPHER_get_handshake_digest(sc), s->secret,
			      s->len, key, c->key_len, iv) < 0) {
		*reason = "rx key derivation failed";
		return -1;
	}
	ktls_fill_info(&ci, c, key, iv);
	rc = setsockopt(fd, SOL_TLS, TLS_RX, &ci, c->info_len);
	OPENSSL_cleanse(&ci, sizeof(ci));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	if (rc < 0) {
		*reason = "rx setsockopt failed";
		return -1;
	}
	return 0;
}

/* TLS record and handshake types (RFC 8446 5.1, 4). */
#define KTLS_RECORD_ALERT	21
#define KTLS_RECORD_HANDSHAKE	22
#define KTLS_ALERT_CLOSE_NOTIFY 0
#define KTLS_HS_KEY_UPDATE	24

const char *ktls_close_reason(int fd)
{
	unsigned char buf[8], type = 0;
	union {
		char buf[CMSG_SPACE(sizeof(unsigned char))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *cmsg;
	ssize_t n;

	/* With room for a control message the kernel hands over a non-data
	 * record and its type; MSG_PEEK leaves it queued. */
	n = recvmsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return NULL;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg))
		if (cmsg->cmsg_level == SOL_TLS &&
		    cmsg->cmsg_type == TLS_GET_RECORD_TYPE)
			type = *CMSG_DATA(cmsg);
	switch (type) {
	case KTLS_RECORD_ALERT:
		return n >= 2 && buf[1] == KTLS_ALERT_CLOSE_NOTIFY
			       ? "close_notify"
			       : "alert";
	case KTLS_RECORD_HANDSHAKE:
		return buf[0] == KTLS_HS_KEY_UPDATE ? "key update"
						    : "handshake message";
	default:
		return NULL; /* application data, or not a kTLS socket */
	}
}

#define KTLS_ALERT_LEVEL_WARNING 1

int ktls_send_close_notify(int fd)
{
	unsigned char alert[2] = {KTLS_ALERT_LEVEL_WARNING,
				  KTLS_ALERT_CLOSE_NOTIFY};
	union {
		char buf[CMSG_SPACE(sizeof(unsigned char))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = alert, .iov_len = sizeof(alert)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *cmsg;

	memset(&control, 0, sizeof(control));
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cmsg) = KTLS_RECORD_ALERT;
	/* One whole record (no MSG_MORE: the kernel refuses it with a record
	 * type); never wait for room in the send buffer. */
	return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) ==
			       (ssize_t)sizeof(alert)
		       ? 0
		       : -1;
}

ssize_t ktls_recv_discard(int fd, void *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(unsigned char))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};

	return recvmsg(fd, &msg, MSG_DONTWAIT);
}

/* Why OpenSSL left TX in userspace: the cipher, or something else. */
static const char *ktls_tx_reason(SSL *ssl)
{
	const SSL_CIPHER *sc = SSL_get_current_cipher(ssl);
	const struct ktls_cipher *c;

	c = sc ? ktls_cipher_by_nid(SSL_CIPHER_get_cipher_nid(sc)) : NULL;
	if (!c || !(ktls_cipher_mask & c->bit))
		return "cipher not offloaded";
	return "tx not in kernel";
}

int ktls_after_handshake(SSL *ssl, int fd, const char **reason)
{
	const struct ktls_secret *s;
	int ret = 0;

	*reason = NULL;
	if (!(SSL_get_options(ssl) & SSL_OP_ENABLE_KTLS)) {
		*reason = "ktls off";
		goto out;
	}
	if (!BIO_get_ktls_send(SSL_get_wbio(ssl))) {
		*reason = ktls_tx_reason(ssl);
		goto out;
	}
	/* TLS 1.2 on OpenSSL 3.0, any version on 3.2+: OpenSSL did it. */
	if (BIO_get_ktls_recv(SSL_get_rbio(ssl))) {
		ret = 1;
		goto out;
	}
	if (SSL_version(ssl) != TLS1_3_VERSION) {
		*reason = "rx not in kernel";
		goto out;
	}
	/*
	 * The kernel starts at record sequence 0 on the first byte still in
	 * the socket. That is right only if OpenSSL has consumed nothing past
	 * the client's Finished: no record decrypted and waiting, no raw
	 * bytes read ahead.
	 */
	if (SSL_has_pending(ssl) || SSL_pending(ssl) > 0) {
		*reason = "openssl buffered data";
		goto out;
	}
	s = ktls_ex_index >= 0 ? SSL_get_ex_data(ssl, ktls_ex_index) : NULL;
	if (!s || !s->len) {
		*reason = "no traffic secret";
		goto out;
	}
	if (ktls_install_rx13(ssl, fd, s, reason) < 0)
		goto out;
	ret = 1;
out:
	ktls_secret_drop(ssl);
	return ret;
}

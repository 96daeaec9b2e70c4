/* SPDX-License-Identifier: MIT */
/*
 * A small blocking TLS server that proves daemon/ktls.c on its own, in the
 * kTLS VM (tests/vm/test_ktls_module.sh drives it with ktls_client.py).
 *
 * Per connection: SSL_accept with a required client certificate, then
 * ktls_after_handshake(). When that returns 1 the rest of the connection is
 * plain read()/write()/sendfile() on the TCP socket, so every byte is
 * encrypted and decrypted by the kernel; otherwise it goes through SSL.
 * A line per connection on stdout says which, and why.
 *
 * Protocol (one command per line, from the client):
 *   UP <n>   the client sends n bytes; answer "UP-SHA <sha256 hex>"
 *   DOWN     answer "DOWN <size>" and the -f file (sendfile on kTLS)
 *   BYE      close
 * When a kTLS connection ends otherwise, "end: <ktls_close_reason()>".
 *
 * ktls_server -p PORT -c CERT -k KEY -C CA -f FILE [-n CONNS] [-v 1.2|1.3]
 *             [-s CIPHER] [-o] [-P]
 *   -o  ktls = off (ktls_ctx_setup(ctx, false))
 *   -P  SSL_peek one byte of application data before the hand-off, so
 *       OpenSSL holds a decrypted record: RX must then be refused
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "daemon/ktls.h"

struct io {
	SSL *ssl; /* NULL: plain fd (kTLS both ways) */
	int fd;
};

static int io_read(struct io *io, void *buf, size_t len)
{
	size_t got;

	if (!io->ssl)
		return (int)read(io->fd, buf, len);
	if (SSL_read_ex(io->ssl, buf, len, &got) == 1)
		return (int)got;
	return SSL_get_error(io->ssl, 0) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static int io_write_all(struct io *io, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		size_t done;
		ssize_t n;

		if (io->ssl) {
			if (SSL_write_ex(io->ssl, p, len, &done) != 1)
				return -1;
			n = (ssize_t)done;
		} else {
			n = write(io->fd, p, len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int io_readline(struct io *io, char *line, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		char ch;
		int r = io_read(io, &ch, 1);

		if (r <= 0)
			return -1;
		if (ch == '\n')
			break;
		line[n++] = ch;
	}
	line[n] = '\0';
	return 0;
}

static int cmd_up(struct io *io, unsigned long long n)
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	char out[2 * EVP_MAX_MD_SIZE + 16];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned mdlen, i;
	size_t off;

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while (n > 0) {
		int r = io_read(io, buf,
				n < sizeof(buf) ? (size_t)n : sizeof(buf));

		if (r <= 0) {
			fprintf(stderr, "UP: read: %s\n",
				r < 0 ? strerror(errno) : "eof");
			EVP_MD_CTX_free(ctx);
			return -1;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)r);
		n -= (unsigned long long)r;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	off = (size_t)snprintf(out, sizeof(out), "UP-SHA ");
	for (i = 0; i < mdlen; i++)
		off += (size_t)snprintf(out + off, sizeof(out) - off, "%02x",
					md[i]);
	out[off++] = '\n';
	return io_write_all(io, out, off);
}

static int cmd_down(struct io *io, const char *file)
{
	char hdr[64], buf[16384];
	struct stat st;
	off_t pos = 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(file);
		return -1;
	}
	snprintf(hdr, sizeof(hdr), "DOWN %lld\n", (long long)st.st_size);
	if (io_write_all(io, hdr, strlen(hdr)) < 0)
		goto bad;
	while (pos < st.st_size) {
		ssize_t n;

		if (!io->ssl) {
			/* the kernel encrypts: zero copy through kTLS */
			n = sendfile(io->fd, fd, &pos,
				     (size_t)(st.st_size - pos));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				perror("sendfile");
				goto bad;
			}
			continue;
		}
		n = pread(fd, buf, sizeof(buf), pos);
		if (n <= 0 || io_write_all(io, buf, (size_t)n) < 0)
			goto bad;
		pos += n;
	}
	close(fd);
	return 0;
bad:
	close(fd);
	return -1;
}

static void serve(struct io *io, const char *file)
{
	char line[128];

	while (io_readline(io, line, sizeof(line)) == 0) {
		if (strncmp(line, "UP ", 3) == 0) {
			if (cmd_up(io, strtoull(line + 3, NULL, 10)) < 0)
				return;
		} else if (strcmp(line, "DOWN") == 0) {
			if (cmd_down(io, file) < 0)
				return;
		} else if (strcmp(line, "BYE") == 0) {
			return;
		} else {
			fprintf(stderr, "bad command '%s'\n", line);
			return;
		}
	}
	/* A read failed or the peer closed: on kTLS, say which record. */
	if (!io->ssl) {
		const char *why = ktls_close_reason(io->fd);

		printf("end: %s\n", why ? why : "-");
	}
}

static int listen_on(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((unsigned short)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 16) < 0) {
		perror("listen");
		exit(1);
	}
	return fd;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ktls_server -p PORT -c CERT -k KEY -C CA -f FILE"
		" [-n CONNS] [-v 1.2|1.3] [-s CIPHER] [-o] [-P]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *ca = NULL, *file = NULL;
	const char *version = NULL, *cipher = NULL;
	int port = 0, conns = 1, off = 0, peek = 0, opt, lfd, i, usable;
	char why[256];
	SSL_CTX *ctx;

	while ((opt = getopt(argc, argv, "p:c:k:C:f:n:v:s:oP")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'C':
			ca = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'n':
			conns = atoi(optarg);
			break;
		case 'v':
			version = optarg;
			break;
		case 's':
			cipher = optarg;
			break;
		case 'o':
			off = 1;
			break;
		case 'P':
			peek = 1;
			break;
		default:
			usage();
		}
	}
	if (!port || !cert || !key || !ca || !file)
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	usable = ktls_probe(off ? CONFIG_KTLS_OFF : CONFIG_KTLS_AUTO, why,
			    sizeof(why));
	printf("probe: usable=%d ciphers=0x%x: %s\n", usable, ktls_ciphers(),
	       why);

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_verify(
		ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ktls", 4);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (version) {
		int v = strcmp(version, "1.3") == 0 ? TLS1_3_VERSION
						    : TLS1_2_VERSION;

		SSL_CTX_set_min_proto_version(ctx, v);
		SSL_CTX_set_max_proto_version(ctx, v);
	}
	if (cipher && (strncmp(cipher, "TLS_", 4) == 0
			       ? SSL_CTX_set_ciphersuites(ctx, cipher)
			       : SSL_CTX_set_cipher_list(ctx, cipher)) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	if (ktls_ctx_setup(ctx, usable && !off) < 0) {
		fprintf(stderr, "ktls_ctx_setup failed\n");
		return 1;
	}

	lfd = listen_on(port);
	for (i = 0; i < conns; i++) {
		const char *reason = NULL;
		struct io io = {0};
		X509 *peer;
		char cn[128] = "-";
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), k;
		SSL *ssl;

		if (fd < 0) {
			perror("accept");
			return 1;
		}
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1) {
			printf("conn %d: handshake failed\n", i);
			ERR_print_errors_fp(stdout);
			SSL_free(ssl);
			close(fd);
			continue;
		}
		if (peek) {
			char ch;

			SSL_peek(ssl, &ch, 1);
		}
		k = ktls_after_handshake(ssl, fd, &reason);
		peer = SSL_get0_peer_certificate(ssl);
		if (peer)
			X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
						  NID_commonName, cn,
						  sizeof(cn));
		printf("conn %d: %s %s resumed=%d peer=%s ktls=%d reason=%s\n",
		       i, SSL_get_version(ssl),
		       SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)),
		       SSL_session_reused(ssl), cn, k, reason ? reason : "-");
		io.fd = fd;
		io.ssl = k ? NULL : ssl;
		serve(&io, file);
		if (!k)
			SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	close(lfd);
	SSL_CTX_free(ctx);
	return 0;
}

// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/err.h>

#include "log.h"
#include "relay.h"

/*
 * Bytes read from one side that the other did not take yet. Reads land in
 * the worker's scratch buffer; only what the other side cannot take at
 * once is copied to memory of the connection's own, freed as soon as it is
 * sent. An idle keep-alive connection holds no buffer (nginx does the
 * same); DATA is NULL then.
 */
struct relay_buf {
	size_t off, len;
	unsigned char *data; /* relay_scratch (within one call), heap, NULL */
};

static _Thread_local unsigned char relay_scratch[RELAY_BUF_SIZE];
/* The last read() under SSL_read returned less than it asked for: the
 * socket was empty then (see relay_bio_read_cb). Per thread, as every
 * connection's I/O happens on its worker's thread. */
static _Thread_local bool relay_short_read;

struct relay {
	struct conn *conn;
	struct loop *loop;
	SSL *ssl;
	struct loop_watch tls_watch; /* client TCP socket */
	struct loop_watch app_watch; /* our end of the socketpair */
	struct loop_timer idle_timer;
	unsigned idle_timeout_ms;
	int app_fd;
	/* What OpenSSL said it needs to make progress, per direction. */
	int read_wants;	 /* 0, SSL_ERROR_WANT_READ or _WANT_WRITE */
	int write_wants; /* same, for SSL_write */
	bool app_write_blocked;
	/* The socket may have bytes to read: set by its epoll event, cleared
	 * by a read that found nothing or a short read (for MHD's end, MHD
	 * runs on this thread, so nothing can arrive in between; for the
	 * client's, epoll is level-triggered). Saves the read that would
	 * only say EAGAIN. */
	bool tls_readable;
	bool app_readable;
	bool client_eof; /* close_notify or EOF from the client */
	bool app_eof;	 /* MHD closed its end */
	bool app_shut;	 /* we shut down writing to MHD */
	bool closed;
	struct relay_buf to_app;    /* decrypted, waiting for MHD */
	struct relay_buf to_client; /* from MHD, waiting for SSL_write */
};

static void relay_pump(struct relay *r);

/* A short read from a stream socket means it was drained: the next read
 * could only say EAGAIN, so the relay waits for epoll instead (one system
 * call per request less). */
static long relay_bio_read_cb(BIO *b, int oper, const char *argp, size_t len,
			      int argi, long argl, int ret, size_t *processed)
{
	(void)b;
	(void)argp;
	(void)argi;
	(void)argl;
	if (oper == (BIO_CB_READ | BIO_CB_RETURN))
		relay_short_read = ret > 0 && processed && *processed < len;
	return ret;
}

/* After a send from B: free what is done; copy what is left off the
 * scratch buffer, which the next read reuses. -1 when out of memory. */
static int relay_buf_settle(struct relay_buf *b)
{
	unsigned char *p;

	if (b->off == b->len) {
		if (b->data != relay_scratch)
			free(b->data);
		b->data = NULL;
		b->off = b->len = 0;
		return 0;
	}
	if (b->data != relay_scratch)
		return 0;
	p = malloc(b->len - b->off);
	if (!p) {
		log_error("relay: out of memory");
		b->data = NULL;
		b->off = b->len = 0;
		return -1;
	}
	memcpy(p, b->data + b->off, b->len - b->off);
	b->data = p;
	b->len -= b->off;
	b->off = 0;
	return 0;
}

static void relay_buf_release(struct relay_buf *b)
{
	if (b->data != relay_scratch)
		free(b->data);
	b->data = NULL;
	b->off = b->len = 0;
}

static void relay_finish(struct relay *r, bool send_close_notify)
{
	struct conn *c = r->conn;

	if (r->closed)
		return;
	r->closed = true;
	loop_timer_cancel(r->loop, &r->idle_timer);
	loop_watch_del(r->loop, &r->tls_watch);
	loop_watch_del(r->loop, &r->app_watch);
	if (send_close_notify) {
		ERR_clear_error();
		/* best effort: one try, the socket is non-blocking */
		SSL_shutdown(r->ssl);
	}
	ERR_clear_error();
	close(r->app_fd);
	r->app_fd = -1;
	relay_buf_release(&r->to_app);
	relay_buf_release(&r->to_client);
	conn_close_socket(c);
	c->relay = NULL;
	conn_unref(c);
	loop_defer_free(r->loop, r);
}

void relay_drain(struct relay *r)
{
	if (!r || r->closed || r->client_eof)
		return;
	r->client_eof = true;
	relay_pump(r);
}

void relay_close(struct relay *r)
{
	if (r)
		relay_finish(r, true);
}

/* Client -> MHD. Returns true on progress, false if stuck or finished. */
static bool relay_pump_in(struct relay *r, bool *fatal)
{
	struct relay_buf *b = &r->to_app;
	bool progress = false;
	ssize_t n;
	int ret;

	if (b->len == 0 && !r->client_eof &&
	    (r->tls_readable || SSL_has_pending(r->ssl))) {
		ERR_clear_error();
		relay_short_read = false;
		ret = SSL_read(r->ssl, relay_scratch, sizeof(relay_scratch));
		if (ret > 0) {
			b->data = relay_scratch;
			b->off = 0;
			b->len = (size_t)ret;
			r->read_wants = 0;
			if (relay_short_read && !SSL_has_pending(r->ssl))
				r->tls_readable = false;
			progress = true;
		} else {
			int err = SSL_get_error(r->ssl, ret);

			if (err == SSL_ERROR_WANT_READ ||
			    err == SSL_ERROR_WANT_WRITE) {
				r->read_wants = err;
				r->tls_readable = false;
			} else if (err == SSL_ERROR_ZERO_RETURN) {
				r->client_eof = true;
				progress = true;
			} else {
				if (err == SSL_ERROR_SYSCALL &&
				    ERR_peek_error() == 0)
					log_debug("client %s: connection "
						  "closed (%s)",
						  r->conn->peer_text,
						  errno ? strerror(errno)
							: "eof");
				else
					log_ssl_errors(LOG_LVL_INFO,
						       "TLS read failed");
				*fatal = true;
				return false;
			}
		}
	}
	if (b->len > b->off) {
		n = send(r->app_fd, b->data + b->off, b->len - b->off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			b->off += (size_t)n;
			r->app_write_blocked = false;
			conn_client_bytes(r->conn, (uint64_t)n);
			progress = true;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			r->app_write_blocked = true;
		} else {
			/* MHD closed the connection: nothing more to do */
			relay_buf_release(b);
			*fatal = true;
			return false;
		}
		if (relay_buf_settle(b) < 0) {
			*fatal = true;
			return false;
		}
	}
	if (r->client_eof && b->len == 0 && !r->app_shut) {
		shutdown(r->app_fd, SHUT_WR);
		r->app_shut = true;
		progress = true;
	}
	return progress;
}

/* MHD -> client. */
static bool relay_pump_out(struct relay *r, bool *fatal, bool *done)
{
	struct relay_buf *b = &r->to_client;
	bool progress = false;
	ssize_t n;
	int ret;

	if (b->len == 0 && !r->app_eof && r->app_readable) {
		n = recv(r->app_fd, relay_scratch, sizeof(relay_scratch),
			 MSG_DONTWAIT);
		if (n > 0) {
			b->data = relay_scratch;
			b->off = 0;
			b->len = (size_t)n;
			r->app_readable = (size_t)n == sizeof(relay_scratch);
			progress = true;
		} else if (n == 0) {
			r->app_eof = true;
			progress = true;
		} else if (errno == EAGAIN) {
			r->app_readable = false;
		} else if (errno != EINTR) {
			r->app_eof = true;
			progress = true;
		}
	}
	if (b->len > b->off) {
		ERR_clear_error();
		ret = SSL_write(r->ssl, b->data + b->off,
				(int)(b->len - b->off));
		if (ret > 0) {
			b->off += (size_t)ret;
			r->write_wants = 0;
			progress = true;
		} else {
			int err = SSL_get_error(r->ssl, ret);

			if (err == SSL_ERROR_WANT_READ ||
			    err == SSL_ERROR_WANT_WRITE) {
				r->write_wants = err;
			} else {
				if (err == SSL_ERROR_SYSCALL &&
				    ERR_peek_error() == 0)
					log_debug("client %s: write failed "
						  "(%s)",
						  r->conn->peer_text,
						  errno ? strerror(errno)
							: "eof");
				else
					log_ssl_errors(LOG_LVL_INFO,
						       "TLS write failed");
				relay_buf_release(b);
				*fatal = true;
				return false;
			}
		}
		if (relay_buf_settle(b) < 0) {
			*fatal = true;
			return false;
		}
	}
	if (r->app_eof && b->len == 0)
		*done = true;
	return progress;
}

static void relay_on_idle(struct loop_timer *t);

static void relay_pump(struct relay *r)
{
	bool fatal = false, done = false, progress, any = false;
	uint32_t tls_ev = 0, app_ev = 0;

	do {
		progress = relay_pump_in(r, &fatal);
		if (fatal)
			break;
		progress |= relay_pump_out(r, &fatal, &done);
		any |= progress;
	} while (progress && !fatal && !done);
	if (any && !fatal && !done)
		loop_timer_arm(r->loop, &r->idle_timer, r->idle_timeout_ms,
			       relay_on_idle);

	if (fatal || done) {
		relay_finish(r, done && !fatal);
		return;
	}
	/* Ask for exactly what each side is waiting on. */
	if (r->to_app.len == 0 && !r->client_eof)
		tls_ev |= r->read_wants == SSL_ERROR_WANT_WRITE ? EPOLLOUT
								: EPOLLIN;
	if (r->to_client.len > 0)
		tls_ev |= r->write_wants == SSL_ERROR_WANT_READ ? EPOLLIN
								: EPOLLOUT;
	if (r->to_client.len == 0 && !r->app_eof)
		app_ev |= EPOLLIN;
	if (r->to_app.len > 0 && r->app_write_blocked)
		app_ev |= EPOLLOUT;
	if (loop_watch_set(r->loop, &r->tls_watch, tls_ev) < 0 ||
	    loop_watch_set(r->loop, &r->app_watch, app_ev) < 0)
		relay_finish(r, false);
}

/* MHD closes a timed-out connection without a word; HTTP wants 408 when
 * the client had begun a request. */
static void relay_on_idle(struct loop_timer *t)
{
	static const char resp[] = "HTTP/1.1 408 Request Timeout\r\n"
				   "Content-Type: text/plain\r\n"
				   "Content-Length: 20\r\n"
				   "Connection: close\r\n\r\n"
				   "408 Request Timeout\n";
	struct relay *r = container_of(t, struct relay, idle_timer);
	struct conn *c = r->conn;

	if (r->closed)
		return;
	/* Idle means no request in progress: a proxied request or a
	 * WebSocket tunnel is bounded by its location's own timeouts. */
	if (c->active_requests > 0) {
		loop_timer_arm(r->loop, &r->idle_timer, r->idle_timeout_ms,
			       relay_on_idle);
		return;
	}
	if (c->pending_request_bytes > 0 && r->to_client.len == 0) {
		log_info("client %s: request timeout (408)", c->peer_text);
		ERR_clear_error();
		SSL_write(r->ssl, resp, (int)sizeof(resp) - 1);
	} else {
		log_debug("client %s: idle timeout", c->peer_text);
	}
	relay_finish(r, true);
}

static void relay_on_tls(struct loop_watch *w, uint32_t events)
{
	struct relay *r = container_of(w, struct relay, tls_watch);

	(void)events;
	r->tls_readable = true;
	if (!r->closed)
		relay_pump(r);
}

static void relay_on_app(struct loop_watch *w, uint32_t events)
{
	struct relay *r = container_of(w, struct relay, app_watch);

	(void)events;
	r->app_readable = true;
	if (!r->closed)
		relay_pump(r);
}

int relay_start(struct conn *c, struct loop *l, int app_fd,
		unsigned idle_timeout_ms)
{
	struct relay *r = calloc(1, sizeof(*r));

	if (!r) {
		log_error("relay: out of memory");
		return -1;
	}
	r->conn = c;
	r->loop = l;
	r->ssl = c->ssl;
	r->app_fd = app_fd;
	r->idle_timeout_ms = idle_timeout_ms;
	r->tls_readable = r->app_readable = true;
	/* Whole records (and all that is there) in one read(), not a header
	 * read and a body read: the handshake is over, so nothing read ahead
	 * can be lost to kTLS any more. */
	SSL_set_read_ahead(r->ssl, 1);
	BIO_set_callback_ex(SSL_get_rbio(r->ssl), relay_bio_read_cb);
	if (loop_watch_add(l, &r->tls_watch, c->fd, EPOLLIN, relay_on_tls) <
	    0) {
		free(r);
		return -1;
	}
	if (loop_watch_add(l, &r->app_watch, app_fd, EPOLLIN, relay_on_app) <
	    0) {
		loop_watch_del(l, &r->tls_watch);
		free(r);
		return -1;
	}
	c->relay = r;
	conn_ref(c);
	loop_timer_arm(l, &r->idle_timer, idle_timeout_ms, relay_on_idle);
	/* OpenSSL may already hold application data read with the last
	 * handshake flight; pump once so it is not left waiting for a socket
	 * event that will never come. */
	relay_pump(r);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * Static files, with nginx's `root` semantics: the file is root + the full
 * request path. Every open goes through openat2(RESOLVE_BENEATH) from a
 * descriptor of root, so neither ".." nor a symlink can leave root, however
 * the path was spelled; the HTTP layer's normalisation is a first line,
 * this is the one that holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "filecache.h"
#include "files.h"
#include "log.h"

#define FILES_DATE_LEN	   64  /* IMF-fixdate is 29; room for odd years */
#define FILES_OPEN_RETRIES 4   /* openat2 EAGAIN: a rename raced the walk */
#define FILES_LOG_PATH_MAX 200 /* path bytes shown in an error-log line */
#define FILES_ALLOW	   "GET, HEAD"

/* A cached file up to this size is answered from memory (files_send). */
#define FILES_SMALL_MAX (32 * 1024)

static const char *const files_days[7] = {"Sun", "Mon", "Tue", "Wed",
					  "Thu", "Fri", "Sat"};
static const char *const files_months[12] = {"Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec"};

struct files_mime {
	const char *ext;
	const char *type;
};

static const struct files_mime files_mimes[] = {
	{"html", "text/html; charset=utf-8"},
	{"htm", "text/html; charset=utf-8"},
	{"css", "text/css; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"},
	{"mjs", "text/javascript; charset=utf-8"},
	{"json", "application/json"},
	{"txt", "text/plain; charset=utf-8"},
	{"xml", "text/xml; charset=utf-8"},
	{"svg", "image/svg+xml"},
	{"png", "image/png"},
	{"jpg", "image/jpeg"},
	{"jpeg", "image/jpeg"},
	{"gif", "image/gif"},
	{"webp", "image/webp"},
	{"ico", "image/x-icon"},
	{"pdf", "application/pdf"},
	{"wasm", "application/wasm"},
	{"woff", "font/woff"},
	{"woff2", "font/woff2"},
	{"mp4", "video/mp4"},
	{"gz", "application/gzip"},
	{"zip", "application/zip"},
	{"tar", "application/x-tar"},
	{"bin", "application/octet-stream"},
};

#define FILES_MIME_DEFAULT "application/octet-stream"

const char *files_mime_type(const char *name)
{
	const char *base, *dot;
	size_t i;

	if (!name)
		return FILES_MIME_DEFAULT;
	base = strrchr(name, '/');
	base = base ? base + 1 : name;
	dot = strrchr(base, '.');
	if (!dot || dot == base || dot[1] == '\0')
		return FILES_MIME_DEFAULT; /* "README", ".htaccess", "a." */
	for (i = 0; i < sizeof(files_mimes) / sizeof(files_mimes[0]); i++)
		if (strcasecmp(dot + 1, files_mimes[i].ext) == 0)
			return files_mimes[i].type;
	return FILES_MIME_DEFAULT;
}

/* Decimal digits at *P into *V, saturating at ULLONG_MAX; *P moves past
 * them. Returns whether there was at least one digit. */
static int files_parse_ull(const char **p, unsigned long long *v)
{
	const char *s = *p;
	unsigned long long n = 0;

	while (*s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');

		if (n > (ULLONG_MAX - d) / 10)
			n = ULLONG_MAX;
		else
			n = n * 10 + d;
		s++;
	}
	*v = n;
	if (s == *p)
		return 0;
	*p = s;
	return 1;
}

static const char *files_skip_ows(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/*
 * A number too large for 64 bits saturates: as a first position it is past
 * any file (416), as a last position or a suffix length it means "to the
 * end" (as "bytes=0-99999999999999999999" does in practice).
 */
int files_parse_range(const char *value, unsigned long long size,
		      unsigned long long *first, unsigned long long *last)
{
	const char *p;
	unsigned long long a = 0, b = 0;
	int have_a, have_b;

	if (!value)
		return 0;
	p = files_skip_ows(value);
	if (strncasecmp(p, "bytes", 5) != 0)
		return 0;
	p = files_skip_ows(p + 5);
	if (*p != '=')
		return 0;
	p = files_skip_ows(p + 1);
	if (strchr(p, ','))
		return 0; /* several ranges: serve the whole file */

	have_a = files_parse_ull(&p, &a);
	if (*p != '-')
		return 0;
	p++;
	have_b = files_parse_ull(&p, &b);
	p = files_skip_ows(p);
	if (*p != '\0' || (!have_a && !have_b))
		return 0;

	if (!have_a) {
		/* "-N": the last N bytes. */
		if (b == 0 || size == 0)
			return -1;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (have_b && a > b)
		return -1; /* as nginx: an inverted range is not satisfiable */
	if (a >= size)
		return -1;
	*first = a;
	*last = (!have_b || b >= size) ? size - 1 : b;
	return 1;
}

static void files_http_date(time_t t, char out[FILES_DATE_LEN])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, FILES_DATE_LEN, "Thu, 01 Jan 1970 00:00:00 GMT");
		return;
	}
	snprintf(out, FILES_DATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d GMT",
		 files_days[tm.tm_wday % 7], tm.tm_mday,
		 files_months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		 tm.tm_min, tm.tm_sec);
}

static int files_digits(const char *s, size_t n, int *out)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* IMF-fixdate only ("Sun, 06 Nov 1994 08:49:37 GMT"); the obsolete RFC 850
 * and asctime forms are refused, so the header is ignored. */
static int files_parse_http_date(const char *s, time_t *out)
{
	struct tm tm;
	int i, day, year, hour, min, sec, mon = -1;
	time_t t;

	if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' ||
	    s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' ||
	    strcmp(s + 25, " GMT") != 0)
		return -1;
	for (i = 0; i < 7; i++)
		if (strncmp(s, files_days[i], 3) == 0)
			break;
	if (i == 7)
		return -1;
	for (i = 0; i < 12; i++)
		if (strncmp(s + 8, files_months[i], 3) == 0)
			mon = i;
	if (mon < 0 || files_digits(s + 5, 2, &day) ||
	    files_digits(s + 12, 4, &year) || files_digits(s + 17, 2, &hour) ||
	    files_digits(s + 20, 2, &min) || files_digits(s + 23, 2, &sec))
		return -1;
	if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_mday = day;
	tm.tm_mon = mon;
	tm.tm_year = year - 1900;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*out = t;
	return 0;
}

/* PATH made safe for one error-log line. */
static void files_log_path(const char *path, char out[FILES_LOG_PATH_MAX + 4])
{
	size_t i;

	for (i = 0; path[i] && i < FILES_LOG_PATH_MAX; i++) {
		unsigned char c = (unsigned char)path[i];

		out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (path[i]) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

/* Set once openat2 answered ENOSYS (kernel before 5.6, or valgrind). */
static int files_no_openat2;

/*
 * Without openat2: walk REL one component at a time from ROOTFD with
 * O_NOFOLLOW. No symlink is followed at all (ELOOP, so 403) and ".." is
 * refused: stricter than openat2, never less safe.
 */
static int files_open_walk(int rootfd, const char *rel)
{
	char buf[PATH_MAX];
	char *comp, *next;
	struct stat st;
	size_t len = strlen(rel);
	int dfd = rootfd, fd, err, flags;

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, rel, len + 1);
	flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW;
	if (len > 0 && buf[len - 1] == '/')
		flags |= O_DIRECTORY;
	comp = buf;
	for (;;) {
		while (*comp == '/')
			comp++;
		next = strchr(comp, '/');
		if (next) {
			*next++ = '\0';
			while (*next == '/')
				next++;
			if (*next == '\0')
				next = NULL;
		}
		if (strcmp(comp, "..") == 0) {
			err = EXDEV;
			goto fail;
		}
		if (!next)
			break;
		if (strcmp(comp, ".") != 0) {
			fd = openat(dfd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0 || fstat(fd, &st) < 0) {
				err = errno;
				if (fd >= 0)
					close(fd);
				goto fail;
			}
			if (!S_ISDIR(st.st_mode)) {
				err = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
				close(fd);
				goto fail;
			}
			if (dfd != rootfd)
				close(dfd);
			dfd = fd;
		}
		comp = next;
	}
	fd = openat(dfd, *comp ? comp : ".", flags);
	err = errno;
	if (dfd != rootfd)
		close(dfd);
	errno = err;
	return fd;
fail:
	if (dfd != rootfd)
		close(dfd);
	errno = err;
	return -1;
}

/*
 * Open REL beneath DIRFD: no "..", no absolute symlink, no symlink that
 * leaves DIRFD (EXDEV), no /proc magic link (ELOOP). O_NONBLOCK so that a
 * FIFO under root cannot block the worker in open(); cleared once we know
 * the file is regular.
 */
static int files_openat2(int dirfd, const char *rel)
{
	struct open_how how;
	int i, fd = -1;

	if (__atomic_load_n(&files_no_openat2, __ATOMIC_RELAXED))
		return files_open_walk(dirfd, rel);
	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	for (i = 0; i < FILES_OPEN_RETRIES; i++) {
		fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			break;
	}
	if (fd < 0 && errno == ENOSYS) {
		if (!__atomic_exchange_n(&files_no_openat2, 1,
					 __ATOMIC_RELAXED))
			log_warn("files: no openat2(2) here (kernel < 5.6 or "
				 "valgrind): symlinks under root are refused");
		return files_open_walk(dirfd, rel);
	}
	return fd;
}

static enum MHD_Result files_respond_buffer(struct http_request *rq,
					    unsigned status, const char *body,
					    const char *hdr, const char *val)
{
	struct MHD_Response *resp;
	size_t len = strlen(body);

	resp = MHD_create_response_from_buffer(len, (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		goto fail;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    "text/plain; charset=utf-8") != MHD_YES ||
	    (hdr && MHD_add_response_header(resp, hdr, val) != MHD_YES)) {
		MHD_destroy_response(resp);
		goto fail;
	}
	rq->bytes_out = strcmp(rq->method, MHD_HTTP_METHOD_HEAD) ? len : 0;
	return http_respond(rq, status, resp);
fail:
	log_error("files: cannot build a %u response", status);
	rq->note = "out of memory";
	return http_respond_text(rq, 500, "500 Internal Server Error\n");
}

/* An errno from openat2 or fstat, as an answer. */
static enum MHD_Result files_fail(struct http_request *rq, int err,
				  const char *what)
{
	char lp[FILES_LOG_PATH_MAX + 4];

	files_log_path(rq->path, lp);
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ENAMETOOLONG:
		/* Debug only: a scanner must not flood the error log. */
		rq->note = "not found";
		log_debug("files: %s %s: %s", what, lp, strerror(err));
		return http_respond_text(rq, 404, "404 Not Found\n");
	case EXDEV:
	case ELOOP:
		rq->note = "outside root";
		log_info("files: %s %s: resolves outside root or loops (%s)",
			 what, lp, strerror(err));
		return http_respond_text(rq, 403, "403 Forbidden\n");
	case EACCES:
	case EPERM:
		rq->note = "forbidden";
		log_debug("files: %s %s: %s", what, lp, strerror(err));
		return http_respond_text(rq, 403, "403 Forbidden\n");
	default:
		rq->note = "open failed";
		log_warn("files: %s %s: %s", what, lp, strerror(err));
		return http_respond_text(rq, 500,
					 "500 Internal Server Error\n");
	}
}

/* Percent-encode what is not safe in a Location path or query. */
static size_t files_encode(char *out, const char *in, int query)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		int keep;

		if (query)
			keep = c > 0x20 && c < 0x7f && c != '#';
		else
			keep = (c >= 'a' && c <= 'z') ||
			       (c >= 'A' && c <= 'Z') ||
			       (c >= '0' && c <= '9') ||
			       strchr("-._~!$&'()*+,;=:@/", c);
		if (keep) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 0x0f];
		}
	}
	return n;
}

/* A directory asked for without its '/': 301 to path + "/" (+ query). */
static enum MHD_Result files_redirect_dir(struct http_request *rq)
{
	const char *path = rq->path;
	const char *query = rq->raw_url ? strchr(rq->raw_url, '?') : NULL;
	enum MHD_Result ret;
	char *loc;
	size_t n = 0;

	/* One leading '/' only: "//host/" would be a network-path
	 * reference, a redirect to another site. */
	while (path[0] == '/' && path[1] == '/')
		path++;
	loc = malloc(3 * strlen(path) + 2 + (query ? 3 * strlen(query) : 0) +
		     1);
	if (!loc) {
		rq->note = "out of memory";
		return http_respond_text(rq, 500,
					 "500 Internal Server Error\n");
	}
	n = files_encode(loc, path, 0);
	loc[n++] = '/';
	if (query) {
		loc[n++] = '?';
		n += files_encode(loc + n, query + 1, 1);
	}
	loc[n] = '\0';
	rq->note = "directory redirect";
	ret = files_respond_buffer(rq, 301, "301 Moved Permanently\n",
				   MHD_HTTP_HEADER_LOCATION, loc);
	free(loc);
	return ret;
}

static int files_add_headers(struct MHD_Response *resp, const char *type,
			     const char *last_modified, int accept_ranges)
{
	if (type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					    type) != MHD_YES)
		return -1;
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED,
				    last_modified) != MHD_YES)
		return -1;
	if (accept_ranges &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES,
				    "bytes") != MHD_YES)
		return -1;
	return 0;
}

/* True when the conditional headers say "not modified" (RFC 9110 13.2.2:
 * If-None-Match, when present, replaces If-Modified-Since). */
static int files_not_modified(struct http_request *rq, const struct stat *st)
{
	const char *inm, *ims;
	time_t t;

	inm = MHD_lookup_connection_value(rq->mc, MHD_HEADER_KIND,
					  MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm)
		/* No ETags are sent, so only "*" can match. */
		return strcmp(inm, "*") == 0;
	ims = MHD_lookup_connection_value(rq->mc, MHD_HEADER_KIND,
					  MHD_HTTP_HEADER_IF_MODIFIED_SINCE);
	if (!ims || files_parse_http_date(ims, &t) < 0)
		return 0;
	return st->st_mtime <= t;
}

/* A response of LEN bytes of FD from OFF. MHD owns and closes the
 * descriptor it is given: FD itself, or a duplicate when FD is the
 * cache's (CACHED). NULL when that failed (FD closed unless CACHED). */
static struct MHD_Response *files_fd_response(int fd, bool cached, uint64_t len,
					      uint64_t off)
{
	struct MHD_Response *resp;

	if (cached && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return NULL;
	resp = MHD_create_response_from_fd_at_offset64(len, fd, off);
	if (!resp)
		close(fd);
	return resp;
}

/* A small file from the cache: read into the response, so MHD writes head
 * and body at once (pread() instead of openat2, fstat, close, sendfile).
 * NULL with *stale when the file is shorter than its cached stat says. */
static struct MHD_Response *files_small_response(int fd, size_t size,
						 bool *stale)
{
	struct MHD_Response *resp;
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf)
		return NULL;
	do
		n = pread(fd, buf, size, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != size) {
		free(buf);
		*stale = true;
		return NULL;
	}
	resp = MHD_create_response_from_buffer(size, buf,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(buf);
	return resp;
}

/*
 * Answer with regular file FD, which is consumed unless CACHED: then it is
 * the open-file cache's (never closed here), and *STALE says the file
 * changed under the cache and nothing was answered.
 */
static enum MHD_Result files_send(struct http_request *rq, int fd,
				  const struct stat *st, const char *name,
				  bool cached, bool *stale)
{
	struct MHD_Response *resp;
	char lm[FILES_DATE_LEN], cr[96];
	unsigned long long size = (unsigned long long)st->st_size;
	unsigned long long first = 0, last = 0;
	int head = strcmp(rq->method, MHD_HTTP_METHOD_HEAD) == 0;
	int range = 0;
	unsigned status;

	files_http_date(st->st_mtime, lm);

	if (files_not_modified(rq, st)) {
		/* The fd response gives the Content-Length a 200 would have
		 * (RFC 9110 8.6); MHD sends no body with a 304. */
		resp = files_fd_response(fd, cached, size, 0);
		if (!resp)
			goto fail;
		if (files_add_headers(resp, NULL, lm, 0) < 0)
			goto fail_resp;
		rq->note = "not modified";
		rq->bytes_out = 0;
		return http_respond(rq, 304, resp);
	}

	/* RFC 9110 14.2: Range only applies to GET. */
	if (!head) {
		const char *rh, *ifr;

		rh = MHD_lookup_connection_value(rq->mc, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_RANGE);
		ifr = MHD_lookup_connection_value(rq->mc, MHD_HEADER_KIND,
						  MHD_HTTP_HEADER_IF_RANGE);
		/* If-Range: only our exact Last-Modified validates the range;
		 * an entity tag never does, as none is sent. */
		if (rh && ifr && strcmp(ifr, lm) != 0)
			rh = NULL;
		range = files_parse_range(rh, size, &first, &last);
	}
	if (range < 0) {
		if (!cached)
			close(fd);
		snprintf(cr, sizeof(cr), "bytes */%llu", size);
		rq->note = "range not satisfiable";
		return files_respond_buffer(rq, 416,
					    "416 Range Not Satisfiable\n",
					    MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	}
	if (range == 0 && !head && cached && size <= FILES_SMALL_MAX) {
		resp = files_small_response(fd, (size_t)size, stale);
		if (*stale)
			return MHD_NO; /* nothing queued: the caller reopens */
		if (!resp)
			goto fail;
		status = 200;
		rq->bytes_out = size;
	} else if (range > 0) {
		resp = files_fd_response(fd, cached, last - first + 1, first);
		if (!resp)
			goto fail;
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", first, last,
			 size);
		if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE,
					    cr) != MHD_YES)
			goto fail_resp;
		status = 206;
		rq->bytes_out = last - first + 1;
	} else {
		/* HEAD too: MHD sends the headers, Content-Length = size,
		 * and no body. */
		resp = files_fd_response(fd, cached, size, 0);
		if (!resp)
			goto fail;
		status = 200;
		rq->bytes_out = head ? 0 : size;
	}
	if (files_add_headers(resp, files_mime_type(name), lm, 1) < 0)
		goto fail_resp;
	return http_respond(rq, status, resp);

fail_resp:
	MHD_destroy_response(resp); /* closes fd */
fail:
	log_error("files: cannot build a response (%llu bytes)", size);
	rq->bytes_out = 0;
	rq->note = "out of memory";
	return http_respond_text(rq, 500, "500 Internal Server Error\n");
}

/* Open the index file of directory REL (ending in '/', or "."). */
static int files_open_index(int rootfd, const char *rel, const char *index,
			    char *buf, size_t bufsz)
{
	int n;

	if (strcmp(rel, ".") == 0)
		n = snprintf(buf, bufsz, "%s", index);
	else
		n = snprintf(buf, bufsz, "%s%s", rel, index);
	if (n < 0 || (size_t)n >= bufsz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return files_openat2(rootfd, buf);
}

void files_thread_cleanup(void)
{
	filecache_thread_cleanup();
}

enum files_dir {
	FILES_DIR_INDEX,    /* *FD, *ST: the directory's index file */
	FILES_DIR_ANSWERED, /* *R: redirect to "dir/", or 403 (no index) */
	FILES_DIR_FAILED,   /* errno says why */
};

/* REL, under ROOTFD, is a directory: redirect "dir" to "dir/", else open
 * its index file. No directory listings. */
static enum files_dir files_dir_index(struct http_request *rq, int rootfd,
				      const char *rel, const char *index,
				      int *fd, struct stat *st,
				      enum MHD_Result *r)
{
	char idx[PATH_MAX];
	int err;

	*fd = -1;
	if (rq->path[strlen(rq->path) - 1] != '/') {
		*r = files_redirect_dir(rq);
		return FILES_DIR_ANSWERED;
	}
	*fd = files_open_index(rootfd, rel, index, idx, sizeof(idx));
	if (*fd >= 0 && fstat(*fd, st) == 0)
		return FILES_DIR_INDEX;
	err = errno;
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	if (err == ENOENT || err == ENOTDIR) {
		rq->note = "no index";
		*r = http_respond_text(rq, 403, "403 Forbidden\n");
		return FILES_DIR_ANSWERED;
	}
	errno = err;
	return FILES_DIR_FAILED;
}

enum MHD_Result files_handle(struct http_request *rq)
{
	const char *rel, *name, *index, *what = "open";
	enum MHD_Result r;
	struct stat st;
	bool cached, stale = false;
	int rootfd, fd = -1, err;

	if (strcmp(rq->method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(rq->method, MHD_HTTP_METHOD_HEAD) != 0) {
		rq->note = "method not allowed";
		return files_respond_buffer(rq, 405, "405 Method Not Allowed\n",
					    MHD_HTTP_HEADER_ALLOW, FILES_ALLOW);
	}
	if (!rq->loc || !rq->loc->root || !rq->path || rq->path[0] != '/') {
		log_error("files: request without a root or an absolute path");
		rq->note = "no root";
		return http_respond_text(rq, 500,
					 "500 Internal Server Error\n");
	}
	index = rq->loc->index && rq->loc->index[0] ? rq->loc->index
						    : CONFIG_DEFAULT_INDEX;

	rootfd = filecache_root_fd(rq->gen->id, rq->loc->root);
	if (rootfd < 0) {
		err = errno;
		log_error("files: root %s: %s", rq->loc->root, strerror(err));
		rq->note = "root unavailable";
		return http_respond_text(rq, 500,
					 "500 Internal Server Error\n");
	}

	/* RESOLVE_BENEATH refuses absolute paths: walk from root. */
	rel = rq->path;
	while (*rel == '/')
		rel++;
	if (*rel == '\0')
		rel = ".";
	name = rel;

	fd = filecache_get(rq->gen->id, rq->loc->root, rel, &st);
	if (fd >= 0) {
		r = files_send(rq, fd, &st, name, true, &stale);
		if (!stale)
			return r;
		filecache_drop(rq->gen->id, rq->loc->root, rel);
		stale = false;
	}
	fd = files_openat2(rootfd, rel);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err = errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		what = "index";
		switch (files_dir_index(rq, rootfd, rel, index, &fd, &st, &r)) {
		case FILES_DIR_ANSWERED:
			return r;
		case FILES_DIR_FAILED:
			err = errno;
			goto fail;
		case FILES_DIR_INDEX:
			name = index;
			break;
		}
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		rq->note = "not a regular file";
		return http_respond_text(rq, 403, "403 Forbidden\n");
	}
	/* O_NONBLOCK from the open stays: it changes nothing for a regular
	 * file (reads and sendfile from the page cache never say EAGAIN),
	 * and clearing it was one system call per request. An index file
	 * is not cached under its directory's path (its name gives the
	 * Content-Type). */
	cached = name == rel &&
		 filecache_put(rq->gen->id, rq->loc->root, rel, fd, &st);
	r = files_send(rq, fd, &st, name, cached, &stale);
	if (!stale)
		return r;
	/* Shorter than fstat said a moment ago: changing under us. */
	filecache_drop(rq->gen->id, rq->loc->root, rel);
	rq->note = "file changed while read";
	return http_respond_text(rq, 503, "503 Service Unavailable\n");

fail:
	if (fd >= 0)
		close(fd);
	return files_fail(rq, err, what);
}

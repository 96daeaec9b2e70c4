// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "proxyproto.h"

static const unsigned char proxyproto_v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A decimal port 0..65535 with no sign, no leading '+', at most 5 digits. */
static int proxyproto_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t n = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++, n++) {
		if (*s < '0' || *s > '9' || n >= 5)
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static enum proxyproto_result proxyproto_parse_v1(const unsigned char *buf,
						  size_t len, size_t *used,
						  struct sockaddr_storage *src,
						  socklen_t *src_len,
						  const char **why)
{
	char line[PROXYPROTO_V1_MAX + 1], *f[6], *save = NULL, *tok;
	const unsigned char *crlf = NULL;
	size_t i, n = 0;
	uint16_t sport, dport;

	for (i = 0; i + 1 < len && i + 1 < PROXYPROTO_V1_MAX; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
	if (!crlf) {
		if (len >= PROXYPROTO_V1_MAX) {
			*why = "PROXY v1 line too long";
			return PROXYPROTO_INVALID;
		}
		return PROXYPROTO_MORE;
	}
	memcpy(line, buf, i);
	line[i] = '\0';
	*used = i + 2;
	for (tok = strtok_r(line, " ", &save); tok && n < 6;
	     tok = strtok_r(NULL, " ", &save))
		f[n++] = tok;
	if (n >= 2 && strcmp(f[1], "UNKNOWN") == 0)
		return PROXYPROTO_DONE;
	if (n != 6 || tok || strcmp(f[0], "PROXY") != 0) {
		*why = "malformed PROXY v1 line";
		return PROXYPROTO_INVALID;
	}
	if (proxyproto_port(f[4], &sport) < 0 ||
	    proxyproto_port(f[5], &dport) < 0) {
		*why = "bad port in PROXY v1 line";
		return PROXYPROTO_INVALID;
	}
	memset(src, 0, sizeof(*src));
	if (strcmp(f[1], "TCP4") == 0) {
		struct sockaddr_in *in = (struct sockaddr_in *)src;
		struct in_addr dst;

		if (inet_pton(AF_INET, f[2], &in->sin_addr) != 1 ||
		    inet_pton(AF_INET, f[3], &dst) != 1)
			goto bad_addr;
		in->sin_family = AF_INET;
		in->sin_port = htons(sport);
		*src_len = sizeof(*in);
	} else if (strcmp(f[1], "TCP6") == 0) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)src;
		struct in6_addr dst;

		if (inet_pton(AF_INET6, f[2], &in6->sin6_addr) != 1 ||
		    inet_pton(AF_INET6, f[3], &dst) != 1)
			goto bad_addr;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(sport);
		*src_len = sizeof(*in6);
	} else {
		*why = "unknown PROXY v1 protocol";
		return PROXYPROTO_INVALID;
	}
	return PROXYPROTO_DONE;
bad_addr:
	*why = "bad address in PROXY v1 line";
	return PROXYPROTO_INVALID;
}

static enum proxyproto_result proxyproto_parse_v2(const unsigned char *buf,
						  size_t len, size_t *used,
						  struct sockaddr_storage *src,
						  socklen_t *src_len,
						  const char **why)
{
	size_t body;
	unsigned ver_cmd, fam;

	if (len < 16)
		return PROXYPROTO_MORE;
	ver_cmd = buf[12];
	fam = buf[13];
	body = ((size_t)buf[14] << 8) | buf[15];
	if ((ver_cmd >> 4) != 2) {
		*why = "unsupported PROXY v2 version";
		return PROXYPROTO_INVALID;
	}
	if (len < 16 + body)
		return PROXYPROTO_MORE;
	*used = 16 + body;
	switch (ver_cmd & 0x0f) {
	case 0: /* LOCAL: the balancer's own connection */
		return PROXYPROTO_DONE;
	case 1: /* PROXY */
		break;
	default:
		*why = "unknown PROXY v2 command";
		return PROXYPROTO_INVALID;
	}
	memset(src, 0, sizeof(*src));
	switch (fam) {
	case 0x11: { /* TCP over IPv4 */
		struct sockaddr_in *in = (struct sockaddr_in *)src;

		if (body < 12)
			goto short_addr;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, buf + 16, 4);
		memcpy(&in->sin_port, buf + 24, 2);
		*src_len = sizeof(*in);
		return PROXYPROTO_DONE;
	}
	case 0x21: { /* TCP over IPv6 */
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)src;

		if (body < 36)
			goto short_addr;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, buf + 16, 16);
		memcpy(&in6->sin6_port, buf + 48, 2);
		*src_len = sizeof(*in6);
		return PROXYPROTO_DONE;
	}
	case 0x00: /* UNSPEC */
		return PROXYPROTO_DONE;
	default:
		*why = "unsupported PROXY v2 address family";
		return PROXYPROTO_INVALID;
	}
short_addr:
	*why = "PROXY v2 address block too short";
	return PROXYPROTO_INVALID;
}

enum proxyproto_result proxyproto_parse(const unsigned char *buf, size_t len,
					size_t *used,
					struct sockaddr_storage *src,
					socklen_t *src_len, const char **why)
{
	size_t cmp = len < 12 ? len : 12;

	*why = NULL;
	if (memcmp(buf, proxyproto_v2_sig, cmp) == 0)
		return len < 12 ? PROXYPROTO_MORE
				: proxyproto_parse_v2(buf, len, used, src,
						      src_len, why);
	cmp = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", cmp) == 0)
		return len < 6 ? PROXYPROTO_MORE
			       : proxyproto_parse_v1(buf, len, used, src,
						     src_len, why);
	*why = "no PROXY protocol header";
	return PROXYPROTO_INVALID;
}

enum proxyproto_result proxyproto_read(int fd, struct sockaddr_storage *src,
				       socklen_t *src_len, const char **why)
{
	unsigned char small[PROXYPROTO_V1_MAX], *buf = small;
	size_t cap = sizeof(small), used = 0;
	enum proxyproto_result r;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, cap, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			r = PROXYPROTO_WAIT;
			break;
		}
		if (n <= 0) {
			*why = n == 0 ? "connection closed before the PROXY "
					"header"
				      : strerror(errno);
			r = PROXYPROTO_INVALID;
			break;
		}
		r = proxyproto_parse(buf, (size_t)n, &used, src, src_len, why);
		/* A v2 header with TLVs can be longer than the first peek. */
		if (r == PROXYPROTO_MORE && buf == small && (size_t)n == cap &&
		    n >= 16 && memcmp(buf, proxyproto_v2_sig, 12) == 0) {
			cap = 16 + (((size_t)buf[14] << 8) | buf[15]);
			buf = malloc(cap);
			if (!buf) {
				*why = "out of memory";
				return PROXYPROTO_INVALID;
			}
			continue;
		}
		break;
	}
	if (r == PROXYPROTO_DONE && recv(fd, buf, used, 0) != (ssize_t)used) {
		*why = "short read consuming the PROXY header";
		r = PROXYPROTO_INVALID;
	}
	if (buf != small)
		free(buf);
	return r;
}

static bool proxyproto_cidr_match(const struct config_cidr *net,
				  const unsigned char *addr)
{
	unsigned full = net->prefix / 8, rest = net->prefix % 8;
	unsigned char mask;

	if (memcmp(net->addr, addr, full))
		return false;
	if (!rest)
		return true;
	mask = (unsigned char)(0xff << (8 - rest));
	return (net->addr[full] & mask) == (addr[full] & mask);
}

bool proxyproto_source_allowed(const struct config_cidr *nets, size_t n,
			       const struct sockaddr *peer)
{
	const unsigned char *addr;
	int family = peer->sa_family;
	size_t i;

	if (!n)
		return true;
	if (family == AF_INET) {
		addr = (const unsigned char *)&(
			       (const struct sockaddr_in *)peer)
			       ->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *a6 =
			&((const struct sockaddr_in6 *)peer)->sin6_addr;

		addr = a6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			addr += 12;
		}
	} else {
		return false;
	}
	for (i = 0; i < n; i++)
		if (nets[i].family == family &&
		    proxyproto_cidr_match(&nets[i], addr))
			return true;
	return false;
}

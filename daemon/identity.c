// SPDX-License-Identifier: MIT
/*
 * Client identity from the peer certificate: fingerprint, names, serial,
 * SANs, DER and the presented chain. Everything a policy or a log line
 * reads is a NUL-terminated string that cannot hide a NUL or a control
 * character: a name that would need one is dropped, never truncated (a
 * truncated "CN=admin\0.evil" must not match "CN=admin").
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "identity.h"
#include "log.h"

static const char identity_hexdigits[] = "0123456789abcdef";

void identity_fingerprint_hex(const unsigned char *der, size_t len,
			      char out[IDENTITY_FP_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	unsigned int i;

	out[0] = '\0';
	if (!EVP_Digest(der, len, md, &md_len, EVP_sha256(), NULL) ||
	    md_len * 2 != IDENTITY_FP_HEX_LEN)
		return;
	for (i = 0; i < md_len; i++) {
		out[2 * i] = identity_hexdigits[md[i] >> 4];
		out[2 * i + 1] = identity_hexdigits[md[i] & 0x0f];
	}
	out[2 * md_len] = '\0';
}

/* Printable ASCII only: what a DNS name or URI in a SAN may hold. */
static int identity_is_clean_ascii(const unsigned char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

/* UTF-8 without NUL, C0/C1 controls or DEL. */
static int identity_is_clean_utf8(const unsigned char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return 0;
		/* U+0080..U+009F are C2 80..C2 9F in UTF-8. */
		if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 &&
		    s[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

static char *identity_strndup(const void *s, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/*
 * RFC 2253 string of NAME. XN_FLAG_RFC2253 escapes ',', '+', '"', '\\',
 * '<', '>', ';', control characters and non-ASCII bytes, so the output
 * never holds a NUL; a name OpenSSL cannot print becomes "".
 */
static char *identity_name_str(const X509_NAME *name)
{
	BIO *bio;
	char *data = NULL;
	long len;
	char *out = NULL;

	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return NULL;
	if (!name || X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
		ERR_clear_error();
		out = strdup("");
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len < 0 || (len > 0 && memchr(data, '\0', (size_t)len))) {
		out = strdup("");
		goto out;
	}
	out = identity_strndup(data, (size_t)len);
out:
	BIO_free(bio);
	return out;
}

/* First CN of NAME as UTF-8, or "" if none or not clean. */
static char *identity_first_cn(const X509_NAME *name)
{
	const X509_NAME_ENTRY *e;
	unsigned char *utf8 = NULL;
	char *out;
	int idx, len;

	idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if (idx < 0)
		return strdup("");
	e = X509_NAME_get_entry(name, idx);
	len = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
	if (len < 0) {
		ERR_clear_error();
		return strdup("");
	}
	if (!identity_is_clean_utf8(utf8, (size_t)len))
		out = strdup("");
	else
		out = identity_strndup(utf8, (size_t)len);
	OPENSSL_free(utf8);
	return out;
}

/*
 * Serial as uppercase hex of its bytes, leading zero bytes dropped: the
 * form `openssl x509 -serial` prints, so an operator can compare. Zero is
 * "0"; a negative serial (invalid, but it exists) gets a '-'.
 */
static char *identity_serial_str(const ASN1_INTEGER *serial)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *d;
	size_t len, i, n = 0;
	int neg;
	char *out;

	if (!serial)
		return strdup("");
	d = ASN1_STRING_get0_data(serial);
	len = (size_t)ASN1_STRING_length(serial);
	neg = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER;
	while (len > 0 && d[0] == 0) {
		d++;
		len--;
	}
	if (len == 0)
		return strdup("0");
	out = malloc(2 * len + 2);
	if (!out)
		return NULL;
	if (neg)
		out[n++] = '-';
	for (i = 0; i < len; i++) {
		out[n++] = hex[d[i] >> 4];
		out[n++] = hex[d[i] & 0x0f];
	}
	out[n] = '\0';
	return out;
}

static int identity_add_san(char **list, size_t *count, const ASN1_IA5STRING *s)
{
	const unsigned char *d;
	size_t len;

	if (!s || *count >= IDENTITY_MAX_SANS)
		return 0;
	d = ASN1_STRING_get0_data(s);
	len = (size_t)ASN1_STRING_length(s);
	if (!identity_is_clean_ascii(d, len))
		return 0; /* skipped, not an error */
	list[*count] = identity_strndup(d, len);
	if (!list[*count])
		return -1;
	(*count)++;
	return 0;
}

static int identity_sans(X509 *cert, struct identity *id)
{
	GENERAL_NAMES *gens;
	int i, n, crit = 0, rc = 0;

	/* NULL both when absent and when the extension appears twice or does
	 * not parse: no SANs then, never a guess. */
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!gens) {
		ERR_clear_error();
		return 0;
	}
	n = sk_GENERAL_NAME_num(gens);
	for (i = 0; i < n && rc == 0; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (!g)
			continue;
		if (g->type == GEN_DNS)
			rc = identity_add_san(id->san_dns, &id->n_san_dns,
					      g->d.dNSName);
		else if (g->type == GEN_URI)
			rc = identity_add_san(id->san_uri, &id->n_san_uri,
					      g->d.uniformResourceIdentifier);
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

/*
 * Fields only: VERIFIED stays false, the caller decides whether CERT was
 * verified (identity_from_ssl does).
 */
int identity_from_x509(X509 *cert, struct identity *id)
{
	int len;
	unsigned char *p;

	memset(id, 0, sizeof(*id));
	if (!cert)
		return 0;

	len = i2d_X509(cert, NULL);
	if (len <= 0) {
		log_ssl_errors(LOG_LVL_INFO, "peer certificate: i2d_X509");
		return 0; /* no usable certificate: not verified */
	}
	id->der = malloc((size_t)len);
	if (!id->der)
		goto bad;
	p = id->der;
	if (i2d_X509(cert, &p) != len) {
		log_ssl_errors(LOG_LVL_INFO, "peer certificate: i2d_X509");
		identity_clear(id);
		return 0;
	}
	id->der_len = (size_t)len;
	identity_fingerprint_hex(id->der, id->der_len, id->fingerprint);

	id->subject = identity_name_str(X509_get_subject_name(cert));
	id->issuer = identity_name_str(X509_get_issuer_name(cert));
	id->subject_cn = identity_first_cn(X509_get_subject_name(cert));
	id->serial = identity_serial_str(X509_get0_serialNumber(cert));
	if (!id->subject || !id->issuer || !id->subject_cn || !id->serial)
		goto bad;
	if (identity_sans(cert, id) < 0)
		goto bad;
	return 0;
bad:
	log_error("identity: out of memory");
	identity_clear(id);
	return -1;
}

/* The chain the peer sent, minus the leaf, as PEM; NULL if empty. */
static int identity_chain_pem(SSL *ssl, X509 *leaf, struct identity *id)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	BIO *bio = NULL;
	char *data = NULL;
	long len;
	int i, n, written = 0, rc = -1;

	/* Absent on a resumed session: the peer sent no certificates. */
	if (!chain || sk_X509_num(chain) == 0)
		return 0;
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		goto out;
	n = sk_X509_num(chain);
	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);

		/* On the server side the leaf is not in this stack, but
		 * skip it by value in case a caller runs us client side. */
		if (!x || X509_cmp(x, leaf) == 0)
			continue;
		if (!PEM_write_bio_X509(bio, x))
			goto out;
		written++;
	}
	if (written == 0) {
		rc = 0;
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		goto out;
	id->chain_pem = identity_strndup(data, (size_t)len);
	if (id->chain_pem)
		rc = 0;
out:
	if (rc < 0)
		log_ssl_errors(LOG_LVL_ERROR, "identity: peer chain to PEM");
	BIO_free(bio);
	return rc;
}

int identity_from_ssl(SSL *ssl, struct identity *id)
{
	X509 *cert;

	memset(id, 0, sizeof(*id));
	if (!ssl)
		return 0;
	cert = SSL_get0_peer_certificate(ssl);
	if (!cert)
		return 0;
	/*
	 * A certificate that failed verification fails the handshake, but
	 * a verify callback may have let it through: be strict. On a
	 * resumed session OpenSSL keeps the result in the session.
	 */
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;
	if (identity_from_x509(cert, id) < 0)
		return -1;
	if (!id->der)
		return 0;
	if (identity_chain_pem(ssl, cert, id) < 0) {
		identity_clear(id);
		return -1;
	}
	id->verified = true;
	return 0;
}

static void identity_free_list(char **list, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < IDENTITY_MAX_SANS; i++)
		free(list[i]);
}

void identity_clear(struct identity *id)
{
	if (!id)
		return;
	free(id->subject);
	free(id->subject_cn);
	free(id->issuer);
	free(id->serial);
	identity_free_list(id->san_dns, id->n_san_dns);
	identity_free_list(id->san_uri, id->n_san_uri);
	free(id->der);
	free(id->chain_pem);
	memset(id, 0, sizeof(*id));
}

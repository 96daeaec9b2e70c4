/* SPDX-License-Identifier: MIT */
/*
 * The CRL set of the process: read from [tls] crl at start-up and on
 * SIGHUP, and again whenever the file changes (checked every
 * crl_check_interval). Every generation's X509_STORE asks this module for
 * CRLs (X509_STORE_set_lookup_crls), so a new list reaches the next
 * handshake on every worker at once, whatever generation it runs under.
 */
#ifndef MTLSGW_CRL_H
#define MTLSGW_CRL_H

#include <stdint.h>
#include <stdio.h>
#include <openssl/x509.h>

/* Parse every PEM CRL in PATH into *OUT (at least one). On failure WHY
 * says what is wrong and -1 is returned. */
int crl_read_file(const char *path, STACK_OF(X509_CRL) * *out, char *why,
		  size_t why_len);

/* Main thread: use PATH (NULL: no CRL) re-read every INTERVAL_MS (0: only
 * when this is called again, i.e. on SIGHUP). Reads the file now; on
 * failure the previous list stays and -1 is returned (logged). */
int crl_configure(const char *path, unsigned interval_ms);

/* Main thread, called often: re-read the file if the interval has passed
 * and its inode, size or mtime changed. A file that does not parse keeps
 * the old list and is logged once per change. */
void crl_tick(void);

/* Changes whenever the CRL set in force changes (load, reload, clear). A
 * cached verification result must be keyed by it: it cannot outlive a
 * revocation it could have seen. */
uint64_t crl_epoch(void);

/* For X509_STORE_set_lookup_crls: the CRLs whose issuer is NM (caller
 * frees). */
STACK_OF(X509_CRL) * crl_lookup(const X509_STORE_CTX *ctx, const X509_NAME *nm);

/* 1 if a CRL in force lists CERT (by issuer name and serial), else 0. For
 * resumed sessions, which skip verification. */
int crl_lists(X509 *cert);

/* Drop the list (at exit). */
void crl_cleanup(void);

#endif

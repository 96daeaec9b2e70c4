/* SPDX-License-Identifier: MIT */
/* Hexadecimal digits, for every parser that reads them (percent-encoded
 * paths, the keylog line, chunk sizes). */
#ifndef MTLSGW_HEX_H
#define MTLSGW_HEX_H

/* The value of hex digit C (either case), or -1. */
static inline int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif

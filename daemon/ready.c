// SPDX-License-Identifier: MIT
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "ready.h"

static atomic_uint ready_mask;

void ready_set_blocker(enum ready_reason reason, bool on)
{
	if (on)
		atomic_fetch_or(&ready_mask, (unsigned)reason);
	else
		atomic_fetch_and(&ready_mask, ~(unsigned)reason);
}

unsigned ready_blockers(void)
{
	return atomic_load(&ready_mask);
}

void ready_describe(unsigned mask, char *buf, size_t len)
{
	snprintf(buf, len, "not ready:%s%s\n",
		 mask & READY_DRAINING ? " draining" : "",
		 mask & READY_FLEET ? " fleet store unreachable" : "");
}

/* SPDX-License-Identifier: MIT */
/*
 * SIGHUP helpers: the errors of a refused reload go to the error log (not
 * to stderr, which a daemon under systemd or with error_log = FILE may not
 * show), and the settings a running daemon keeps until a restart are named
 * when the new file changes them.
 */
#ifndef MTLSGW_RELOAD_H
#define MTLSGW_RELOAD_H

#include <stddef.h>

#include "config.h"

/* Log each line of TEXT (LEN bytes: the "FILE:LINE: message" lines a
 * refused load printed) as one error line prefixed by "reload: ". */
void reload_log_errors(const char *text, size_t len);

/* One warning per setting that differs between OLD and CFG and that only
 * a restart applies: log targets and level, max_connections, the HTTP
 * engine's limits, user, pid_file. */
void reload_warn_fixed(const struct config *old, const struct config *cfg);

#endif

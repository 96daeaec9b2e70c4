// SPDX-License-Identifier: MIT
/* libFuzzer target: whole configuration files (config_load). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/mtlsgw-fuzz-XXXXXX";
	struct config *cfg = NULL;
	FILE *devnull = fopen("/dev/null", "w");
	int fd = mkstemp(path);

	if (fd < 0 || !devnull)
		abort();
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (config_load(path, devnull, &cfg) == 0)
		config_free(cfg);
	unlink(path);
	fclose(devnull);
	return 0;
}

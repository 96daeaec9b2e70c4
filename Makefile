# SPDX-License-Identifier: MIT
# mtlsgw: build, run, test. `make V=1` shows commands.
.DELETE_ON_ERROR:
# Keep intermediates (bpf objects, skeletons): no "rm" after the test count.
.SECONDARY:
.SUFFIXES:

BUILD    ?= build
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
PKGS     := libmicrohttpd inih openssl libbpf hiredis
WERROR   ?= $(if $(filter true,$(CI)),-Werror,)
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wformat=2 $(WERROR)
CPPFLAGS += -D_GNU_SOURCE -iquote . -iquote include -iquote $(BUILD) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

ifeq ($(V),1)
Q :=
else
Q := @
endif

DAEMON_SRCS := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:%.c=$(BUILD)/%)
TOOL_SRCS   := $(wildcard tools/*.c)
TOOL_BINS   := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))

# --- eBPF: %.bpf.c -> %.bpf.o -> %.skel.h (vmlinux.h from the running kernel)
BPF_SRCS    := $(wildcard bpf/*.bpf.c)
BPF_OBJS    := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
BPF_SKELS   := $(BPF_SRCS:bpf/%.bpf.c=$(BUILD)/%.skel.h)
BPF_ARCH    := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
BPF_CFLAGS  := -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Iinclude -I$(BUILD) -Wall

.PHONY: all deps run test unit format-check layers-check clean FORCE
# `make` builds only; run and test install what is missing first, then
# build in a sub-make (pkg-config's flags are read when make starts).
all: $(BUILD)/mtlsgw $(TOOL_BINS)

deps:
	$(Q)scripts/install-deps.sh

$(BUILD)/vmlinux.h:
	@mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard include/*.h)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BPF     $@")
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@$(if $(Q),echo "  SKEL    $@")
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

# daemon/limits.c on plain TCP sockets, for tests/bpf/ (no TLS, no daemon)
BPF_TEST_BINS := $(BUILD)/tests/bpf/limits_probe
$(BUILD)/tests/bpf/limits_probe: tests/bpf/limits_probe.c $(BUILD)/daemon/limits.o \
				$(BUILD)/daemon/limits_bpf.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $^ $(LDLIBS)

# --- daemon: each object depends on the headers it includes (-MMD -MP)
$(BUILD)/%.o: %.c | $(BPF_SKELS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c $< -o $@

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Rewritten only when `git describe` changes, so main.o is rebuilt then.
$(BUILD)/version.h: FORCE
	@mkdir -p $(@D)
	@echo '#define MTLSGW_VERSION "$(VERSION)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(BUILD)/daemon/main.o: $(BUILD)/version.h

$(BUILD)/libmtlsgw.a: $(DAEMON_OBJS)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/mtlsgw: $(BUILD)/daemon/main.o $(BUILD)/libmtlsgw.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: $(BUILD)/tools/%.o $(BUILD)/libmtlsgw.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libmtlsgw.a
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $^ $(LDLIBS) -lcmocka

unit: all $(UNIT_BINS)

# --- run the demo
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/gen-certs.sh certs
	$(Q)scripts/run-demo.sh

# --- sanitizer build: the daemon and the unit tests again, with gcc's
# AddressSanitizer and UndefinedBehaviorSanitizer, in a folder of their own
# (its own BPF skeletons too: BPF_CFLAGS never see these flags). make test
# runs the unit and integration suites on it (tests/run-all.sh, suite asan).
ASAN_BUILD  ?= build-asan
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined
.PHONY: asan
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) \
		CFLAGS="$(ASAN_CFLAGS)" $(ASAN_BUILD)/mtlsgw \
		$(UNIT_SRCS:%.c=$(ASAN_BUILD)/%)

# --- tests: every suite, one closing line with the counts
test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS) $(BPF_TEST_BINS) asan
	$(Q)tests/run-all.sh

# Dependencies between daemon/ modules point down the layer list.
layers-check:
	$(Q)scripts/check-layers.sh daemon

format-check:
	$(Q)clang-format --dry-run --Werror $(wildcard daemon/*.[ch] include/*.h bpf/*.c tools/*.c tests/unit/*.c tests/fuzz/*.c)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

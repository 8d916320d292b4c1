# kesu — build, run and test. `make run` and `make test` do everything on a
# fresh Debian 12 machine (see README.md).
#
#   make deps    install the Debian packages below (apt-get; as root or via sudo)
#   make         build everything into build/ (-O2)
#   make run     deps + build + embedded Postgres under var/ + every service
#   make test    deps + sanitizer build (build-san/) + unit tests + end-to-end tests
#   make bench   the load generator (bench/); build/bin/bench-routing: routing decisions/s

DEB_PACKAGES := build-essential pkg-config libzmq3-dev libprotobuf-c-dev protobuf-c-compiler \
  protobuf-compiler libevent-dev libpq-dev libjansson-dev libcmocka-dev libcurl4-openssl-dev \
  libssl-dev postgresql-15 python3-pytest python3-zmq python3-psycopg2 python3-protobuf \
  python3-requests curl chromium fonts-wqy-zenhei

SAN ?= 0
ifeq ($(SAN),1)
  B := build-san
  OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDSAN := -fsanitize=address,undefined
else
  B := build
  OPT := -O2 -g
  LDSAN :=
endif

CC ?= cc
PKGS := libzmq libprotobuf-c libevent libevent_pthreads libpq jansson libcurl openssl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter $(OPT) \
  -I$(B)/gen -Icommon $(PKG_CFLAGS)
LDLIBS = $(PKG_LIBS) -lm -lpthread

PROTOS := $(wildcard proto/kesu/v1/*.proto)
GEN_C := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
GEN_H := $(GEN_C:.c=.h)
GEN_PY := $(patsubst proto/%.proto,$(B)/gen/py/%_pb2.py,$(PROTOS))

COMMON_SRC := $(filter-out common/test_%.c,$(wildcard common/*.c))
COMMON_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(COMMON_SRC)) $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(GEN_C))
LIB := $(B)/lib/libkesu.a

SERVICES := intake router handler sla notifier analytics
BINS := $(patsubst %,$(B)/bin/kesu-%,$(SERVICES)) $(B)/bin/kesuctl

# Unit tests: common/test_*.c and services/<svc>/test_*.c (cmocka). A service
# test links the service's modules except main.c.
COMMON_TESTS := $(patsubst common/%.c,$(B)/tests/common_%,$(wildcard common/test_*.c))
SVC_TESTS := $(foreach s,$(SERVICES) kesuctl,$(patsubst services/$(s)/%.c,$(B)/tests/$(s)_%,$(wildcard services/$(s)/test_*.c)))

.PHONY: all deps build run test unit e2e bench clean lint web
.DEFAULT_GOAL := all
all: $(BINS) $(GEN_PY) $(B)/bin/bench-routing
build: all

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done; \
	  command -v npm >/dev/null || echo nodejs npm); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	else echo "deps: all Debian packages present"; fi

$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto $(PROTOS)
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -Iproto $<

$(B)/gen/py/%_pb2.py: proto/%.proto $(PROTOS)
	@mkdir -p $(B)/gen/py
	protoc --python_out=$(B)/gen/py -Iproto $<

$(B)/obj/gen/%.o: $(B)/gen/%.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

$(B)/obj/%.o: %.c $(GEN_H) $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define service_rules
$(1)_SRC := $$(filter-out services/$(1)/test_%.c,$$(wildcard services/$(1)/*.c))
$(1)_OBJ := $$(patsubst %.c,$(B)/obj/%.o,$$($(1)_SRC))
$(1)_MODS := $$(filter-out $(B)/obj/services/$(1)/main.o,$$($(1)_OBJ))
$(B)/tests/$(1)_%: services/$(1)/%.c $$($(1)_MODS) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -Iservices/$(1) $$< $$($(1)_MODS) $(LIB) -o $$@ $(LDSAN) $$(LDLIBS) -lcmocka
endef
$(foreach s,$(SERVICES) kesuctl,$(eval $(call service_rules,$(s))))

# Link rules (per service, so each binary sees its own object list).
define link_rule
$(2): $$($(1)_OBJ) $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) $$($(1)_OBJ) $(LIB) -o $$@ $(LDSAN) $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call link_rule,$(s),$(B)/bin/kesu-$(s))))
$(eval $(call link_rule,kesuctl,$(B)/bin/kesuctl))

# In-process routing decisions (issue 3 speed): built by all, run by hand, not by make test.
$(B)/bin/bench-routing: bench/routing.c $(B)/obj/services/router/rules.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iservices/router $< $(B)/obj/services/router/rules.o $(LIB) -o $@ $(LDSAN) $(LDLIBS)

$(B)/tests/common_%: common/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIB) -o $@ $(LDSAN) $(LDLIBS) -lcmocka

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# Front-end libraries from npm (package.json / package-lock.json): ECharts for
# the dashboard, playwright-core for the browser tests. Not committed.
web: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

run: deps
	@$(MAKE) --no-print-directory all web
	@exec deploy/local/run.sh

unit: $(COMMON_TESTS) $(SVC_TESTS)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

e2e: all
	cd tests && KESU_BUILD=$(CURDIR)/$(B) /usr/bin/python3 -m pytest -q -x --durations=10 $(PYTEST_ARGS)

test: deps
	@$(MAKE) --no-print-directory web
	@$(MAKE) --no-print-directory SAN=1 all unit
	@$(MAKE) --no-print-directory SAN=1 e2e

bench: all
	/usr/bin/python3 bench/load.py $(BENCH_ARGS)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance -I common common services

clean:
	rm -rf build build-san

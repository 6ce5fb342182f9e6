# singleton: PGXS build
MODULE_big = singleton
OBJS = \
	src/singleton.o \
	src/registry.o \
	src/factory.o \
	src/ratelimit.o \
	src/stats.o \
	src/worker.o \
	src/jobs.o \
	src/persist.o \
	src/quota.o

EXTENSION = singleton
DATA = singleton--1.0.sql singleton--1.0--1.1.sql
PGFILEDESC = "singleton - shared-memory registry for PostgreSQL"

# The tests start their own server with the library preloaded.
# full runs last: filling the area leaves DSA superblocks behind
REGRESS = registry errors security scoping factory ratelimit jobs null_arguments attack_search_path attack_jobs attack_squatting attack_memory version_differences wait_events full
REGRESS_OPTS = --temp-config=$(srcdir)/test/singleton.conf --temp-instance=./tmp_check
ISOLATION = set-delete factory-race factory-failure factory-terminate factory-waiter factory-recursion attack-squatting
ISOLATION_OPTS = --temp-config=$(srcdir)/test/isolation.conf --temp-instance=./tmp_check_iso
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared-memory layout in the headers.
$(OBJS): src/compat.h src/singleton.h src/registry.h src/worker.h src/quota.h

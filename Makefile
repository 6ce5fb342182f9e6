# singleton: PGXS build
MODULE_big = singleton
# Layers, bottom up (src/README): common and area (with quota), the stores,
# the features, the job worker, and module initialisation on top.
OBJS = \
	src/common.o \
	src/area.o \
	src/quota.o \
	src/admission.o \
	src/registry.o \
	src/limiter.o \
	src/factory.o \
	src/persist.o \
	src/jsonb_writer.o \
	src/stats.o \
	src/jobs.o \
	src/worker.o \
	src/singleton.o

EXTENSION = singleton
DATA = singleton--1.0.sql singleton--1.0--1.1.sql
PGFILEDESC = "singleton - shared-memory registry for PostgreSQL"

# The tests start their own server with the library preloaded.
# full_registry runs last: filling the area leaves DSA superblocks behind
REGRESS = set_get_delete_incr stats_maps bad_input owners_and_private_entries per_database factories rate_limits jobs_as_owner null_arguments attack_search_path attack_jobs attack_squatting attack_memory version_differences wait_events full_registry
REGRESS_OPTS = --temp-config=$(srcdir)/test/singleton.conf --temp-instance=./tmp_check
ISOLATION = set-delete factory-race factory-failure factory-terminate factory-waiter factory-recursion attack-squatting
ISOLATION_OPTS = --temp-config=$(srcdir)/test/isolation.conf --temp-instance=./tmp_check_iso
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared-memory layout in the headers.
$(OBJS): $(wildcard src/*.h)

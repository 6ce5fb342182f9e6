#!/usr/bin/env bash
# Throwaway cluster helpers for scripts/demo and scripts/bench (sourced after
# setup.sh).  The cluster lives in a temp dir owned by the unprivileged user,
# listens only on a unix socket there, and is removed by cluster_stop.

CLUSTER_DIR=""
CLUSTER_PORT=""

# cluster_start PORT [extra postgresql.conf lines...]
cluster_start() {
	CLUSTER_PORT=$1
	shift
	CLUSTER_DIR=$(mktemp -d /tmp/singleton-cluster.XXXXXX)
	[ "$(id -u)" -eq 0 ] && chown "$RUN_USER" "$CLUSTER_DIR"
	as_user "initdb -D '$CLUSTER_DIR/data' -A trust -U postgres >'$CLUSTER_DIR/initdb.log' 2>&1" ||
		{ cat "$CLUSTER_DIR/initdb.log" >&2; return 1; }
	{
		echo "shared_preload_libraries = 'singleton'"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$CLUSTER_DIR'"
		echo "port = $CLUSTER_PORT"
		local line
		for line in "$@"; do echo "$line"; done
	} | as_user "cat >> '$CLUSTER_DIR/data/postgresql.conf'"
	if ! as_user "pg_ctl -D '$CLUSTER_DIR/data' -l '$CLUSTER_DIR/server.log' -w start >/dev/null"; then
		# the log is all a user has to go on: show it before it is removed
		log "the server did not start; the end of its log:"
		tail -40 "$CLUSTER_DIR/server.log" >&2 || true
		return 1
	fi
	export PGHOST=$CLUSTER_DIR PGPORT=$CLUSTER_PORT PGUSER=postgres
}

cluster_psql() {
	as_user "psql -X -h '$CLUSTER_DIR' -p $CLUSTER_PORT -U postgres $*"
}

cluster_stop() {
	[ -n "$CLUSTER_DIR" ] || return 0
	as_user "pg_ctl -D '$CLUSTER_DIR/data' -m fast -w stop >/dev/null 2>&1" || true
	rm -rf "$CLUSTER_DIR"
	CLUSTER_DIR=""
}

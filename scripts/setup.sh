#!/usr/bin/env bash
# Shared set-up for scripts/demo, scripts/test and scripts/bench (sourced).
#
# Installs what is missing from Debian packages (as root, or through sudo),
# builds and installs the extension, and prepares a private copy of the
# source tree owned by an unprivileged user, because PostgreSQL refuses to
# run as root.

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
export PG_CONFIG=$PGBIN/pg_config
export PATH=$PGBIN:$PATH

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
	RUN_USER=postgres
else
	SUDO="sudo"
	RUN_USER=$(id -un)
fi

log() { printf '==> %s\n' "$*" >&2; }

# Packages a fresh Debian 12 machine lacks.  Extra packages may be named.
ensure_packages() {
	local pkgs=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libipc-run-perl make gcc "$@")
	local missing=()
	local p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]}"
	# we start our own throwaway clusters; the packaged main cluster is not wanted
	$SUDO mkdir -p /etc/postgresql-common
	if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
		echo 'create_main_cluster = false' | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
	fi
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_and_install() {
	log "building and installing the extension"
	make -C "$TOP" -s PG_CONFIG="$PG_CONFIG" >/dev/null
	$SUDO make -C "$TOP" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

# A copy of the tree the unprivileged user may write to; prints its path.
private_copy() {
	local dir
	dir=$(mktemp -d /tmp/singleton.XXXXXX)
	tar -C "$TOP" --exclude=.git --exclude='*.o' --exclude='*.bc' --exclude=tmp_check \
		--exclude=tmp_check_iso --exclude=results --exclude=output_iso -cf - . | tar -C "$dir" -xf -
	[ "$(id -u)" -eq 0 ] && chown -R "$RUN_USER" "$dir"
	chmod 755 "$dir"
	echo "$dir"
}

# Run a command line as the unprivileged user, with our PATH.
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$RUN_USER" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" bash -c "$1"
	else
		bash -c "$1"
	fi
}

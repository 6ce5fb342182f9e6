#!/usr/bin/env bash
# Shared set-up for scripts/demo, scripts/test and scripts/bench (sourced).
#
# PG_MAJOR (default 15) chooses the PostgreSQL major.  15 is Debian 12's
# packaged server; any other major is built once from Debian's own source
# package, with assertions, into $SINGLETON_CACHE/pgMAJOR and reused.
#
# Root is needed only to install Debian packages and, for the packaged
# server, to install the extension into it.  Run as root, the servers run as
# the "postgres" user; run as another user, the Debian packages must already
# be installed (the script says which) and the packaged server's directories
# must be writable by that user.  Nothing outside the checkout, the temp
# dirs, the cache dir and the PostgreSQL install is written.

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# initdb fails on a locale the machine has not generated (a fresh debootstrap
# root inherits the caller's LANG): use C.UTF-8, which glibc always has.
export LANG=C.UTF-8
for v in $(env | sed -n 's/^\(LC_[A-Z_]*\|LANGUAGE\)=.*/\1/p'); do unset "$v"; done
PG_MAJOR=${PG_MAJOR:-15}
PACKAGED_MAJOR=15

if [ "$(id -u)" -eq 0 ]; then
	RUN_USER=postgres
	SINGLETON_CACHE=${SINGLETON_CACHE:-/var/cache/singleton}
else
	RUN_USER=$(id -un)
	SINGLETON_CACHE=${SINGLETON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/singleton}
fi

log() { printf '==> %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# Point PG_CONFIG and PATH at the chosen major.
select_postgres() {
	case "$PG_MAJOR" in
	'' | *[!0-9]*) die "PG_MAJOR must be a PostgreSQL major version number, such as 15 or 18" ;;
	esac
	[ "$PG_MAJOR" -ge 15 ] || die "singleton supports PostgreSQL 15 and later, not $PG_MAJOR"
	if [ "$PG_MAJOR" -eq "$PACKAGED_MAJOR" ]; then
		PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
	else
		PG_PREFIX=$SINGLETON_CACHE/pg$PG_MAJOR
		PGBIN=$PG_PREFIX/bin
	fi
	export PG_CONFIG=$PGBIN/pg_config
	export PATH=$PGBIN:$PATH
}

# Debian packages a fresh Debian 12 lacks, for this major.  Extra packages
# may be named.
ensure_packages() {
	local pkgs=(make gcc libc6-dev libipc-run-perl "$@")
	local missing=() p
	if [ "$PG_MAJOR" -eq "$PACKAGED_MAJOR" ]; then
		pkgs+=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR)
	else
		# to fetch and build Debian's source package; postgresql-common
		# provides the unprivileged "postgres" user
		pkgs+=(dpkg-dev bzip2 xz-utils bison flex perl zlib1g-dev postgresql-common)
	fi
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing Debian packages; as root, run: apt-get install ${missing[*]}"
	fi
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The packaged server is there once its package is; another major is built
# (once) into the cache, owned by the user the servers run as.
ensure_postgres() {
	[ "$PG_MAJOR" -eq "$PACKAGED_MAJOR" ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		mkdir -p "$SINGLETON_CACHE"
		chown "$RUN_USER" "$SINGLETON_CACHE"
	fi
	as_user "cd / && '$TOP/scripts/build-postgres' '$PG_MAJOR' '$PG_PREFIX'"
}

# A copy of the tracked tree (and untracked, unignored files) that the
# unprivileged user may write to; prints its path.  Building there means a
# stale object from another server version can never be linked in.
private_copy() {
	local dir
	dir=$(mktemp -d /tmp/singleton.XXXXXX)
	if git -C "$TOP" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$TOP" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$dir" -xf -
	else
		tar -C "$TOP" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
			--exclude=tmp_check --exclude=tmp_check_iso --exclude=results \
			--exclude=output_iso -cf - . | tar -C "$dir" -xf -
	fi
	[ "$(id -u)" -eq 0 ] && chown -R "$RUN_USER" "$dir"
	chmod 755 "$dir"
	echo "$dir"
}

# Build in a fresh private copy and install; sets WORK to the copy.
build_and_install() {
	WORK=$(private_copy)
	log "building the extension against $("$PG_CONFIG" --version) in $WORK"
	as_user "cd '$WORK' && make -s PG_CFLAGS='${PG_CFLAGS:-}' >build.log 2>&1" ||
		{ cat "$WORK/build.log"; die "the extension did not build"; }
	if grep -q 'warning:' "$WORK/build.log"; then cat "$WORK/build.log" >&2; fi
	if [ "$PG_MAJOR" -eq "$PACKAGED_MAJOR" ] && [ "$(id -u)" -eq 0 ]; then
		make -C "$WORK" -s install >/dev/null
	else
		as_user "make -C '$WORK' -s install >/dev/null" ||
			die "could not install into $("$PG_CONFIG" --pkglibdir); run as root, or as a user who may write there"
	fi
}

# Run a command line as the unprivileged user, with our PATH, from / (the
# caller's directory, /root say, may be closed to that user).
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u "$RUN_USER" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" bash -c "$1")
	else
		bash -c "$1"
	fi
}

# Print the end of every server log under a directory (after a failure).
show_server_logs() {
	local f
	for f in $(find "$1" \( -path '*/log/*' -o -name server.log \) -type f 2>/dev/null | sort); do
		echo "--- last lines of $f"
		tail -40 "$f"
	done
}

select_postgres

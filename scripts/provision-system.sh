#!/usr/bin/env bash
# System packages pgfeed needs on Debian/Ubuntu: PostgreSQL >= 15 with plpython3u
# (and plpgsql_check, which the tests run), and pgvector >= 0.8 built with PGXS from Debian's source package when the
# server does not have it yet. Idempotent: each step checks before it acts.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PGVECTOR_SUITE=${PGVECTOR_SUITE:-trixie}   # a Debian release whose sources carry pgvector >= 0.8

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

need_pkgs=()
for pkg in "postgresql-$PG_MAJOR" "postgresql-plpython3-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" \
           "postgresql-$PG_MAJOR-plpgsql-check" python3.11-venv dpkg-dev build-essential; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

sharedir=$("$PG_CONFIG" --sharedir)
vector_version() {
  sed -n "s/^default_version = '\(.*\)'/\1/p" "$sharedir/extension/vector.control" 2>/dev/null || true
}
have=$(vector_version)
if [ -n "$have" ] && [ "$(printf '%s\n0.8.0\n' "$have" | sort -V | head -1)" = "0.8.0" ]; then
  log "pgvector $have already installed"
  exit 0
fi

log "building pgvector from Debian's source package ($PGVECTOR_SUITE)"
src_list=/etc/apt/sources.list.d/pgfeed-pgvector-src.sources
if [ ! -f "$src_list" ]; then
  $SUDO tee "$src_list" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $PGVECTOR_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
$SUDO apt-get update -qq
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
chmod a+rx "$build"  # apt's sandbox user reads the download there
(cd "$build" && apt-get source -qq --download-only pgvector && dpkg-source -x --no-check ./pgvector_*.dsc src >/dev/null)
make -s -C "$build/src" PG_CONFIG="$PG_CONFIG" USE_PGXS=1 >/dev/null
$SUDO make -s -C "$build/src" PG_CONFIG="$PG_CONFIG" USE_PGXS=1 install >/dev/null
log "pgvector $(vector_version) installed"

#!/usr/bin/env bash
# Installs what `make test` and `make dev` need on a fresh Debian machine:
# PostgreSQL 15's server and pg_cron (Debian packages), uv (from PyPI), the locked Python
# dependencies. Safe to run again: it only installs what is missing.
set -euo pipefail
# Everything it prints is progress: on stderr, so `eval "$(make -s tokens)"`
# reads the target's own output only.
exec 1>&2

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else echo "need root to run: $*" >&2; exit 1; fi
}

apt_install() {
  say "installing $* (apt)"
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL server binaries; Debian's package also creates the `postgres`
# user that runs the private cluster when we are root.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if apt-cache show postgresql-15 >/dev/null 2>&1 || { as_root apt-get update -qq && APT_UPDATED=1 && apt-cache show postgresql-15 >/dev/null 2>&1; }; then
    apt_install postgresql-15
  else
    apt_install postgresql
  fi
  # The package starts a system-wide cluster we do not use.
  as_root service postgresql stop >/dev/null 2>&1 || true
fi

# pg_cron (Debian's postgresql-15-cron): the private clusters preload it, as
# hosted Supabase does, so the migrations schedule the real thing.
pg_version="$(if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then echo 15; else ls /usr/lib/postgresql | sort -V | tail -n 1; fi)"
if [ ! -f "/usr/lib/postgresql/$pg_version/lib/pg_cron.so" ]; then
  apt_install "postgresql-$pg_version-cron"
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "the postgres system user is missing: reinstall postgresql-15" >&2; exit 1
fi

# The local stand-in extensions (pg_net): control and SQL files only, copied
# into PostgreSQL's extension folder when they changed.
ext_dir="$(ls -d /usr/share/postgresql/15/extension 2>/dev/null || ls -d /usr/share/postgresql/*/extension | sort -V | tail -n 1)"
for file in infra/local/extensions/*; do
  if ! cmp -s "$file" "$ext_dir/$(basename "$file")"; then
    say "installing $(basename "$file") into $ext_dir"
    as_root install -m 0644 "$file" "$ext_dir/"
  fi
done

export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  if ! python3 -m pip --version >/dev/null 2>&1; then apt_install python3-pip; fi
  say "installing uv (pip)"
  python3 -m pip install --quiet --user uv 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages uv
fi

# openssl: the artifacts' hashed CA directory (scripts/package_functions.py).
if ! command -v openssl >/dev/null 2>&1; then
  apt_install openssl
fi

# curl: the commands `make dev` prints use it.
if ! command -v curl >/dev/null 2>&1; then
  apt_install curl ca-certificates
fi

# Node: the Serverless Framework (osls), the Supabase CLI, supabase-js and
# @supabase/ssr for the tests.
if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing Node packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Headless Chromium for the browser tests, driven by npm's playwright-core
# (which downloads no browser).
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium fonts-liberation
fi

say "syncing Python dependencies (uv)"
uv sync --frozen --quiet

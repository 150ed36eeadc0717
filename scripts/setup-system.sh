#!/usr/bin/env bash
# One-time system setup for the tests: installs, with apt-get and as root, the Debian packages whose
# commands the test suite runs. Installs only what is missing, so running it again does nothing.
#
#   chromium      the Flower test renders the tasks page headless (--dump-dom, --screenshot)
#   chromedriver  (package chromium-driver) the console's browser tests drive chromium through Selenium
#   openssl       the STARTTLS test makes a throwaway certificate
#   redis-server  the broker-outage test starts a private Redis of its own
#
# Usage: sudo bash scripts/setup-system.sh      install what is missing (CI: .ci/run does this)
#        bash scripts/setup-system.sh --check   no install: exit 1 naming the first missing one
#                                               (scripts/test.sh runs this)
set -euo pipefail

# command:package (Debian names)
REQUIRED=(chromium:chromium chromedriver:chromium-driver openssl:openssl redis-server:redis-server)

have() {
  case "$1" in
    chromium) command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for entry in "${REQUIRED[@]}"; do
  have "${entry%%:*}" || missing+=("${entry#*:}")
done

if [ "${1:-}" = "--check" ]; then
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "error: ${missing[0]} is missing; run: sudo bash scripts/setup-system.sh" >&2
    exit 1
  fi
  exit 0
fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: nothing to install (${REQUIRED[*]%%:*} present)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: installing ${missing[*]} needs root; run: sudo bash scripts/setup-system.sh" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here; install ${missing[*]} with this system's package manager" >&2
  exit 1
fi
echo "setup-system: installing ${missing[*]} with apt-get (as root)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
for entry in "${REQUIRED[@]}"; do
  have "${entry%%:*}" || { echo "error: ${entry#*:} still missing after apt-get install" >&2; exit 1; }
done
echo "setup-system: done"

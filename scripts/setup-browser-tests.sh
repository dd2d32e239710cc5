#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (/usr/bin/chromium) and
# playwright-core (into tests/browser/node_modules). Quick when both are there already.
# Playwright's own browser download is not used: the tests drive the system Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup-browser-tests: Node.js and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "setup-browser-tests: installing Debian's chromium"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

want=$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' tests/browser/package.json)
have=$(sed -n 's/.*"version": "\(.*\)".*/\1/p' tests/browser/node_modules/playwright-core/package.json 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "setup-browser-tests: installing playwright-core $want"
  # No lock file: the version is pinned exactly in package.json.
  npm install --prefix tests/browser --no-package-lock --no-audit --no-fund --loglevel=error
fi

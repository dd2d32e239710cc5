#!/usr/bin/env bash
# Installs what the benchmarks compare against: ripgrep (Debian). SQLite FTS5 comes with Python.
set -euo pipefail
if ! command -v rg > /dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq ripgrep
fi
python3 -c "import sqlite3; sqlite3.connect(':memory:').execute('CREATE VIRTUAL TABLE t USING fts5(x)')"
rg --version | head -1

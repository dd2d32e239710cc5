#!/usr/bin/env bash
# Installs the OpenTelemetry Python SDK and its OTLP/HTTP exporter into a virtualenv for the
# end-to-end test that points the real exporter at fnlens (tests/otel_sdk.rs runs this script).
# Idempotent: a complete virtualenv is left alone. Usage: tests/otel/setup.sh <venv dir>
set -euo pipefail
venv="${1:?usage: setup.sh <venv dir>}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c \
    "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http" 2> /dev/null; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "opentelemetry-sdk==1.45.2" "opentelemetry-exporter-otlp-proto-http==1.45.2"

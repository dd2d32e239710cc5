"""Sends logs and metrics to fnlens with the real OpenTelemetry Python SDK and its OTLP/HTTP
exporters, as a Lambda function instrumented with OpenTelemetry would.

Usage: export.py <base url> <marker> <gzip|none>
Logs: 10 records of function "otel-sdk" (INFO x8, WARNING, ERROR with an exception), each
message containing the marker. Metrics: faas.invocations (counter, 10), faas.invoke_duration
(histogram, 10 values) and a gauge. Prints nothing; the exporter raises nothing on failure, so
the test checks what fnlens stored.
"""

import logging
import sys

from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

base, marker, compression = sys.argv[1], sys.argv[2], sys.argv[3]
comp = Compression.Gzip if compression == "gzip" else Compression.NoCompression
resource = Resource.create(
    {
        "service.name": "otel-sdk",
        "faas.name": "otel-sdk",
        "faas.version": "3",
        "cloud.provider": "aws",
        "cloud.platform": "aws_lambda",
        "cloud.region": "eu-west-1",
    }
)

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(
    BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=f"{base}/v1/logs", compression=comp)
    )
)
set_logger_provider(logger_provider)
log = logging.getLogger("otel-sdk.handler")
log.setLevel(logging.DEBUG)
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider))
log.propagate = False

reader = PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=f"{base}/v1/metrics", compression=comp),
    export_interval_millis=3_600_000,
)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = meter_provider.get_meter("otel-sdk.metrics", "1.0.0")
invocations = meter.create_counter("faas.invocations", unit="{invocation}")
duration = meter.create_histogram("faas.invoke_duration", unit="s")
meter.create_observable_gauge(
    "faas.mem_usage", callbacks=[lambda _: [Observation(64 << 20)]], unit="By"
)

for i in range(10):
    request_id = f"sdk-req-{i}"
    extra = {"faas.invocation_id": request_id, "faas.coldstart": i == 0}
    if i == 8:
        log.warning("%s slow downstream on %d", marker, i, extra=extra)
    elif i == 9:
        try:
            raise ValueError(f"{marker} bad order")
        except ValueError:
            log.exception("%s order failed", marker, extra=extra)
    else:
        log.info("%s handled request %d", marker, i, extra=extra)
    invocations.add(1, {"faas.trigger": "http"})
    duration.record(0.010 * (i + 1), {"faas.trigger": "http"})

logger_provider.force_flush()
logger_provider.shutdown()
meter_provider.shutdown()

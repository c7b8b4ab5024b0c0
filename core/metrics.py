"""Prometheus metrics (prometheus_client, through django-prometheus for the request metrics).

Counted where things happen, in web and worker processes alike:

  credits_webhooks_received_total{provider,outcome}   deliveries: received, duplicate, rejected
  credits_webhooks_processed_total{provider,status}   processing attempts by the status after it
  credits_ledger_movements_total{kind}                 ledger entries written, by kind
  credits_generation_jobs_finished_total{status}       jobs settled: COMPLETED, FAILED, ...
  credits_generation_job_seconds{operation}            a job's time from submission to its end
  credits_webhook_ingest_batch_size                    deliveries stored with one INSERT

Gauges read from the database and the broker when scraped are registered with
``register_collector`` (config/probes.py registers them for the web's /metrics).

django-prometheus adds request latency by view (``django_http_requests_latency_seconds_by_
view_method``) and the database metrics. Several processes (gunicorn workers, a prefork
worker's children) share their counters through ``PROMETHEUS_MULTIPROC_DIR`` when it is set:
the exporter then adds up every process's file. A worker service serves its own metrics on
``WORKER_METRICS_PORT`` (config/celery_app.py).
"""

import logging
import os

from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

logger = logging.getLogger(__name__)

WEBHOOKS_RECEIVED = Counter(
    "credits_webhooks_received", "Webhook deliveries by outcome", ["provider", "outcome"]
)
WEBHOOKS_PROCESSED = Counter(
    "credits_webhooks_processed",
    "Webhook processing attempts by the event's status afterwards",
    ["provider", "status"],
)
LEDGER_MOVEMENTS = Counter("credits_ledger_movements", "Ledger entries written, by kind", ["kind"])
JOBS_FINISHED = Counter(
    "credits_generation_jobs_finished", "Generation jobs settled, by final status", ["status"]
)
JOB_SECONDS = Histogram(
    "credits_generation_job_seconds",
    "Time from a job's submission to its end",
    ["operation"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)

WEBHOOK_INGEST_BATCH = Histogram(
    "credits_webhook_ingest_batch_size",
    "Webhook deliveries a web process stored with one INSERT (one commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


def count_safely(metric, *labels: str, amount: float = 1) -> None:
    """Count without ever failing the caller (a metric is never worth a lost payment)."""
    try:
        metric.labels(*labels).inc(amount)
    except Exception:  # noqa: BLE001
        logger.debug("metric %s not counted", metric, exc_info=True)


def observe_safely(metric, value: float, *labels: str) -> None:
    try:
        (metric.labels(*labels) if labels else metric).observe(value)
    except Exception:  # noqa: BLE001
        logger.debug("metric %s not observed", metric, exc_info=True)


_collectors: list = []


def register_collector(collector) -> None:
    """Add a collector read at every scrape (once per collector)."""
    if collector not in _collectors:
        _collectors.append(collector)


def registry() -> CollectorRegistry:
    """The registry to export: every process's counters (multiprocess mode: the files of all
    processes sharing ``PROMETHEUS_MULTIPROC_DIR``) or this process's, plus the collectors."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry(auto_describe=True)
        reg.register(_Default())
    for collector in _collectors:
        reg.register(collector)
    return reg


class _Default:
    """This process's own metrics (the default registry), inside a registry of the export."""

    def collect(self):
        return REGISTRY.collect()


def metrics_text() -> bytes:
    return generate_latest(registry())


def metrics_response() -> HttpResponse:
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)

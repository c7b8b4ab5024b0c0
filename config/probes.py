"""Health probes and the metrics page, answered before anything else looks at the request.

``/healthz``: the process is alive and serving (no outside system is asked).
``/readyz``: it can do its work: the database answers, every migration is applied, the cache
answers and the broker accepts a connection. 503 with the failing checks otherwise.
``/metrics``: Prometheus metrics (core/metrics.py), for the scraper on the private network;
with ``METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``. Besides the counters,
each scrape reads these from the database and the broker (``StateCollector``):

  credits_webhooks_waiting                  events not processed yet (due or leased)
  credits_webhooks_oldest_waiting_seconds   age of the oldest of them
  credits_generation_jobs{status}           jobs PENDING / PROCESSING now
  credits_queue_depth{queue}                messages waiting in each Celery queue

The middleware that answers them runs first: a probe from a load balancer or from compose's
health check needs no host name from ALLOWED_HOSTS, is never redirected to HTTPS, opens no
session and is not counted as a page request.
"""

import hmac
import json
import logging
import time

from django.conf import settings
from django.http import HttpResponse
from prometheus_client.core import GaugeMetricFamily

from core.health import readiness
from core.metrics import metrics_response, register_collector

logger = logging.getLogger(__name__)

HEALTH_PATHS = ("/healthz", "/healthz/")
READY_PATHS = ("/readyz", "/readyz/")
METRICS_PATHS = ("/metrics", "/metrics/")


def _json(payload: dict, status: int) -> HttpResponse:
    response = HttpResponse(json.dumps(payload), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def _metrics_allowed(request) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "") or ""
    if not token:
        return True
    given = request.META.get("HTTP_AUTHORIZATION", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


class StateCollector:
    """Gauges read when scraped: waiting webhooks and their age, active jobs, queue depths.

    Each read is an indexed query or a Redis LLEN; a read that fails is left out of the
    scrape (logged), so a database outage does not also break the metrics page.
    """

    def collect(self):
        yield from self._safely(self._webhooks)
        yield from self._safely(self._jobs)
        yield from self._safely(self._queues)

    def _safely(self, read):
        try:
            return list(read())
        except Exception:  # noqa: BLE001
            logger.warning("metrics: %s could not be read", read.__name__, exc_info=True)
            return []

    def _webhooks(self):
        from django.db.models import Count, Min

        from payments.models import WebhookEvent

        waiting = WebhookEvent.objects.filter(
            status__in=(WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED),
            next_attempt_at__isnull=False,
        ).aggregate(n=Count("pk"), oldest=Min("received_at"))
        yield GaugeMetricFamily(
            "credits_webhooks_waiting", "Webhook events not processed yet", value=waiting["n"]
        )
        age = time.time() - waiting["oldest"].timestamp() if waiting["oldest"] else 0.0
        yield GaugeMetricFamily(
            "credits_webhooks_oldest_waiting_seconds",
            "Age of the oldest webhook event not processed yet",
            value=max(0.0, age),
        )

    def _jobs(self):
        from django.db.models import Count

        from generations.models import GenerationJob

        gauge = GaugeMetricFamily(
            "credits_generation_jobs", "Generation jobs by state (active states)", labels=["status"]
        )
        counts = dict.fromkeys(GenerationJob.ACTIVE_STATUSES, 0)
        rows = (
            GenerationJob.objects.filter(status__in=GenerationJob.ACTIVE_STATUSES)
            .values_list("status")
            .annotate(n=Count("pk"))
        )
        counts.update(dict(rows))
        for status, n in sorted(counts.items()):
            gauge.add_metric([str(status)], n)
        yield gauge

    def _queues(self):
        from celery import current_app
        from django.conf import settings

        from config.queues import QUEUES

        if current_app.conf.task_always_eager:
            return
        prefix = getattr(settings, "CELERY_QUEUE_PREFIX", "") or ""
        names = [prefix + q for q in QUEUES] + [current_app.conf.task_default_queue]
        gauge = GaugeMetricFamily(
            "credits_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        with current_app.connection_for_read(connect_timeout=2) as conn:
            client = conn.default_channel.client
            for name in dict.fromkeys(names):
                gauge.add_metric([name], client.llen(name))
        yield gauge


register_collector(StateCollector())


class ProbeMiddleware:
    """Answers /healthz, /readyz and /metrics; everything else passes through untouched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path in HEALTH_PATHS:
            return _json({"status": "ok"}, 200)
        if path in READY_PATHS:
            started = time.perf_counter()
            ok, checks = readiness()
            if not ok:
                logger.warning("not ready: %s", checks)
            return _json(
                {
                    "status": "ok" if ok else "unavailable",
                    "checks": checks,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
                200 if ok else 503,
            )
        if path in METRICS_PATHS:
            if not _metrics_allowed(request):
                return HttpResponse("Unauthorized", status=401, content_type="text/plain")
            return metrics_response()
        return self.get_response(request)

"""/metrics for Prometheus, behind METRICS_TOKEN: HTTP request counts and latency, and the state of the
product (numbers by state, outbox depth and age, webhook backlog and failures, live session workers) read
from the database at scrape time with a handful of aggregate queries, the same for any number of tenants.

django-prometheus would give the request metrics, but 2.5.0 (the newest) caps Django below 6.1, so the
middleware below counts requests with prometheus_client itself (django-prometheus's own dependency).
"""

from __future__ import annotations

import hmac
import time
from datetime import timedelta

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db.models import Count, Min
from django.http import Http404, HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REQUESTS = Counter(
    "waportal_http_requests", "HTTP requests answered, by method and status", ["method", "status"]
)
LATENCY = Histogram(
    "waportal_http_request_duration_seconds",
    "Time to answer an HTTP request (until the view returns; streamed bodies not included)",
    ["method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Labels by method only (not path): a path holds IDs, and a label per ID would grow without end.
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _observe(request, response, started: float) -> None:
    method = request.method if request.method in METHODS else "other"
    REQUESTS.labels(method, str(response.status_code)).inc()
    LATENCY.labels(method).observe(time.perf_counter() - started)


class RequestMetricsMiddleware:
    """Counts every request Django answers (sync or async, without a thread hop)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _observe(request, response, started)
        return response

    async def _acall(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        _observe(request, response, started)
        return response


def _age(now, oldest) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0


class ProductCollector:
    """Gauges computed when Prometheus scrapes: one grouped query per family, over every organization."""

    def collect(self):
        from messaging.models import (
            Device,
            DeviceLease,
            DeviceStatus,
            Message,
            MessageStatus,
            WebhookDelivery,
            WebhookDeliveryStatus,
            WebhookEndpoint,
        )
        from messaging.models.device import SessionWorker

        now = timezone.now()

        devices = GaugeMetricFamily("waportal_devices", "Numbers (devices) by state", labels=["status"])
        counts = dict(Device.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in DeviceStatus.values:
            devices.add_metric([status], counts.get(status, 0))
        yield devices
        yield GaugeMetricFamily(
            "waportal_devices_held",
            "Numbers a live session worker holds",
            value=DeviceLease.objects.filter(expires_at__gt=now).count(),
        )

        waiting = (MessageStatus.QUEUED, MessageStatus.SENDING)
        depth = GaugeMetricFamily(
            "waportal_outbox_messages", "Accepted sends not yet sent", labels=["status"]
        )
        age = GaugeMetricFamily(
            "waportal_outbox_oldest_age_seconds", "Age of the oldest send not yet sent", labels=["status"]
        )
        rows = {
            status: (n, oldest)
            for status, n, oldest in Message.objects.filter(status__in=waiting)
            .values_list("status")
            .annotate(n=Count("id"), oldest=Min("created_at"))
            .order_by()
        }
        for status in waiting:
            n, oldest = rows.get(status, (0, None))
            depth.add_metric([status], n)
            age.add_metric([status], _age(now, oldest))
        yield depth
        yield age

        backlog = GaugeMetricFamily(
            "waportal_webhook_deliveries", "Webhook deliveries not succeeded, by status", labels=["status"]
        )
        backlog_age = GaugeMetricFamily(
            "waportal_webhook_backlog_oldest_age_seconds", "Age of the oldest webhook delivery still to make"
        )
        open_statuses = [s for s in WebhookDeliveryStatus.values if s != WebhookDeliveryStatus.SUCCEEDED]
        rows = {
            status: (n, oldest)
            for status, n, oldest in WebhookDelivery.objects.filter(status__in=open_statuses)
            .values_list("status")
            .annotate(n=Count("id"), oldest=Min("created_at"))
            .order_by()
        }
        oldest_open = None
        for status in open_statuses:
            n, oldest = rows.get(status, (0, None))
            backlog.add_metric([status], n)
            if (
                status != WebhookDeliveryStatus.FAILED
                and oldest
                and (oldest_open is None or oldest < oldest_open)
            ):
                oldest_open = oldest
        backlog_age.add_metric([], _age(now, oldest_open))
        yield backlog
        yield backlog_age
        yield GaugeMetricFamily(
            "waportal_webhook_endpoints_paused",
            "Webhook endpoints paused after failing again and again",
            value=WebhookEndpoint.objects.filter(paused_at__isnull=False).count(),
        )

        since = now - timedelta(seconds=float(settings.WA_LEASE_SECONDS))
        yield GaugeMetricFamily(
            "waportal_session_workers",
            "Session workers whose heartbeat is younger than a lease",
            value=SessionWorker.objects.filter(heartbeat_at__gt=since).count(),
        )


def metrics(request):
    """The exposition, for a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`; 404 when no token is
    set (the endpoint does not exist), 401 for a missing or wrong one."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        raise Http404("No metrics here.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse(
            "A valid metrics token is required (Authorization: Bearer <METRICS_TOKEN>).\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    product = CollectorRegistry(auto_describe=False)
    product.register(ProductCollector())
    return HttpResponse(
        generate_latest(REGISTRY) + generate_latest(product), content_type=CONTENT_TYPE_LATEST
    )

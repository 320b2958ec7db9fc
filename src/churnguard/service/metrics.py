"""Request counts and latency histograms by route and status, in the Prometheus text format
(exposition format 0.0.4), written by hand: a handful of counters needs no client library.

>>> m = Metrics()
>>> m.observe("GET", "/healthz", 200, 0.003)
>>> 'churnguard_http_requests_total{method="GET",route="/healthz",status="200"} 1' in m.render()
True
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churnguard.service.asgi import HttpMiddleware

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self._hist: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self.gauges: dict[str, float] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[(method, route, str(status))] += 1
            key = (method, route)
            counts = self._hist.setdefault(key, [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self._sums[key] += seconds

    def render(self) -> str:
        lines = ["# HELP churnguard_http_requests_total Requests answered, by route and status.",
                 "# TYPE churnguard_http_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self._counts.items()):
                lines.append(f'churnguard_http_requests_total{{method="{method}",'
                             f'route="{_label(route)}",status="{status}"}} {n}')
            lines += ["# HELP churnguard_http_request_duration_seconds Time to answer, by route.",
                      "# TYPE churnguard_http_request_duration_seconds histogram"]
            for (method, route), counts in sorted(self._hist.items()):
                labels = f'method="{method}",route="{_label(route)}"'
                for bound, n in zip(BUCKETS, counts, strict=False):
                    lines.append(f'churnguard_http_request_duration_seconds_bucket{{{labels},'
                                 f'le="{bound}"}} {n}')
                lines.append(f'churnguard_http_request_duration_seconds_bucket{{{labels},'
                             f'le="+Inf"}} {counts[-1]}')
                lines.append(f"churnguard_http_request_duration_seconds_sum{{{labels}}} "
                             f"{self._sums[(method, route)]:.6f}")
                lines.append(f"churnguard_http_request_duration_seconds_count{{{labels}}} "
                             f"{counts[-1]}")
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"


class MetricsMiddleware(HttpMiddleware):
    """Times every HTTP request; the route label is the path template, never the raw path
    (which would hold customer ids)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            self.metrics.observe(scope.get("method", "?"), route, status,
                                 time.perf_counter() - started)

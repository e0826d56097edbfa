"""Prometheus metrics of provider calls, in a registry of the app's own (never the process-global one).

``observe(record)`` counts one finished call; ``calls.metered`` calls it once per call, key tests
included. ``exposition()`` is the text a scrape of ``GET /metrics`` gets (byok_ui/server.py, behind
a bearer token). Labels are bounded sets only (provider ids, call kinds, statuses, key sources):
never a user, a model name someone typed, or anything else that could grow without limit or leak.

    byok_provider_calls_total{provider, kind, status}        kind: chat, search, key_test
    byok_provider_errors_total{provider, status}             every status but ok
    byok_provider_call_duration_seconds{provider}            histogram, from the record's latency
    byok_spend_usd_total{provider, key_source}               known cost only (unknown adds nothing)

Counters live in this process's memory: each replica is scraped on its own, and a restart starts
from zero again (``rate()``/``increase()`` in PromQL handle that)."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from byok_core.errors import CallStatus
from byok_core.record import CallRecord
from byok_core.secret import Secret

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

TOKEN_ENV = "BYOK_METRICS_TOKEN"
KEY_TEST = "key_test"
# Provider calls take from a few hundred milliseconds (a search, a key test) to minutes (a long reply).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class _Metrics(NamedTuple):
    registry: CollectorRegistry
    calls: Counter
    errors: Counter
    latency: Histogram
    spend: Counter


_made: _Metrics | None = None
_making = threading.Lock()


def _metrics() -> _Metrics:
    """The registry and its collectors, made once, on the first call counted (prometheus-client is
    not loaded before a `byok` command's first text)."""
    global _made
    if _made is None:
        with _making:
            if _made is None:
                _made = _make()
    return _made


def _make() -> _Metrics:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    return _Metrics(
        registry,
        Counter("byok_provider_calls", "Provider calls, by provider, kind (chat, search, key_test) and status.",
                ["provider", "kind", "status"], registry=registry),
        Counter("byok_provider_errors", "Provider calls that failed, by provider and error kind (status).",
                ["provider", "status"], registry=registry),
        Histogram("byok_provider_call_duration_seconds", "Duration of provider calls in seconds, by provider.",
                  ["provider"], buckets=LATENCY_BUCKETS, registry=registry),
        Counter("byok_spend_usd", "Known spend in US dollars (estimated from genai-prices), by provider and who "
                "paid (user, team, env). Calls of unknown cost add nothing.", ["provider", "key_source"],
                registry=registry),
    )


def registry() -> CollectorRegistry:
    return _metrics().registry


def observe(record: CallRecord, *, key_test: bool = False) -> None:
    """Count one finished call (``key_test``: the cheap call that checks a key, not a chat or search)."""
    m = _metrics()
    provider = record.provider.value
    status = record.status.value
    kind = KEY_TEST if key_test else record.provider.kind.value
    m.calls.labels(provider, kind, status).inc()
    if record.status is not CallStatus.OK:
        m.errors.labels(provider, status).inc()
    m.latency.labels(provider).observe(max(record.latency_ms, 0) / 1000)
    cost = record.cost_usd
    if cost is not None and math.isfinite(cost) and cost > 0:
        m.spend.labels(provider, record.key_source.value).inc(cost)


def exposition() -> tuple[bytes, str]:
    """The registry in Prometheus' text format, and the content type to serve it with."""
    from prometheus_client import generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return generate_latest(registry()), CONTENT_TYPE_LATEST


def token_from_env(environ: Mapping[str, str] | None = None) -> Secret | None:
    """The bearer token a scrape must send (``BYOK_METRICS_TOKEN``); None (unset or blank): no
    ``/metrics`` at all. Read here, not in runtime.Settings, so a scrape never waits on the database."""
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return Secret(value) if value else None

"""Reading what a provider billed, with an admin's billing credential: usage per day, API key and
model, cost per day and model, and the organization's API keys (to tell which of them are ours).

* OpenAI (an Admin key): ``/organization/usage/completions`` (grouped by ``api_key_id`` and
  ``model``), ``/organization/costs`` (grouped by ``line_item``: "gpt-4o-mini-2024-07-18, input"),
  and each project's ``/organization/projects/{id}/api_keys`` (``redacted_value``: "sk-…abcd").
* Anthropic (an Admin key): ``/organizations/usage_report/messages`` (grouped by ``api_key_id`` and
  ``model``), ``/organizations/cost_report`` (grouped by ``description``, amounts in cents as
  decimal strings) and ``/organizations/api_keys`` (``partial_key_hint``: "sk-ant-api03-R2D...igAA").
* OpenRouter (no billing credential: each key reads its own count): ``/key`` (``usage_daily``,
  ``usage_monthly``: USD spent on the key in the current UTC day and month).

Reports page with ``next_page``/``has_more``, lists with ``last_id``/``has_more``. Every answer
that is not a 2xx is translated once (``adapters.errors``); the client is the tests' seam."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from byok_core.adapters.errors import provider_error, transport_error
from byok_core.credential import Credential
from byok_core.errors import ProviderDown
from byok_core.providers import Provider

ANTHROPIC_VERSION = "2023-06-01"
PAGE_DAYS = 31  # buckets per report page (both providers' most for daily buckets)
MAX_PAGES = 200  # a provider that keeps saying "more" is not followed for ever
READS = (Provider.OPENAI, Provider.ANTHROPIC)  # the providers whose bill can be read


@dataclass(frozen=True)
class BilledUsage:
    """What the provider billed on one day, for one of its API keys and one model."""

    day: date
    key_ref: str  # the provider's id of the key ("key_…", "apikey_…"); "" when it did not say
    model: str
    input_tokens: int  # all input: cache reads and writes included, as our log counts it
    output_tokens: int
    cached_tokens: int  # cache reads
    requests: int | None  # OpenAI counts requests; Anthropic does not say


@dataclass(frozen=True)
class BilledCost:
    """What the provider charged on one day for one model ("" when the line names none), in USD."""

    day: date
    model: str
    usd: float


@dataclass(frozen=True)
class ProviderKey:
    """One of the organization's API keys: its id and the provider's hint of its value."""

    ref: str
    hint: str


@dataclass
class Bill:
    usage: list[BilledUsage] = field(default_factory=list)
    costs: list[BilledCost] = field(default_factory=list)
    keys: list[ProviderKey] = field(default_factory=list)


def _headers(provider: Provider, cred: Credential) -> dict[str, str]:
    if provider is Provider.ANTHROPIC:
        return {"x-api-key": cred.secret.reveal(), "anthropic-version": ANTHROPIC_VERSION}
    return {"Authorization": f"Bearer {cred.secret.reveal()}"}


def _get(client: httpx.Client, provider: Provider, cred: Credential, path: str,
         params: list[tuple[str, str]], label: str | None = None, data: type = list) -> dict[str, Any]:
    label = label or f"{provider.label} (billing)"
    try:
        response = client.get(f"{cred.base_url}{path}", params=tuple(params), headers=_headers(provider, cred))
    except httpx.TransportError as exc:
        raise transport_error(label, exc) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        raise provider_error(label, cred, status=response.status_code, body=body, headers=response.headers)
    if not isinstance(body, dict) or not isinstance(body.get("data"), data):
        raise ProviderDown(f"{label} answered something that is not a report; try again later.")
    return body


def _pages(client: httpx.Client, provider: Provider, cred: Credential, path: str,
           params: list[tuple[str, str]], cursor: str) -> Iterator[dict[str, Any]]:
    """Every item of ``data`` over all pages: ``cursor`` "page" follows ``next_page`` (reports),
    "after"/"after_id" follow ``last_id`` (lists)."""
    after: str | None = None
    for _ in range(MAX_PAGES):
        body = _get(client, provider, cred, path, params + ([(cursor, after)] if after else []))
        yield from (item for item in body["data"] if isinstance(item, dict))
        after = body.get("next_page") if cursor == "page" else body.get("last_id")
        if not body.get("has_more") or not after:
            return
    raise ProviderDown(f"{provider.label} (billing) kept sending more pages; try a shorter period.")


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _day_of(bucket: dict[str, Any]) -> date:
    start = bucket.get("start_time", bucket.get("starting_at"))
    if isinstance(start, int | float):
        return datetime.fromtimestamp(start, UTC).date()
    return datetime.fromisoformat(str(start).replace("Z", "+00:00")).date()


def _window(since: date, until: date) -> tuple[datetime, datetime]:
    """From the start of ``since`` to the end of ``until`` (both UTC days)."""
    return datetime.combine(since, time(), UTC), datetime.combine(until + timedelta(days=1), time(), UTC)


def _openai(client: httpx.Client, cred: Credential, since: date, until: date) -> Bill:
    start, end = (str(int(t.timestamp())) for t in _window(since, until))
    window = [("start_time", start), ("end_time", end), ("bucket_width", "1d"), ("limit", str(PAGE_DAYS))]
    p = Provider.OPENAI
    bill = Bill()
    for bucket in _pages(client, p, cred, "/organization/usage/completions",
                         [*window, ("group_by", "api_key_id"), ("group_by", "model")], "page"):
        for r in bucket.get("results") or []:
            bill.usage.append(BilledUsage(_day_of(bucket), r.get("api_key_id") or "", r.get("model") or "",
                                          _int(r.get("input_tokens")), _int(r.get("output_tokens")),
                                          _int(r.get("input_cached_tokens")), _int(r.get("num_model_requests"))))
    for bucket in _pages(client, p, cred, "/organization/costs", [*window, ("group_by", "line_item")], "page"):
        for r in bucket.get("results") or []:
            amount = r.get("amount") or {}
            model = str(r.get("line_item") or "").partition(",")[0].strip()
            bill.costs.append(BilledCost(_day_of(bucket), model, float(amount.get("value") or 0)))
    for project in _pages(client, p, cred, "/organization/projects", [("limit", "100")], "after"):
        for k in _pages(client, p, cred, f"/organization/projects/{project.get('id')}/api_keys",
                        [("limit", "100")], "after"):
            bill.keys.append(ProviderKey(str(k.get("id") or ""), str(k.get("redacted_value") or "")))
    return bill


def _anthropic(client: httpx.Client, cred: Credential, since: date, until: date) -> Bill:
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in _window(since, until))
    window = [("starting_at", start), ("ending_at", end), ("bucket_width", "1d"), ("limit", str(PAGE_DAYS))]
    p = Provider.ANTHROPIC
    bill = Bill()
    for bucket in _pages(client, p, cred, "/organizations/usage_report/messages",
                         [*window, ("group_by[]", "api_key_id"), ("group_by[]", "model")], "page"):
        for r in bucket.get("results") or []:
            written = sum(_int(v) for v in (r.get("cache_creation") or {}).values())
            read = _int(r.get("cache_read_input_tokens"))
            bill.usage.append(BilledUsage(_day_of(bucket), r.get("api_key_id") or "", r.get("model") or "",
                                          _int(r.get("uncached_input_tokens")) + read + written,
                                          _int(r.get("output_tokens")), read, None))
    for bucket in _pages(client, p, cred, "/organizations/cost_report", [*window, ("group_by[]", "description")],
                         "page"):
        for r in bucket.get("results") or []:
            cents = float(r.get("amount") or 0)
            bill.costs.append(BilledCost(_day_of(bucket), r.get("model") or "", cents / 100))
    for k in _pages(client, p, cred, "/organizations/api_keys", [("limit", "100")], "after_id"):
        bill.keys.append(ProviderKey(str(k.get("id") or ""), str(k.get("partial_key_hint") or "")))
    return bill


def read(client: httpx.Client, provider: Provider, cred: Credential, since: date, until: date) -> Bill:
    """What ``provider`` billed from ``since`` through ``until`` (UTC days), and its API keys."""
    return (_openai if provider is Provider.OPENAI else _anthropic)(client, cred, since, until)


def probe(client: httpx.Client, provider: Provider, cred: Credential) -> None:
    """The cheapest read that needs the billing credential (one short list of API keys or projects):
    raises the translated error when the provider refuses it."""
    path = "/organization/projects" if provider is Provider.OPENAI else "/organizations/api_keys"
    _get(client, provider, cred, path, [("limit", "1")])


@dataclass(frozen=True)
class KeySpend:
    """What a provider counts as spent on one key (USD), today and this month (UTC)."""

    today_usd: float
    month_usd: float


def openrouter_spend(client: httpx.Client, cred: Credential) -> KeySpend:
    """OpenRouter's own count of what the key ``cred`` spent (``GET {base_url}/key``)."""
    data = _get(client, Provider.OPENAI_COMPATIBLE, cred, "/key", [], label="OpenRouter", data=dict)["data"]

    def usd(name: str) -> float:
        value = data.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

    return KeySpend(usd("usage_daily"), usd("usage_monthly"))

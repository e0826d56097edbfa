"""``CallRecord``: what the app knows about one provider call. It is the usage row, the line under a
chat reply (kept with the reply as JSON), and the CLI's summary line; ``calls.metered`` fills it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from byok_core.errors import ByokError, CallStatus
from byok_core.identity import KeySource
from byok_core.providers import Provider

if TYPE_CHECKING:
    from genai_prices import Usage

    from byok_core.budgets import BudgetStatus
    from byok_core.budgets.caps import Cap

# used while the call runs, not kept with the reply
_WORKING_FIELDS = {"billed", "output_bytes", "budgets_after", "cap_after", "pricing_id", "reported_usd",
                   "priced_model", "key_row_id"}


@dataclass
class CallRecord:
    """One provider call: who paid, what it used, how it ended. None means unknown (never zero).

    Tokens are what the provider billed: ``input_tokens`` all billed input (cache reads and writes
    and tool-use prompts included), ``output_tokens`` all output (thinking included); the cache and
    reasoning counts break those down."""

    provider: Provider
    key_source: KeySource
    model: str = ""  # "" for searches
    user_id: int | None = None  # None: the CLI without --user
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    charged_usd: float | None = None  # what it counted against shared-key budgets or an own key's cap (None: none)
    latency_ms: int = 0
    status: CallStatus = CallStatus.OK
    error: str | None = None  # the message shown for a failed call (never holds a key)
    refused: bool = False  # the provider refused it before replying (or nothing was sent): not billed
    # a chat reply the person must be told about (it is still an ``ok``, billed call): the words to show
    # under the reply, and its kind ("refusal": the model refused, its refusal is the reply;
    # "output_cap", "safety", "tool_call"; "" when the notice is only that the reply was empty)
    notice: str | None = None
    notice_kind: str | None = None
    connection: str | None = None  # an OpenAI-compatible call's connection, by its name
    # genai-prices' figure for a call whose provider reported its billed cost (``cost_usd``), to compare
    priced_usd: float | None = None
    # the stored key that paid (None: a server key), written to its usage row for the bill check
    key_row_id: str | None = field(default=None, repr=False, compare=False)
    pricing_id: str | None = field(default=None, repr=False, compare=False)  # genai-prices' provider id
    # the model priced, when not ``model``: the one behind an Azure deployment, as its reply said
    priced_model: str = field(default="", repr=False, compare=False)
    reported_usd: float | None = field(default=None, repr=False, compare=False)  # the provider's billed cost
    billed: Usage | None = field(default=None, repr=False, compare=False)  # genai-prices' reading, for pricing
    output_bytes: int = field(default=0, repr=False, compare=False)  # UTF-8 bytes of reply text received
    # the shared-key budgets as this call left them, when it was settled against them
    budgets_after: BudgetStatus | None = field(default=None, repr=False, compare=False)
    # the cap on the own key that paid, as this call left it (None: that key has no cap)
    cap_after: Cap | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status is CallStatus.OK

    def fail(self, exc: ByokError) -> None:
        self.status = getattr(exc, "status", CallStatus.ERROR)
        self.error = str(exc)
        self.refused = getattr(exc, "refused", False)

    def bill(self, usage: Usage | None) -> None:
        """Take the tokens the provider reported for this call (None: it reported none)."""
        self.billed = usage
        if usage is None:
            return
        self.input_tokens, self.output_tokens = int(usage.input_tokens), int(usage.output_tokens)
        self.cache_read_tokens, self.cache_write_tokens = int(usage.cache_read_tokens), int(usage.cache_write_tokens)
        self.reasoning_tokens = int(usage.output_reasoning_tokens)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, as kept with a stored chat reply."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _WORKING_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallRecord | None:
        """The record stored with a reply, or None when there is none (or it is not readable)."""
        try:
            return cls(
                provider=Provider.parse(str(data["provider"])), key_source=KeySource(data["key_source"]),
                model=data.get("model") or "", user_id=data.get("user_id"),
                input_tokens=data.get("input_tokens"), output_tokens=data.get("output_tokens"),
                cache_read_tokens=data.get("cache_read_tokens"), cache_write_tokens=data.get("cache_write_tokens"),
                reasoning_tokens=data.get("reasoning_tokens"),
                cost_usd=data.get("cost_usd"), charged_usd=data.get("charged_usd"),
                latency_ms=data.get("latency_ms") or 0,
                status=CallStatus(data.get("status") or CallStatus.OK), error=data.get("error"),
                refused=bool(data.get("refused")),
                notice=data.get("notice") if isinstance(data.get("notice"), str) else None,
                notice_kind=data.get("notice_kind") if isinstance(data.get("notice_kind"), str) else None,
                connection=data.get("connection") if isinstance(data.get("connection"), str) else None,
                priced_usd=data.get("priced_usd"),
            )
        except (KeyError, ValueError, TypeError):
            return None

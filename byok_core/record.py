"""``CallRecord``: what the app knows about one provider call. It is the usage row, the line under a
chat reply (kept with the reply as JSON), and the CLI's summary line; ``calls.metered`` fills it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from byok_core.errors import ByokError, CallStatus
from byok_core.identity import KeySource
from byok_core.providers import Provider


@dataclass
class CallRecord:
    """One provider call: who paid, what it used, how it ended. ``cost_usd`` None means unknown."""

    provider: Provider
    key_source: KeySource
    model: str = ""  # "" for searches
    user_id: int | None = None  # None: the CLI without --user
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: int = 0
    status: CallStatus = CallStatus.OK
    error: str | None = None  # the message shown for a failed call (never holds a key)

    @property
    def ok(self) -> bool:
        return self.status is CallStatus.OK

    def fail(self, exc: ByokError) -> None:
        self.status = getattr(exc, "status", CallStatus.ERROR)
        self.error = str(exc)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, as kept with a stored chat reply."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallRecord | None:
        """The record stored with a reply, or None when there is none (or it is not readable)."""
        try:
            return cls(
                provider=Provider(data["provider"]), key_source=KeySource(data["key_source"]),
                model=data.get("model") or "", user_id=data.get("user_id"),
                input_tokens=data.get("input_tokens"), output_tokens=data.get("output_tokens"),
                cost_usd=data.get("cost_usd"), latency_ms=data.get("latency_ms") or 0,
                status=CallStatus(data.get("status") or CallStatus.OK), error=data.get("error"),
            )
        except (KeyError, ValueError, TypeError):
            return None

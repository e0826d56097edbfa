"""The team's display currency, and every amount of money as people read it.

Providers bill in US dollars, and the app keeps every amount in USD: the usage log, the budgets,
their running spend and reservations, prices. An admin may pick another currency to *show* money
in, with its rate: how many units of it one US dollar buys (``per_usd``: EUR 0.92 means $1 =
€0.92). The conversion happens only at the edge, in both directions:

* shown: ``amount = usd * per_usd`` (``Currency.from_usd``, used by ``money``);
* entered (a budget typed in EUR): ``usd = amount / per_usd`` (``Currency.to_usd``), once, with
  the rate of that moment, and stored in USD unrounded, so it reads back as the amount typed.

Rates are kept append-only (``DisplayCurrency`` rows, each with when and by whom it was set, and an
audit event): a new rate changes how amounts are shown from then on and rewrites nothing; a budget
stays the USD cap it was set as (in the new rate it may read as a slightly different amount).

Which currency a page shows is chosen once per page run: the UI shell reads ``current(rt)``
(cached on the runtime for a few seconds, so a run usually costs no SQL statement) and makes it
the run's with ``showing``; ``money`` and the budget sentences read it from there (a context
variable), so the many places that write an amount need no extra argument (a reply's worker runs
in a copy of the run's context, so its budget words follow). Outside a page run (the command
line) it is USD, written with "$"; webhook alerts are always in USD."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.audit import AuditAction
from byok_core.clock import utcnow
from byok_core.errors import ValidationError
from byok_core.identity import Actor
from byok_core.models import DisplayCurrency
from byok_core.runtime import Runtime

CACHE_SECONDS = 5.0  # how long a page run may show a rate set on another replica before it reads it


@dataclass(frozen=True)
class Known:
    """A currency the app can show: its symbol (None: written with its code, "CHF 1.20"), its minor
    units (2 for cents, 0 for the yen), and roughly what a dollar buys, to catch a rate typed upside down."""

    symbol: str | None
    minor: int
    about_per_usd: float


KNOWN: dict[str, Known] = {
    "USD": Known("$", 2, 1.0), "EUR": Known("€", 2, 0.92), "GBP": Known("£", 2, 0.78),
    "JPY": Known("¥", 0, 150.0), "INR": Known("₹", 2, 85.0), "KRW": Known("₩", 0, 1400.0),
    "CHF": Known(None, 2, 0.85), "CAD": Known(None, 2, 1.38), "AUD": Known(None, 2, 1.55),
    "NZD": Known(None, 2, 1.7), "CNY": Known(None, 2, 7.2), "HKD": Known(None, 2, 7.8),
    "SGD": Known(None, 2, 1.33), "SEK": Known(None, 2, 10.0), "NOK": Known(None, 2, 10.5),
    "DKK": Known(None, 2, 6.7), "PLN": Known(None, 2, 3.9), "CZK": Known(None, 2, 22.0),
    "BRL": Known(None, 2, 5.5), "MXN": Known(None, 2, 18.0), "ZAR": Known(None, 2, 18.0),
}
SANE_FACTOR = 5  # a rate more than this far from a currency's usual one is refused as a typing slip


@dataclass(frozen=True)
class Currency:
    """A currency to show money in: its ISO code, what one US dollar buys of it, and when that rate
    was set (None for USD, which needs none)."""

    code: str
    per_usd: float
    set_at: datetime | None = None
    set_by: str | None = None

    @property
    def known(self) -> Known:
        return KNOWN[self.code]

    @property
    def minor(self) -> int:
        return self.known.minor

    def from_usd(self, usd: float) -> float:
        return usd * self.per_usd

    def to_usd(self, amount: float) -> float:
        return amount / self.per_usd

    def fixed(self, amount: float, places: int) -> str:
        """An amount of this currency (already converted) with ``places`` decimals: "€1,234.50",
        "-¥12", "CHF 0.0061"."""
        number = f"{abs(amount):,.{places}f}"
        return ("-" if amount < 0 and float(number.replace(",", "")) else "") + self.marked(number)

    def marked(self, number: str) -> str:
        """A number written as an amount of this currency: "€" + "1.50", "CHF " + "1.50"."""
        symbol = self.known.symbol
        return f"{symbol}{number}" if symbol else f"{self.code} {number}"

    def format(self, usd: float | None, *, whole: bool = False, unknown: str = "unknown") -> str:
        """``usd`` in this currency. From one minor unit up (a cent, a yen): four decimals where
        there are cents ("$1,234.5678", "€0.0123") and none without ("¥184"), or just the minor
        units when ``whole`` (budgets: "€25.00", "¥2,500"). Below one, three significant digits,
        so a call that cost something never reads as zero ("$0.000013", "¥0.184"). Nothing is
        "€0.00"; None (or NaN: not priced) is ``unknown``."""
        if usd is None or usd != usd:
            return unknown
        amount = self.from_usd(usd)
        if amount == 0:
            return self.fixed(0.0, self.minor)
        if abs(amount) >= 10.0 ** -self.minor:
            return self.fixed(amount, self.minor if whole or not self.minor else self.minor + 2)
        decimals = 2 - math.floor(math.log10(abs(amount)))
        text = self.fixed(amount, decimals)
        return text.rstrip("0")

    def amount_text(self, usd: float) -> str:
        """``usd`` in this currency as a form field holds it: "21.50", "2500" (no symbol, no commas)."""
        return f"{self.from_usd(usd):.{self.minor}f}"

    @property
    def rate_text(self) -> str:
        """The rate in words: "1 USD = 0.92 EUR"."""
        return f"1 USD = {self.per_usd:,.6g} {self.code}"


USD = Currency("USD", 1.0)
_shown: ContextVar[Currency] = ContextVar("byok_display_currency", default=USD)


def shown() -> Currency:
    """The currency of this page run (USD outside one)."""
    return _shown.get()


@contextmanager
def showing(currency: Currency) -> Iterator[None]:
    """Show money in ``currency`` while the block runs (the UI shell wraps each page run in it)."""
    token = _shown.set(currency)
    try:
        yield
    finally:
        _shown.reset(token)


def money(usd: float | None, *, whole: bool = False, unknown: str = "unknown", currency: Currency | None = None) -> str:
    """An amount kept in USD, written in ``currency`` (default: this run's, ``shown()``); see ``Currency.format``.
    Prices the providers set stay in dollars: pass ``currency=USD``."""
    return (currency or shown()).format(usd, whole=whole, unknown=unknown)


def current(rt: Runtime) -> Currency:
    """The team's display currency: the newest rate set, or USD. Read at most every CACHE_SECONDS
    per runtime (``Runtime.memo``)."""
    now = time.monotonic()
    cached = rt.memo.get("currency")
    if cached is not None and now - cached[0] < CACHE_SECONDS and isinstance(cached[1], Currency):
        return cached[1]
    history_ = history(rt, limit=1)
    value = history_[0] if history_ else USD
    rt.memo["currency"] = (now, value)
    return value


def history(rt: Runtime, limit: int = 50) -> list[Currency]:
    """The rates set, newest first (never changed once written)."""
    query = select(DisplayCurrency).order_by(col(DisplayCurrency.id).desc()).limit(limit)
    with Session(rt.engine) as session:
        return [Currency(row.code, row.per_usd, row.set_at, row.set_by) for row in session.exec(query)]


def parse_code(code: Any) -> str:
    text = str(code or "").strip().upper()
    if text not in KNOWN:
        raise ValidationError(f"{str(code).strip() or 'That'} is not a currency the app knows; pick one of "
                              f"{', '.join(sorted(KNOWN))}.")
    return text


def parse_rate(code: str, per_usd: Any) -> float:
    """How many ``code`` one US dollar buys, checked: a number above 0, and within SANE_FACTOR of the
    currency's usual rate (which catches a rate typed the other way round)."""
    about = KNOWN[code].about_per_usd
    if code == "USD":
        return 1.0
    try:
        value = Decimal(str(per_usd).strip().replace(",", ""))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0:
        raise ValidationError(f"The rate is how many {code} one US dollar buys, a number above 0, "
                              f"such as {about:g}.")
    if not about / SANE_FACTOR <= value <= about * SANE_FACTOR:
        raise ValidationError(f"One US dollar buys about {about:g} {code}, not {value}: enter how many {code} "
                              f"one US dollar buys (not the other way round).")
    return float(value)


def set_display(rt: Runtime, actor: Actor, code: Any, per_usd: Any = 1.0) -> Currency:
    """Show money in ``code`` at ``per_usd`` from now on (a new row: earlier rates are kept). Admins only."""
    actor.check_admin("change the display currency")
    code = parse_code(code)
    rate = parse_rate(code, per_usd)
    row = DisplayCurrency(code=code, per_usd=rate, set_at=utcnow(), set_by=actor.name[:80])
    value = Currency(code, rate, row.set_at, row.set_by)
    with Session(rt.engine) as session, session.begin():
        session.add(row)
        audit.record(session, actor.name, AuditAction.CURRENCY_SET,
                     detail=code if code == "USD" else f"{code} at {value.rate_text}")
    rt.memo.pop("currency", None)
    return value

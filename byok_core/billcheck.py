"""What we logged set beside what a provider billed: pure (no I/O), one provider at a time.

Our side is the usage log summed per day, stored key and model (``Logged``); the provider's side is
its report (``adapters.billing.Bill``). Each day, key and model gives a ``Line`` with a verdict and
its reason in plain words:

* **match**: tokens within 0.5% (``TOLERANCE``) on both input and output;
* **our count is wrong**: the same calls (or the provider does not count calls) but other token
  counts, or, per day and model, the same tokens at another price: a bug here, shown loudly;
* **used outside this app**: the provider billed calls on one of our keys that we never logged
  (more calls than we made, or tokens on a day we logged none): maybe a leaked key;
* **not billed yet**: we logged calls the provider's report does not hold (reports lag by hours);
* **no calls**: a day with nothing on either side; **key not found**: the organization lists no key
  that matches one we used.

Prices are compared per day and model only when every key of the organization that used the model
that day is ours and its tokens match: the providers report cost per model, not per key.

Keys are matched by the provider's hint of each key's value (OpenAI's ``redacted_value``
"sk-…abcd", Anthropic's ``partial_key_hint`` "sk-ant-api03-R2D...igAA") against our masks
("sk-…abcd"): the same first three and last four characters, and only one key on each side."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from byok_core.adapters.billing import Bill, ProviderKey
from byok_core.currency import USD, money
from byok_core.keys import day as say_day
from byok_core.providers import Provider

DASH = "\u2013"  # between the first and last day: "Dec 1–5"  # noqa: RUF003
TOLERANCE = 0.005  # within 0.5%: a match
CENT_TENTH = 0.001  # amounts this close match whatever their ratio (a rounding, not a call)
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


class Verdict(StrEnum):
    MATCH = "match"
    OUR_COUNT = "our_count"  # same calls, other tokens: our count is wrong
    OUR_PRICE = "our_price"  # same tokens, other cost: our price is wrong
    OUTSIDE = "outside"  # calls on our key that this app did not make
    NOT_BILLED = "not_billed"
    NO_CALLS = "no_calls"
    KEY_NOT_FOUND = "key_not_found"

    @property
    def loud(self) -> bool:
        return self in (Verdict.OUR_COUNT, Verdict.OUR_PRICE, Verdict.OUTSIDE)


@dataclass(frozen=True)
class OurKey:
    row_id: str
    mask: str  # secret.mask: "sk-…abcd"
    name: str  # how people call it: "the team key", "alice's key"
    replace_at: str = "on the Keys page"  # where a new one is saved ("under Admin → Team keys")


@dataclass(frozen=True)
class Logged:
    """Our usage log summed for one day, stored key (None: a server key) and model."""

    day: date
    key_row_id: str | None
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None  # None: some call's price is unknown


@dataclass(frozen=True)
class Line:
    day: date
    verdict: Verdict
    reason: str
    key_row_id: str | None = None
    key_mask: str = ""
    model: str = ""
    our_tokens: int = 0
    billed_tokens: int = 0
    our_usd: float | None = None
    billed_usd: float | None = None


def model_family(model: str) -> str:
    """A model without its date ("gpt-4o-mini-2024-07-18" → "gpt-4o-mini"): reports name the dated one."""
    return _DATED.sub("", model.strip().removeprefix("models/"))


def close(ours: float, billed: float) -> bool:
    return abs(ours - billed) <= TOLERANCE * max(abs(ours), abs(billed))


def match_keys(provider_keys: Iterable[ProviderKey], ours: Iterable[OurKey]) -> dict[str, OurKey]:
    """The provider's key id → our stored key, for each hint that fits exactly one of our keys and
    whose ending no other provider key shares."""
    ours = [k for k in ours if "…" in k.mask and len(k.mask) == 8]
    theirs = [k for k in provider_keys if len(k.hint) >= 8]
    mapped: dict[str, OurKey] = {}
    for pk in theirs:
        fits = [k for k in ours if pk.hint.startswith(k.mask[:3]) and pk.hint.endswith(k.mask[-4:])]
        rivals = [o for o in theirs if o.hint[-4:] == pk.hint[-4:] and o.hint[:3] == pk.hint[:3]]
        if len(fits) == 1 and len(rivals) == 1:
            mapped[pk.ref] = fits[0]
    return mapped


@dataclass
class _Sum:
    calls: int = 0
    requests: int | None = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float | None = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add_logged(self, row: Logged) -> None:
        self.calls += row.calls
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.usd = None if self.usd is None or row.usd is None else self.usd + row.usd


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def _token_line(provider: Provider, day: date, key: OurKey, model: str, ours: _Sum | None,
                billed: _Sum | None) -> Line:
    label = provider.label
    o, b = ours or _Sum(), billed or _Sum()

    def line(verdict: Verdict, reason: str) -> Line:
        return Line(day, verdict, reason, key.row_id, key.mask, model, o.tokens, b.tokens)

    if not o.calls:
        return line(Verdict.OUTSIDE, (
            f"{say_day(day)}: {label} billed {b.tokens:,} tokens on {key.name} ({key.mask}, {model}) that this app "
            f"did not send. Someone may have a copy of this key: replace it {key.replace_at}."))
    if not b.tokens and not b.requests:
        return line(Verdict.NOT_BILLED, (
            f"{say_day(day)}: this app logged {o.calls} calls ({o.tokens:,} tokens) on {key.name} with {model} that "
            f"{label}'s report does not show yet; reports can lag by a few hours."))
    if close(o.input_tokens, b.input_tokens) and close(o.output_tokens, b.output_tokens):
        return line(Verdict.MATCH, f"{say_day(day)}: {key.name}, {model}: matches.")
    if b.requests and b.requests > o.calls:
        extra = b.requests - o.calls
        return line(Verdict.OUTSIDE, (
            f"{say_day(day)}: {label} billed {b.requests} calls ({b.tokens:,} tokens) on {key.name} ({key.mask}, "
            f"{model}); this app made {o.calls} ({o.tokens:,} tokens). {extra} calls were made outside this app: "
            f"someone may have a copy of this key: replace it {key.replace_at}."))
    calls = (f"{o.calls} calls ({label} does not count calls)" if b.requests is None
             else f"the same {o.calls} calls" if b.requests == o.calls
             else f"{o.calls} calls ({label} billed {b.requests})")
    return line(Verdict.OUR_COUNT, (
        f"{say_day(day)}: our count is wrong: for {calls} on {key.name} with {model}, {label} billed "
        f"{b.input_tokens:,} input and {b.output_tokens:,} output tokens; this app logged {o.input_tokens:,} and "
        f"{o.output_tokens:,}. Please report this as a bug."))


def compare(provider: Provider, since: date, until: date, logged: Iterable[Logged], bill: Bill,
            our_keys: Iterable[OurKey]) -> list[Line]:
    """Every line of the comparison from ``since`` through ``until``, by day."""
    keys_by_id = {k.row_id: k for k in our_keys}
    mapped = match_keys(bill.keys, keys_by_id.values())
    label = provider.label
    ours: dict[tuple[date, str, str], _Sum] = defaultdict(_Sum)
    ours_model: dict[tuple[date, str], _Sum] = defaultdict(_Sum)
    for row in logged:
        model = model_family(row.model)
        ours_model[row.day, model].add_logged(row)
        if row.key_row_id is not None:
            ours[row.day, row.key_row_id, model].add_logged(row)
    billed: dict[tuple[date, str, str], _Sum] = defaultdict(_Sum)
    billed_model: dict[tuple[date, str], _Sum] = defaultdict(_Sum)
    for u in bill.usage:
        model = model_family(u.model)
        for s in (billed_model[u.day, model], *((billed[u.day, mapped[u.key_ref].row_id, model],)
                                                  if u.key_ref in mapped else ())):
            s.input_tokens += u.input_tokens
            s.output_tokens += u.output_tokens
            s.requests = None if s.requests is None or u.requests is None else s.requests + u.requests
    cost: dict[tuple[date, str], float] = defaultdict(float)
    for c in bill.costs:
        cost[c.day, model_family(c.model)] += c.usd

    found = {k.row_id for k in mapped.values()}
    lines: list[Line] = []
    for when in _days(since, until):
        cells = sorted({(k, m) for d, k, m in [*ours, *billed] if d == when})
        if not cells and not any(d == when for d, _ in ours_model):
            lines.append(Line(when, Verdict.NO_CALLS, f"{say_day(when)}: no calls, and {label} billed none."))
            continue
        for key_row_id, model in cells:
            key = keys_by_id.get(key_row_id)
            if key is None:
                continue
            if key_row_id not in found:
                lines.append(Line(when, Verdict.KEY_NOT_FOUND, (
                    f"{say_day(when)}: {label}'s organization lists no key that matches {key.name} ({key.mask}); "
                    "it may belong to another organization, so its calls cannot be checked."),
                    key_row_id, key.mask, model, ours[when, key_row_id, model].tokens))
                continue
            lines.append(_token_line(provider, when, key, model, ours.get((when, key_row_id, model)),
                                     billed.get((when, key_row_id, model))))
        for (d, model), o in sorted(ours_model.items()):
            b = billed_model.get((d, model))
            if d != when or b is None or o.usd is None or (d, model) not in cost:
                continue
            if not (close(o.input_tokens, b.input_tokens) and close(o.output_tokens, b.output_tokens)):
                continue  # other keys of the organization used it too: its cost says nothing of ours
            charged = cost[d, model]
            if close(o.usd, charged):
                lines.append(Line(d, Verdict.MATCH, f"{say_day(d)}: {model}: the price matches.", model=model,
                                  our_tokens=o.tokens, billed_tokens=b.tokens, our_usd=o.usd, billed_usd=charged))
            else:
                lines.append(Line(d, Verdict.OUR_PRICE, (
                    f"{say_day(d)}: our price is wrong for {model}: the tokens match, but {label} charged "
                    f"{money(charged, currency=USD)} where this app priced {money(o.usd, currency=USD)}. Please "
                    "report this as a bug (cached input is often priced differently)."), model=model,
                    our_tokens=o.tokens, billed_tokens=b.tokens, our_usd=o.usd, billed_usd=charged))
    return lines


def headline(provider: Provider, since: date, until: date, loud: int) -> str:
    """The one sentence above the lines: "Checked against OpenAI's bill: matches within 0.5% for
    Dec 1-5", or how many (``loud``) lines need a look."""
    period = (say_day(since) if since == until else f"{say_day(since)}{DASH}{until.day}"
              if (since.year, since.month) == (until.year, until.month) else f"{say_day(since)}{DASH}{say_day(until)}")
    if loud:
        what = "1 difference needs" if loud == 1 else f"{loud} differences need"
        return f"Checked against {provider.label}'s bill for {period}: {what} a look."
    return f"Checked against {provider.label}'s bill: matches within 0.5% for {period}."


def key_spend_line(today: date, key: OurKey, ours_usd: float, billed_usd: float, label: str = "OpenRouter") -> Line:
    """This month's spend on one key as we logged it beside the provider's own count of it (OpenRouter,
    whose per-call cost is what this app logs): a match; more billed than we logged (used outside this
    app); or less (its count lags a little behind the calls)."""
    month = f"{today:%B}"
    said = f"{say_day(today)}: {label} counts {money(billed_usd, currency=USD)} spent in {month} on {key.name} " \
           f"({key.mask}); this app logged {money(ours_usd, currency=USD)}"

    def line(verdict: Verdict, reason: str) -> Line:
        return Line(today, verdict, reason, key.row_id, key.mask, "all models, this month", our_usd=ours_usd,
                    billed_usd=billed_usd)

    if close(ours_usd, billed_usd) or abs(ours_usd - billed_usd) < CENT_TENTH:
        return line(Verdict.MATCH, f"{said}: they match.")
    if billed_usd > ours_usd:
        return line(Verdict.OUTSIDE, (
            f"{said}: {money(billed_usd - ours_usd, currency=USD)} was spent on it outside this app. Someone may "
            f"have a copy of this key: replace it {key.replace_at}."))
    return line(Verdict.NOT_BILLED, f"{said}: {label} has not counted the newest calls yet.")

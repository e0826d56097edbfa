"""Usage: every provider call with tokens, latency and estimated cost. Members see their own calls,
admins the team's (enforced by byok_core.usage, not here). All numbers are aggregated in SQL.

The page answers first what people come with: what was spent this month (UTC, as budgets count it),
on your own keys and on shared ones, and, for admins, who spent the most on the shared keys; the
filters, charts and every call follow (on a phone too: the money comes before the filters). Costs
are shown in the team's display currency (byok_core/currency.py), whose code the Cost columns name;
the CSV keeps the log's USD (cost_usd)."""

import io
import math
from dataclasses import replace
from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from byok_core import accounts, currency, usage, words
from byok_core.clock import utcnow
from byok_core.errors import CallStatus
from byok_core.identity import Actor, KeySource
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_ui import billcheck_view, budget_view, state, tables

PAGE_SIZE = 50


def model_label(model: str) -> str:
    return model or "Web search"  # searches have no model


TITLES = {"day": "Per day", "provider": "Per provider", "model": "Per model", "user": "Per user",
          "key_source": "Per payer", "status": "Per status"}
# Column names as people read them, and how each column's values are written.
HEADINGS = {"timestamp": "Time (UTC)", "day": "Day (UTC)", "user": "User", "provider": "Provider", "model": "Model",
            "key_source": "Paid by", "status": "Status", "calls": "Calls", "input_tokens": "Input tokens",
            "output_tokens": "Output tokens", "cache_read_tokens": "Cache reads",
            "cache_write_tokens": "Cache writes", "reasoning_tokens": "Reasoning tokens",
            "unknown_cost_calls": "Calls of unknown cost", "latency_ms": "Time taken"}
# The per-call table: the money next to who, what and how it ended, the token details after it, so
# Cost is in view without scrolling sideways on a laptop (1366 px).
ROW_ORDER = ["timestamp", "user", "provider", "model", "key_source", "status", "cost_usd", "input_tokens",
             "output_tokens", "latency_ms", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"]
PERIODS = {usage.Period.THIS_MONTH: "This month", usage.Period.LAST_MONTH: "Last month",
           usage.Period.LAST_30_DAYS: "Last 30 days", "days": "Other days"}


def cost_heading(cur: currency.Currency) -> str:
    return f"Cost ({cur.code})"


NUMBERS = {name: st.column_config.NumberColumn(name, width="small") for name in
           ("Calls", "Input tokens", "Output tokens", "Cache reads", "Cache writes", "Reasoning tokens")}
VALUES = {"provider": lambda v: Provider.parse(v).label, "model": model_label,
          "key_source": lambda v: words.PAYER[KeySource(v)], "status": lambda v: words.STATUS[CallStatus(v)],
          "user": lambda v: words.NO_USER if v in (None, usage.NO_USER) else v, "latency_ms": words.duration}


def for_people(frame: pd.DataFrame, cur: currency.Currency) -> pd.DataFrame:
    """A table with people's words: labels for ids, "—" for an unknown count, readable headings; the cost
    stays a number, in ``cur`` as its heading says (tables.MISSING when not priced), which ``styled`` writes."""
    shown = frame.copy()
    if "cost_usd" in shown:
        shown["cost_usd"] = shown["cost_usd"].astype(float).fillna(tables.MISSING) * cur.per_usd
    for name, word in VALUES.items():
        if name in shown:
            shown[name] = shown[name].map(lambda v, word=word: word(v) if v is not None and v == v else "—")
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        if name in shown and shown[name].isna().any():
            shown[name] = shown[name].map(lambda v: words.count(None if pd.isna(v) else int(v)))
    return shown.rename(columns=HEADINGS | {"cost_usd": cost_heading(cur)})


def styled(frame: pd.DataFrame, cur: currency.Currency) -> pd.DataFrame | Styler:
    """The table as drawn: its Cost column written in ``cur`` as every figure of the page writes it
    (currency.money), while the browser sorts it by the numbers underneath."""
    return tables.written(frame, cur, {cost_heading(cur): (False, "unknown")})


# The window's settled days (usage.settled_part) are kept until a day settles or old calls are
# pruned (usage.DataVersion.settled_key), an hour at most; logging a call does not expire them, and the
# calls since are read on every run (usage.summary). An entry is one window's cube: its days times the
# combinations of provider, model, user, payer and status in them (~2.3 MB for a team's 30 days at
# 11,000 calls a day), so max_entries bounds the memory.
@st.cache_data(ttl=3600, max_entries=16, show_spinner=False)
def settled_part(_rt: Runtime, viewer: Actor, window: usage.UsageFilter,
                 key: tuple[date, int | None, datetime | None]) -> usage.Settled:
    return usage.settled_part(_rt, viewer, window, before=key[0])


# The tables and charts drawn from a summary, by its contents (small: a few rows per value), in ``cur``.
@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def frames_of(_summary: usage.UsageSummary, fingerprint: str, cur: currency.Currency) -> dict[str, pd.DataFrame]:
    frames = {dim: _summary.by(dim) for dim in TITLES}
    cost = _summary.by("day", "provider").astype({"cost_usd": float})
    frames["cost_per_day"] = cost.assign(provider=cost["provider"].map(VALUES["provider"]),
                                         cost=cost["cost_usd"] * cur.per_usd)
    tokens = frames["model"].assign(model=frames["model"]["model"].map(model_label))
    frames["tokens_by_model"] = tokens.rename(columns={"input_tokens": "Input", "output_tokens": "Output"}).melt(
        id_vars="model", value_vars=["Input", "Output"], var_name="tokens", value_name="count")
    return {name: frame if name in ("cost_per_day", "tokens_by_model") else for_people(frame, cur)
            for name, frame in frames.items()}


def bar_chart(data: pd.DataFrame, x: tuple[str, str, str], y: tuple[str, str], color: tuple[str, str]) -> None:
    """A stacked bar chart from a plain Vega-Lite spec (Altair's validation costs ~50 ms a chart); each
    axis is (field, title[, type]) so people read titles, not column names."""
    st.vega_lite_chart(data, {
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {"x": {"field": x[0], "title": x[1], "type": x[2]},
                     "y": {"field": y[0], "title": y[1], "type": "quantitative"},
                     "color": {"field": color[0], "title": color[1], "type": "nominal"}},
    })


c = state.ctx()
rt, viewer = c.rt, c.actor
shown = currency.shown()  # the shell read the team's currency for this run
COST = {cost_heading(shown): st.column_config.Column(  # the Cost column's config, under its name
    cost_heading(shown), help="Estimated; unknown: not priced, never counted as zero")}
st.title("Usage", anchor=False)
st.caption("Every chat and search call, priced with genai-prices (chat) and per-request prices (search). "
           "Days and months are UTC, as budgets count them. A cost shown as unknown was not priced, and is never "
           "counted as zero.")

budget_view.show_left(c)
money = st.container()  # filled once the filters below are read: on every screen the money comes first

today = utcnow().date()
st.subheader("Filters", anchor=False, divider="gray")
with st.container(horizontal=True, vertical_alignment="bottom"):
    period = st.segmented_control("Period", list(PERIODS), format_func=PERIODS.__getitem__, required=True,
                                  default=usage.Period.THIS_MONTH, key="usage_period")
    if period == "days":
        picked = st.date_input("Days (UTC)", (today - timedelta(days=29), today), max_value=today, key="usage_days",
                               width=240)
        since, until = ((*tuple(picked), None, None))[:2]
    else:
        since, until = usage.Period(period or usage.Period.THIS_MONTH).days(today)
    user_ids = []
    if viewer.is_admin:
        names = {u.id: u.username for u in accounts.list_users(rt)} | {None: words.NO_USER}
        user_ids = st.multiselect("User", list(names), format_func=names.__getitem__, key="usage_users",
                                  placeholder="Everyone", width=240)
    window = usage.UsageFilter(since=since, until=until, user_ids=user_ids)
    # whose calls the viewer sees is all the summary depends on: every admin shares the team's entries
    seen_by = Actor.operator() if viewer.is_admin else Actor("member", viewer.user_id, False)
    settled = settled_part(rt, seen_by, window, usage.data_version(rt).settled_key(utcnow()))
    # the window's summary also offers the models and statuses seen in it
    window_summary = usage.summary(rt, viewer, window, settled)
with st.container(horizontal=True):  # the narrowing filters on a row of their own, each wide enough
    providers = st.multiselect("Provider", [p.value for p in Provider], key="usage_providers", width=240,
                               format_func=lambda value: Provider.parse(value).label, placeholder="Any provider")
    models = st.multiselect("Model", window_summary.values("model"), key="usage_models", format_func=model_label,
                            width=240, placeholder="Any model")
    sources = st.multiselect("Paid by", [s.value for s in KeySource], key="usage_sources", width=200,
                             format_func=lambda value: words.PAYER[KeySource(value)], placeholder="Anyone's key")
    statuses = st.multiselect("Status", window_summary.values("status"), key="usage_statuses", width=220,
                              format_func=lambda value: words.STATUS[CallStatus(value)], placeholder="Any outcome")
flt = replace(window, providers=providers, models=models, key_sources=sources, statuses=statuses)
summary = window_summary.narrow(flt)  # the cube has every filtered dimension: no second query
frames = frames_of(summary, summary.fingerprint(), shown)
totals = summary.totals


def _span(first: date | None, last: date | None) -> str:
    if first is None:
        return "every day" if last is None else f"up to {last:%-d %B %Y}"
    if last is None or first == last:
        return f"{first:%-d %B %Y}" + ("" if last else " onwards")
    if (first.year, first.month) == (last.year, last.month):
        return f"{first:%-d} to {last:%-d %B %Y}"
    return f"{first:%-d %B %Y} to {last:%-d %B %Y}"


with money:
    own, shared = summary.own_and_shared
    st.markdown(f"**{PERIODS[period or usage.Period.THIS_MONTH]}** · {_span(since, until)} (UTC)")
    with st.container(horizontal=True):
        st.metric("Estimated cost", totals.cost_label, border=True,
                  help="Sum of the known costs; calls whose price is unknown are counted separately.")
        st.metric("On your own keys" if not viewer.is_admin else "On people's own keys", own.cost_label,
                  border=True, help="Calls paid by a person's own API key: billed to that person's provider "
                                    "account; no budget applies.")
        st.metric("On shared keys", shared.cost_label, border=True,
                  help="Calls paid by the team's keys or the server's: the money budgets limit.")
        st.metric("Calls", f"{totals.calls:,}", border=True)
    if viewer.is_admin and shared.calls:
        st.markdown("**Shared-key spend by person**")
        by_person = for_people(summary.shared_by_person()[["user", "calls", "cost_usd", "unknown_cost_calls"]], shown)
        st.dataframe(styled(by_person, shown), hide_index=True, key="usage_by_person",
                     column_config={**COST, **NUMBERS}, alt="Shared-key spend by person, highest first")

if viewer.is_admin:  # what was logged, checked against what the providers billed
    billcheck_view.render(rt, viewer)

if totals.calls:
    with st.container(horizontal=True):
        st.metric("Input tokens", f"{totals.input_tokens:,}", border=True,
                  help="All billed input: prompt, cache reads and writes, tool-use prompts.")
        st.metric("Output tokens", f"{totals.output_tokens:,}", border=True,
                  help="All billed output, reasoning (thinking) included.")
        st.metric("Cached input", "—" if totals.cached_share is None else f"{totals.cached_share:.0%}", border=True,
                  help="The share of billed input read from the provider's prompt cache, billed at a lower rate.")
        st.metric("Reasoning tokens", f"{totals.reasoning_tokens:,}", border=True,
                  help="Output the model spent thinking; billed as output. Per model under 'Per model'.")
    left, right = st.columns(2)
    with left:
        st.markdown(f"**Known cost per day ({shown.code}), by provider**")
        bar_chart(frames["cost_per_day"], ("day", "Day (UTC)", "temporal"), ("cost", f"Known cost ({shown.code})"),
                  ("provider", "Provider"))
    with right:
        st.markdown("**Tokens by model**")
        bar_chart(frames["tokens_by_model"], ("model", "Model", "nominal"), ("count", "Tokens"), ("tokens", "Tokens"))

    for tab, dim in zip(st.tabs(list(TITLES.values())), TITLES, strict=False):
        with tab:
            st.dataframe(styled(frames[dim], shown), hide_index=True, column_config={
                "Day (UTC)": st.column_config.DateColumn("Day (UTC)", format="YYYY-MM-DD"), **COST, **NUMBERS})

if not totals.calls:
    st.info("No calls in these days with these filters: a chat or a search shows up here as soon as it is made.",
            icon=":material/info:")
    st.stop()

st.subheader("Every call", anchor=False, divider="gray")
pages = max(1, math.ceil(totals.calls / PAGE_SIZE))
with st.container(horizontal=True, vertical_alignment="bottom"):
    number = st.number_input("Page", min_value=1, max_value=pages, value=1, key="usage_page", width=120)
    st.caption(f"of {pages:,}, newest first")


def _csv() -> str:
    out = io.StringIO()
    usage.write_csv(rt, viewer, flt, out)
    return out.getvalue()


st.download_button("Download CSV", _csv, file_name=f"usage-{since or 'all'}-{until or today}.csv",
                   mime="text/csv", icon=":material/download:", on_click="ignore", key="usage_csv")
rows = usage.page(rt, viewer, flt, number=int(number), size=PAGE_SIZE)
calls = for_people(rows[ROW_ORDER], shown)
named = rows["connection"].notna()  # an OpenAI-compatible call shows its connection's name
calls.loc[named, HEADINGS["provider"]] = rows.loc[named, "connection"]
st.dataframe(styled(calls, shown), hide_index=True, key="usage_calls", column_config={
    "Time (UTC)": st.column_config.DatetimeColumn("Time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "Model": st.column_config.TextColumn("Model", width="medium"), **COST, **NUMBERS,
})

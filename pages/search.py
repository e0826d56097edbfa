"""Web search on one or several providers: one full-width table per provider, in tabs, with who paid
and what it cost. Providers nobody has a key for (not you, not the team, not the server) are marked
before you search, with whom to ask."""

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from byok_core import keys, onboarding, search, words
from byok_core.currency import money
from byok_core.errors import ByokError
from byok_core.md import md_escape
from byok_core.providers import Provider, ProviderKind
from byok_ui import budget_view, chat_view, state, turns

c = state.ctx()

SEARCH_PROVIDERS = Provider.of_kind(ProviderKind.SEARCH)

st.title("Search", anchor=False)
budget_area = st.container()  # filled at the end, so a warning counts the searches just made

payers = keys.sources(c.rt, c.user.id)
no_key = [p for p in SEARCH_PROVIDERS if payers.get(p) is None]
if "search_providers" not in st.session_state:
    st.session_state.search_providers = [search.default_provider(c.rt, c.user.id) or SEARCH_PROVIDERS[0]]


def provider_label(provider: Provider) -> str:
    return f"{provider.label} (no key)" if provider in no_key else provider.label


with st.form("search_form", border=False):
    with st.container(horizontal=True, vertical_alignment="bottom"):
        query = st.text_input("Query", key="search_query", max_chars=400, placeholder="What are you looking for?")
        limit = st.number_input("Results", min_value=1, max_value=20, value=10, key="search_limit", width=110)
    chosen = st.pills("Providers", SEARCH_PROVIDERS, selection_mode="multi", format_func=provider_label,
                      key="search_providers")
    if no_key:
        ask = onboarding.whom_to_ask(c.rt, no_key, asker_is_admin=c.user.is_admin)
        st.caption(f":material/key_off: {md_escape(ask)}")
    submitted = st.form_submit_button("Search", type="primary", icon=":material/search:")


def results_frame(results: Sequence[search.SearchResult]) -> pd.DataFrame:
    return pd.DataFrame({
        "#": [r.rank for r in results],
        "Title": [r.title for r in results],
        "URL": [r.url for r in results],
        "Snippet": [r.snippet for r in results],
        "Provider": [r.provider.label for r in results],
    })


def show_results(provider: Provider) -> None:
    try:
        with st.spinner(f"Searching {provider.label}…"), turns.waiting():  # the provider's answer
            found = search.search(c.rt, user_id=c.user.id, provider=provider, query=query.strip(), limit=int(limit))
    except ByokError as exc:
        chat_view.show_start_error(exc)
        return
    record = found.record
    count = len(found.results)
    st.caption(f"{count} result{'s' * (count != 1)} · paid by {words.PAID_BY[record.key_source]} · "
               f"{money(record.cost_usd, unknown=chat_view.COST_UNKNOWN)}")
    if not found.results:
        return
    st.dataframe(
        results_frame(found.results), hide_index=True, key=f"search_results_{provider.value}",
        alt=f"Search results from {provider.label}", width="stretch",
        column_config={
            "URL": st.column_config.LinkColumn("URL", width="medium"),
            "Snippet": st.column_config.TextColumn("Snippet", width="large"),
            "#": st.column_config.NumberColumn("#", width="small"),
        },
    )


if submitted:
    if not query.strip():
        st.error("Type a query first.")
    elif not chosen:
        st.error("Choose at least one search provider.")
    else:
        for tab, provider in zip(st.tabs([p.label for p in chosen]), chosen, strict=True):
            with tab:
                show_results(provider)
with budget_area:
    budget_view.show_left(c)

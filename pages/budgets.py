"""Budgets (admins): what shared keys (the team's and the server's) may cost, how fast, on which
models, who hears of it when a budget runs low, and the currency money is shown in."""

from collections.abc import Callable

import pandas as pd
import streamlit as st

from byok_core import accounts, alerts, budgets, currency, fallback, limits, pricing
from byok_core.clock import utcnow
from byok_core.errors import ByokError
from byok_core.identity import Owner, Role
from byok_core.md import md_escape
from byok_core.providers import Provider, ProviderKind
from byok_ui import budget_view, state, tables

c = state.ctx()
if not c.user.is_admin:  # defence in depth: the shell never routes members here
    st.error("This page is for admins.")
    st.stop()
rt = c.rt
shown = currency.shown()  # the shell read the team's currency for this run

st.title("Budgets", anchor=False)
st.caption("Calls on shared keys (the team's or the server's) are shared money. Each calendar month (UTC), a "
           "budget caps what they may cost, for one person or the whole team. Before each call its worst case is "
           "set aside (the prompt, and the most the reply may be), so calls made at the same moment can never "
           "pass a budget together; after the call only what it cost counts. From 80% people are warned, and "
           "a call that does not fit is refused. Calls on a person's own keys never count and are never refused.")
with st.container():  # one element above the tabs whatever it holds, so the tab in use stays open after an action
    budget_view.show_left(c)

users = accounts.list_users(rt)
targets = {Owner.team(): "The whole team"} | {Owner.user(u.id): u.username for u in users}
CHAT = Provider.of_kind(ProviderKind.CHAT)


def _apply(action: Callable[[], object], message: str, where: str) -> None:
    """Run an admin action from a button; its outcome shows after the rerun in the tab ``where`` it was
    made (drawn above the tabs, it would move them, and the browser would open the first one again)."""
    try:
        action()
    except ByokError as exc:
        state.flash(where, str(exc), ok=False)
    else:
        state.flash(where, message)


def _load_budget() -> None:
    current = budgets.budget_of(rt, st.session_state.budgets_target)
    st.session_state.budgets_amount = shown.amount_text(current) if current is not None else ""


def _load_person_limit() -> None:
    own = limits.person_limits(rt).get(st.session_state.limits_person)
    st.session_state.limits_person_rpm = own if own is not None else (limits.rate_limits(rt)[0] or 0)


def _load_models() -> None:
    subject, provider = st.session_state.models_subject, st.session_state.models_provider
    role, user_id = (subject, None) if isinstance(subject, Role) else (None, subject)
    st.session_state.models_patterns = "\n".join(limits.allowlist(rt, provider, role=role, user_id=user_id))


tab_budgets, tab_limits, tab_alerts, tab_prices, tab_currency = st.tabs(
    ["Budgets", "Rate limits and models", "Alerts", "Prices", "Currency"], key="budgets_tabs")

with tab_budgets:
    state.show_flash("budgets_budgets")
    report = budgets.spend_report(rt)
    # a line of text between the tabs and the table, whose toolbar (search, download, full screen)
    # would otherwise sit over the tabs on a phone
    st.caption(f"Shared-key spend in {alerts.month_name(budgets.month_of(utcnow()))} (UTC), by budget.")
    code = shown.code  # the currency in each money heading, as a screen reader needs it
    budget_heading = f"Monthly budget ({code})"
    amounts: dict[str, list[float | None]] = {
        budget_heading: [line.budget_usd for line in report],
        f"Spent this month ({code})": [line.spent_usd for line in report],
        f"Set aside for running calls ({code})": [line.reserved_usd for line in report],
        f"Left ({code})": [line.left_usd for line in report],
    }
    st.dataframe(tables.written(pd.DataFrame({  # the amounts stay numbers, so each column sorts by amount
        "Who": [targets.get(line.owner, line.name) for line in report],
        **{heading: tables.amounts(usd, shown) for heading, usd in amounts.items()},
        "Used": ["—" if line.used is None else f"{line.used:.0%}" for line in report],
    }), shown, {heading: (True, "no budget" if heading == budget_heading else "—") for heading in amounts}),
        hide_index=True, key="budgets_report", column_config={
            f"Set aside for running calls ({code})": st.column_config.Column(
                help="The most the calls running now can cost, held until they end"),
            "Used": st.column_config.TextColumn(alignment="right"),
        })
    if "budgets_amount" not in st.session_state:
        st.session_state.budgets_target = Owner.team()
        _load_budget()
    with st.container(border=True, horizontal=True, vertical_alignment="bottom"):
        st.selectbox("Budget for", list(targets), format_func=targets.__getitem__, key="budgets_target",
                     on_change=_load_budget)
        st.text_input(f"{shown.code} per month", key="budgets_amount",
                      placeholder="e.g. 25.00" if shown.minor else "e.g. 2500", width=140)
        st.button("Set budget", type="primary", key="budgets_set", on_click=_apply, args=(
            lambda: budgets.set_budget(rt, c.actor, st.session_state.budgets_target, st.session_state.budgets_amount,
                                       shown), "Budget set.", "budgets_budgets"))
        st.button("Remove budget", key="budgets_clear", on_click=_apply, args=(
            lambda: budgets.clear_budget(rt, c.actor, st.session_state.budgets_target), "Budget removed.",
            "budgets_budgets"))

with tab_limits:
    state.show_flash("budgets_limits")
    per_user, per_team = limits.rate_limits(rt)
    st.caption("Calls per minute on shared keys, counted over the last 60 seconds. 0 means no limit.")
    with st.container(border=True, horizontal=True, vertical_alignment="bottom"):
        st.number_input("Per person", min_value=0, max_value=100_000, value=per_user or 0, key="limits_user")
        st.number_input("For the whole team", min_value=0, max_value=100_000, value=per_team or 0,
                        key="limits_team")
        st.button("Save limits", type="primary", key="limits_save", on_click=_apply, args=(
            lambda: limits.set_rate_limits(rt, c.actor, st.session_state.limits_user or None,
                                           st.session_state.limits_team or None), "Rate limits saved.",
            "budgets_limits"))

    st.subheader("One person's rate limit", anchor=False)
    st.caption("A person's own figure replaces the per-person one for them (0: no limit for them); the team's "
               "limit still counts their calls.")
    names = {u.id: u.username for u in users if u.id is not None}
    own = limits.person_limits(rt)
    if own:
        st.dataframe(pd.DataFrame({
            "Who": [names.get(uid, f"#{uid}") for uid in own],
            "Calls per minute": ["no limit" if rpm == 0 else f"{rpm:,}" for rpm in own.values()],
        }), hide_index=True, key="limits_people")
    if names:
        if "limits_person_rpm" not in st.session_state:
            st.session_state.limits_person = next(iter(names))
            _load_person_limit()
        with st.container(border=True, horizontal=True, vertical_alignment="bottom"):
            st.selectbox("Person", list(names), format_func=names.__getitem__, key="limits_person",
                         on_change=_load_person_limit)
            st.number_input("Their calls per minute", min_value=0, max_value=limits.MAX_RPM, key="limits_person_rpm",
                            help="0: no limit for them")
            st.button("Set their limit", type="primary", key="limits_person_set", on_click=_apply, args=(
                lambda: limits.set_person_limit(rt, c.actor, st.session_state.limits_person,
                                                int(st.session_state.limits_person_rpm)),
                "Their rate limit saved.", "budgets_limits"))
            st.button("Use the per-person limit", key="limits_person_clear", on_click=_apply, args=(
                lambda: limits.set_person_limit(rt, c.actor, st.session_state.limits_person, None),
                "They have the per-person limit again.", "budgets_limits"))

    st.subheader("Models on shared keys", anchor=False)
    st.caption("Which models people may use when a shared key pays: one model name or pattern per line, such as "
               "gpt-4o-mini or claude-haiku-*. A person's own list replaces their role's; an empty list allows "
               "every model. Own keys are never restricted.")
    subjects = {Role.MEMBER: "Members", Role.ADMIN: "Admins"} | {u.id: u.username for u in users}
    if "models_patterns" not in st.session_state:
        st.session_state.models_subject, st.session_state.models_provider = Role.MEMBER, CHAT[0]
        _load_models()
    with st.container(border=True):
        with st.container(horizontal=True):
            st.selectbox("For", list(subjects), format_func=subjects.__getitem__, key="models_subject",
                         on_change=_load_models)
            st.selectbox("Provider", CHAT, format_func=lambda p: p.label, key="models_provider",
                         on_change=_load_models)
        st.text_area("Allowed models", key="models_patterns", height=120, placeholder="any model")

        def _save_models() -> None:
            subject = st.session_state.models_subject
            role, user_id = (subject, None) if isinstance(subject, Role) else (None, subject)
            kept = limits.set_allowlist(rt, c.actor, st.session_state.models_provider,
                                        st.session_state.models_patterns, role=role, user_id=user_id)
            st.session_state.models_patterns = "\n".join(kept)

        st.button("Save models", type="primary", key="models_save", on_click=_apply,
                  args=(_save_models, "Model list saved.", "budgets_limits"))

    st.subheader("Team key when a member's own key is refused", anchor=False)
    st.caption("A member's chat call that their own key could not pay for (out of quota or rate-limited) may be "
               "tried once more on the team's key, under these budgets, rate limits and model lists. The reply "
               "says so, the usage log keeps both calls, and each member can turn it off on their Account page.")
    fallback_on = fallback.allowed_providers(rt)

    def _toggle_fallback(provider: Provider) -> None:
        on = st.session_state[f"fallback_{provider.value}"]
        _apply(lambda: fallback.set_allowed(rt, c.actor, provider, on),
               f"{provider.label}: {'falls back' if on else 'no longer falls back'} to the team's key.",
               "budgets_limits")

    with st.container(horizontal=True):
        for p in CHAT:
            st.toggle(p.label, value=p in fallback_on, key=f"fallback_{p.value}", on_change=_toggle_fallback,
                      args=(p,))

with tab_alerts:
    state.show_flash("budgets_alerts")
    st.caption("At 80% and at 100% of any budget, one message a month per budget goes to this webhook: "
               "Slack, Mattermost, Microsoft Teams and ntfy accept it. The address is kept encrypted.")
    current = alerts.describe(rt)
    st.markdown(f"Webhook: **{md_escape(current)}**" if current else "No webhook yet: alerts show only on this page.")
    with st.container(border=True, horizontal=True, vertical_alignment="bottom"):
        st.text_input("Webhook URL", type="password", key="alerts_url", placeholder="https://hooks.slack.com/…")

        def _save_webhook() -> None:
            alerts.set_webhook(rt, c.actor, st.session_state.alerts_url)
            st.session_state.alerts_url = ""

        st.button("Save webhook", type="primary", key="alerts_save", on_click=_apply,
                  args=(_save_webhook, "Webhook saved.", "budgets_alerts"))
        if current:
            st.button("Send a test", key="alerts_test", on_click=_apply, args=(
                lambda: alerts.send(rt, "BYOK Dashboard: a test of the budget alerts."), "Test sent.",
                "budgets_alerts"))
            st.button("Remove webhook", key="alerts_remove", on_click=_apply,
                      args=(lambda: alerts.set_webhook(rt, c.actor, None), "Webhook removed.", "budgets_alerts"))

with tab_prices:
    state.show_flash("budgets_prices")
    st.caption("A chat model that genai-prices does not know cannot be kept within a budget: calls to it on a "
               "budgeted shared key are refused, unless it has a price per call here.")
    priced = pricing.model_prices(rt)
    if priced:
        st.dataframe(pd.DataFrame({
            "Provider": [p.label for p, _, _ in priced], "Model": [m for _, m, _ in priced],
            "USD per call": [usd for _, _, usd in priced],
        }), hide_index=True, key="prices_models",
            column_config={"USD per call": st.column_config.NumberColumn(format="$%.4f")})
    with st.container(border=True, horizontal=True, vertical_alignment="bottom"):
        st.selectbox("Provider", CHAT, format_func=lambda p: p.label, key="prices_provider")
        st.text_input("Model", key="prices_model", max_chars=120)
        st.number_input("USD per call", min_value=0.0, max_value=99.0, value=0.01, step=0.01, format="%.4f",
                        key="prices_usd")
        st.button("Set price", type="primary", key="prices_set", on_click=_apply, args=(
            lambda: pricing.set_model_price(rt, c.actor, st.session_state.prices_provider,
                                            st.session_state.prices_model.strip(), st.session_state.prices_usd),
            "Price set.", "budgets_prices"))
        st.button("Remove price", key="prices_remove", on_click=_apply, args=(
            lambda: pricing.set_model_price(rt, c.actor, st.session_state.prices_provider,
                                            st.session_state.prices_model.strip(), None), "Price removed.",
            "budgets_prices"))

    st.subheader("Search prices", anchor=False)
    st.caption("Searches are priced per request; change the prices on the Admin page (Search prices).")
    searches = Provider.of_kind(ProviderKind.SEARCH)
    st.dataframe(pd.DataFrame({
        "Provider": [p.label for p in searches],
        "USD per request": [pricing.search_price(rt, p) for p in searches],
        "Default (USD)": [p.spec.price_per_request for p in searches],
    }), hide_index=True, key="budgets_prices")

with tab_currency:
    state.show_flash("budgets_currency")
    st.caption("Money is kept in US dollars, as providers bill it; this page, Usage and Chat show it in the "
               "currency chosen here, at the rate set here. Budgets are typed in it and kept in dollars at the "
               "rate of that moment. A new rate changes what is shown from then on; nothing logged is rewritten. "
               "Prices set by providers stay in USD.")
    rates = currency.history(rt, limit=20)
    if rates:
        st.dataframe(pd.DataFrame({
            "Set (UTC)": [state.fmt_time(r.set_at) for r in rates], "Currency": [r.code for r in rates],
            "Rate": [r.rate_text for r in rates], "Set by": [r.set_by for r in rates],
        }), hide_index=True, key="currency_history")
    else:
        st.markdown("Money is shown in **USD**.")
    if "currency_code" not in st.session_state:
        st.session_state.currency_code, st.session_state.currency_rate = shown.code, f"{shown.per_usd:g}"
    with st.container(border=True, horizontal=True, vertical_alignment="bottom"):
        st.selectbox("Currency", list(currency.KNOWN), key="currency_code", on_change=lambda: st.session_state.update(
            currency_rate=f"{shown.per_usd:g}" if st.session_state.currency_code == shown.code else ""))
        st.text_input("What 1 USD buys of it", key="currency_rate", width=180,
                      help="How many units of the currency one US dollar buys, e.g. 0.92 for EUR (ignored for USD)")

        def _set_currency() -> None:
            chosen = currency.set_display(rt, c.actor, st.session_state.currency_code, st.session_state.currency_rate)
            st.session_state.currency_rate = f"{chosen.per_usd:g}"
            st.session_state.pop("budgets_amount", None)  # the budget form reads the budget again, in it

        st.button("Set currency", type="primary", key="currency_set", on_click=_apply,
                  args=(_set_currency, "Currency set.", "budgets_currency"))

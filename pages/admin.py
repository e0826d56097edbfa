"""Admin: users, team keys, search prices and the audit log. Only in admins' navigation."""

from collections.abc import Callable

import pandas as pd
import streamlit as st

from byok_core import accounts, pricing, words
from byok_core.currency import USD, money
from byok_core.errors import ByokError
from byok_core.identity import Owner, Role
from byok_core.md import md_escape
from byok_core.providers import Provider, ProviderKind
from byok_ui import audit_view, keys_panel, state

c = state.ctx()
if not c.user.is_admin:  # defence in depth: the shell never routes members here
    st.error("This page is for admins.")
    st.stop()
rt, me, actor = c.rt, c.user.username, c.actor  # the core checks and audits every change as ``actor``

_AN = {Role.ADMIN: "an", Role.MEMBER: "a"}
st.title("Admin", anchor=False)
users_tab, team_tab, prices_tab, audit_tab = st.tabs(["Users", "Team keys", "Search prices", "Audit log"],
                                                      key="admin_tabs")  # a filter keeps its tab open


def _act(fn: Callable[..., object], success: str, *args: object) -> None:
    try:
        fn(rt, actor, *args)
    except ByokError as exc:
        state.flash("admin", str(exc), ok=False)
    else:
        state.flash("admin", success)


def _create_user() -> None:
    """Create the account; the form keeps what was typed when it is refused, and empties on success."""
    role = Role.ADMIN if st.session_state.get("admin_new_admin") else Role.MEMBER
    try:
        user = accounts.create_user(rt, actor, st.session_state.get("admin_new_name", ""),
                                    st.session_state.get("admin_new_pw", ""), role)
    except ByokError as exc:
        state.flash("admin_create", str(exc), ok=False)
        return
    state.flash("admin_create", f"Created the account {user.username}.")
    st.session_state.update(admin_new_name="", admin_new_pw="", admin_new_admin=False)


def _rename(name: str) -> None:
    try:
        user = accounts.rename_user(rt, actor, name, st.session_state.get("admin_rename_to", ""))
    except ByokError as exc:
        state.flash("admin", str(exc), ok=False)
        return
    state.flash("admin", f"Renamed {name} to {user.username}.")
    st.session_state.update(admin_pick=user.username, admin_rename_to="")


def _reset_password(name: str) -> None:
    _act(accounts.set_password, f"New password set for {name}; their sessions ended.", name,
         st.session_state.get("admin_reset_pw", ""))


with users_tab:
    for clash in accounts.name_clashes(rt):
        st.warning(md_escape(clash.sentence(" under Manage a user")), icon=":material/warning:")
    state.show_flash("admin")
    users = accounts.list_users(rt)
    st.dataframe(
        pd.DataFrame({
            "Username": [u.username for u in users],
            "Role": [words.ROLE[u.role] for u in users],
            "Status": ["disabled" if u.disabled else "active" for u in users],
            "Created": [state.fmt_time(u.created_at) for u in users],
        }),
        hide_index=True, key="admin_users", alt="Users with role and status",
    )
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown("**Create a user**")
        with st.form("admin_create", border=False):
            st.text_input("Username", key="admin_new_name", max_chars=64,
                          help="For single sign-on, use the person's email address as the username.")
            st.caption(accounts.USERNAME_RULES)
            st.text_input("Initial password (at least 8 characters)", type="password", key="admin_new_pw")
            st.checkbox("Admin", key="admin_new_admin")
            st.form_submit_button("Create user", type="primary", on_click=_create_user)
        state.show_flash("admin_create")
    with right, st.container(border=True):
        st.markdown("**Manage a user**")
        names = [u.username for u in users]
        name = st.selectbox("User", names, key="admin_pick")
        target = next((u for u in users if u.username == name), None)
        if target is not None:
            is_me = target.username == me
            with st.container(horizontal=True):
                if target.disabled:
                    st.button("Enable", key="admin_enable", on_click=_act,
                              args=(accounts.set_disabled, f"Enabled {name}.", name, False))
                else:
                    st.button("Disable", key="admin_disable", disabled=is_me, on_click=_act,
                              args=(accounts.set_disabled, f"Disabled {name}; they are signed out.", name, True),
                              help="You cannot disable yourself." if is_me else None)
                new_role = Role.MEMBER if target.is_admin else Role.ADMIN
                st.button(f"Make {words.ROLE[new_role]}", key="admin_role", disabled=is_me, on_click=_act,
                          args=(accounts.set_role, f"{name} is now {_AN[new_role]} {words.ROLE[new_role]}.", name,
                                new_role),
                          help="You cannot change your own role." if is_me else None)
            with st.form("admin_reset", clear_on_submit=True, border=False):
                st.text_input("New password", type="password", key="admin_reset_pw")
                st.form_submit_button("Reset password", on_click=_reset_password, args=(name,))
            with st.form("admin_rename", border=False):
                st.text_input("New username", key="admin_rename_to", max_chars=64,
                              help="Keys, conversations and usage stay with the account.")
                st.form_submit_button("Rename", on_click=_rename, args=(name,))

with team_tab:
    st.caption("Team keys pay for members who have no key of their own for a provider.")
    keys_panel.render(rt, actor, Owner.team(), prefix="teamkeys")


def _save_price(provider: Provider) -> None:
    price = float(st.session_state.get(f"admin_price_{provider.value}") or 0)
    try:
        pricing.set_search_price(rt, actor, provider, price)
    except ByokError as exc:
        state.flash("admin_prices", str(exc), ok=False)
    else:
        state.flash("admin_prices", f"Saved: each {provider.label} request now counts as {money(price, currency=USD)}.")


with prices_tab:
    st.caption("Search providers bill per request; these prices feed the usage page's cost estimates. "
               "A price is saved as soon as you change it.")
    state.show_flash("admin_prices")
    for provider in Provider.of_kind(ProviderKind.SEARCH):
        price = pricing.search_price(rt, provider)
        st.number_input(f"{provider.label}: USD per request", min_value=0.0, max_value=99.0, step=0.001,
                        format="%.4f", value=float(price or 0.0), key=f"admin_price_{provider.value}",
                        on_change=_save_price, args=(provider,))

with audit_tab:
    audit_view.render(rt, {u.id: u.username for u in users if u.id is not None})

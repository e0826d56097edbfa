"""Your account: change password, whether the team's key may pay when yours is refused, sign out."""

import streamlit as st

from byok_core import accounts, fallback
from byok_core.errors import ByokError
from byok_core.md import md_escape
from byok_ui import state

c = state.ctx()
st.title("Account", anchor=False)
st.write(f"Signed in as **{md_escape(c.user.username)}** ({'admin' if c.user.is_admin else 'member'}).")

st.subheader("Change password", anchor=False)
with st.form("change_password", clear_on_submit=True):
    old = st.text_input("Current password", type="password", autocomplete="current-password")
    new = st.text_input("New password (at least 8 characters)", type="password", autocomplete="new-password")
    repeat = st.text_input("Repeat the new password", type="password", autocomplete="new-password")
    changed = st.form_submit_button("Change password", type="primary")
if changed:
    if new != repeat:
        st.error("The two new passwords differ; type the same password twice.")
    else:
        try:
            accounts.change_own_password(c.rt, c.actor, old, new)
        except ByokError as exc:
            st.error(md_escape(str(exc)))
        else:
            # Every session of this account ended with the change; this tab gets a fresh one.
            state.start_session(c.rt, accounts.get_user(c.rt, c.user.username))
            state.flash("account", "Password changed; you were signed out everywhere else.")
            st.rerun()
state.show_flash("account")

st.subheader("When your own key is refused", anchor=False)
allowed = fallback.allowed_providers(c.rt)
if allowed:
    names = ", ".join(sorted(p.label for p in allowed))
    st.caption(f"The admins let a chat call that your own key could not pay for (out of quota or rate-limited) be "
               f"tried once more on the team's key, under the team's budgets, for: {names}. The reply says so, "
               "and the usage log keeps both calls.")
else:
    st.caption("The admins have not let any provider's calls fall back to the team's key.")


def _toggle_fallback() -> None:
    fallback.set_opted_out(c.rt, c.actor, not st.session_state["account_fallback"])


st.toggle("Let the team's key pay when my own key is out of quota or rate-limited", key="account_fallback",
          value=c.user.id is not None and not fallback.opted_out(c.rt, c.user.id), on_change=_toggle_fallback,
          disabled=not allowed)

st.subheader("Sign out", anchor=False)
if st.button("Sign out", icon=":material/logout:"):
    state.sign_out(c.rt)
    st.rerun()

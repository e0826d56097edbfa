"""Your account: change password, sign out."""

import streamlit as st

from byok_core import accounts
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

st.subheader("Sign out", anchor=False)
if st.button("Sign out", icon=":material/logout:"):
    state.sign_out(c.rt)
    st.rerun()

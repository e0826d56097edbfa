"""First run: create the first admin with the one-time code printed in the server's console."""

import streamlit as st

from byok_core import accounts
from byok_core.errors import ByokError
from byok_core.md import md_escape
from byok_ui import state
from byok_ui.process import open_or_explain

rt = open_or_explain()

st.title("Welcome to BYOK Dashboard", anchor=False)
st.write(
    "There are no users yet. Create the first admin account. To prove you run this server, "
    "enter the **setup code** that the server printed in its console when it started."
)
with st.form("setup", enter_to_submit=True):
    code = st.text_input("Setup code", placeholder="xxxxxx-xxxxxx-xxxxxx", type="password")
    username = st.text_input("Admin username", max_chars=64)
    password = st.text_input("Password (at least 8 characters)", type="password", max_chars=1024)
    repeat = st.text_input("Repeat the password", type="password", max_chars=1024)
    submitted = st.form_submit_button("Create admin", type="primary")

if submitted:
    if password != repeat:
        st.error("The two passwords differ; type the same password twice.")
    else:
        try:
            user = accounts.claim_first_admin(rt, code, username, password)
        except ByokError as exc:
            st.error(md_escape(str(exc)))
        else:
            state.start_session(rt, user)
            st.rerun()

"""Your API keys: one form per provider, saved keys shown as masks only."""

import streamlit as st

from byok_core.identity import Owner
from byok_core.md import md_escape
from byok_ui import caps_view, keys_panel, state

c = state.ctx()
st.title("Keys", anchor=False)
# whose account this tab is in, before anything is saved: a key pasted here pays for that account's calls
st.info(f"Signed in as **{md_escape(c.user.username)}**: the keys you save here are {md_escape(c.user.username)}'s.",
        icon=":material/account_circle:")
st.caption(
    "Keys are encrypted at rest and write-only: after saving you only see a mask. A key is tested with its "
    "provider before it is saved, and a replaced key can be restored for 30 days. Your own key is used "
    "first, then the team's key, then the server's."
)
keys_panel.render(c.rt, c.actor, Owner.user(c.user.id), prefix="mykeys", user_id=c.user.id)
if c.user.id is not None:
    caps_view.render(c.rt, c.actor, c.user.id)

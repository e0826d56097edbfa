"""The chat's Model picker lists: a provider's (or a connection's) models for a user's key, cached.

In a module of its own so that its cache is made once per process: a decorator in a page's script
runs again on every run of the page, and finds the function's cache by hashing its source."""

from __future__ import annotations

import streamlit as st

from byok_core import chat
from byok_core.errors import ByokError
from byok_core.providers import Provider
from byok_core.runtime import Runtime
from byok_ui import turns


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def model_options(_rt: Runtime, user_id: int, provider: Provider, key_version: str,
                  connection: str | None = None) -> list[str]:
    """The provider's (or connection's) models for this user's key, cached 10 minutes per user,
    provider and key (``key_version`` changes when a key is saved, so a new key or endpoint lists afresh)."""
    try:
        with turns.waiting():  # the provider's answer
            return list(chat.list_models(_rt, user_id=user_id, provider=provider, connection=connection))
    except ByokError:
        return []

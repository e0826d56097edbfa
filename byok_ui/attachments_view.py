"""A prompt's images and PDFs in the history: a thumbnail per image, a chip per PDF."""

from __future__ import annotations

import io
from collections.abc import Sequence

import streamlit as st

from byok_core import attachments
from byok_core.attachments import AttachmentInfo
from byok_core.md import md_escape
from byok_core.runtime import Runtime

THUMB = 160  # pixels, the longest side


@st.cache_data(max_entries=300, show_spinner=False)
def _thumbnails(_rt: Runtime, database: str, user_id: int, ids: tuple[int, ...]) -> dict[int, bytes]:
    """Small PNGs of the user's images ``ids`` (kept files never change, so they are cached by
    database and id; the owner is checked in the query, and is part of the key). An image that
    cannot be drawn is left out: it shows as a chip."""
    from PIL import Image

    small = {}
    for attachment_id, f in attachments.contents(_rt, user_id, ids).items():
        try:
            with Image.open(io.BytesIO(f.data)) as image:
                image.thumbnail((THUMB, THUMB))
                out = io.BytesIO()
                image.convert("RGBA").save(out, "PNG")
        except (OSError, ValueError):
            continue
        small[attachment_id] = out.getvalue()
    return small


def chips(files: Sequence[AttachmentInfo]) -> None:
    """One chip per file, by name (for a prompt not sent yet, or while editing)."""
    for f in files:
        st.caption(f"{':material/picture_as_pdf:' if f.is_pdf else ':material/image:'} {md_escape(f.describe())}")


def show(rt: Runtime, user_id: int, files: Sequence[AttachmentInfo]) -> None:
    """Each image as a thumbnail (its name below), each PDF as a chip."""
    if not files:
        return
    images = [f for f in files if not f.is_pdf]
    small = _thumbnails(rt, rt.settings.database_url, user_id, tuple(f.id for f in images)) if images else {}
    with st.container(horizontal=True, key=f"chat_files_{files[0].id}", gap="small"):
        for f in images:
            if f.id in small:
                st.image(small[f.id], caption=f.name, width="content")
        chips([f for f in files if f.is_pdf or f.id not in small])

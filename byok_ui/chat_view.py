"""Rendering helpers for chat replies: who paid, tokens, cost, sources, and errors in plain words."""

from __future__ import annotations

import re
import time
from pathlib import Path

import streamlit as st

from byok_core.errors import ByokError, KeyUnreadableError, NoKeyError
from byok_core.providers import Provider

KEYS_PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "keys.py")
PAID_BY = {"user": "your key", "team": "the team's key", "env": "the server's key"}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>~$])")


def md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text or "")


def no_images(text: str) -> str:
    """Markdown with every image (``![alt](url)``, ``![alt][ref]``) turned into plain text.

    A reply steered by a planted web page could otherwise make the browser fetch a URL carrying
    conversation content, with no click. Links stay: they need a click."""
    return (text or "").replace("![", "!\\[")


def render_stream(deltas, every: float = 0.05) -> None:
    """Show a streamed reply as it arrives, images neutralised on the whole text so far (an
    image's ``![`` can be split across deltas); redrawn at most every ``every`` seconds."""
    placeholder, text, shown_at = st.empty(), "", 0.0
    for delta in deltas:
        text += delta
        if time.monotonic() - shown_at >= every:
            placeholder.markdown(no_images(text))
            shown_at = time.monotonic()
    placeholder.markdown(no_images(text))


def source_dicts(sources) -> list[dict]:
    out = []
    for s in sources or []:
        out.append({"title": getattr(s, "title", ""), "url": getattr(s, "url", ""),
                    "snippet": getattr(s, "snippet", ""), "provider": str(getattr(s, "provider", "")),
                    "rank": getattr(s, "rank", None)})
    return out


def result_meta(result) -> dict:
    """What is stored with an assistant message (JSON): never a key, only what the UI shows."""
    error = getattr(result, "error", None)
    return {
        "provider": str(getattr(result, "provider", "") or ""),
        "model": getattr(result, "model", "") or "",
        "key_source": str(getattr(result, "key_source", "") or ""),
        "input_tokens": getattr(result, "input_tokens", None),
        "output_tokens": getattr(result, "output_tokens", None),
        "cost_usd": getattr(result, "cost_usd", None),
        "latency_ms": getattr(result, "latency_ms", None),
        "status": getattr(result, "status", "ok") or "ok",
        "error": str(error) if error else None,
        "sources": source_dicts(getattr(result, "sources", None)),
        "budget_warning": getattr(result, "budget_warning", None),
    }


def fmt_cost(cost) -> str:
    if cost is None:
        return "cost unknown"
    if cost < 0.01:
        return f"${cost:.6f}".rstrip("0").rstrip(".") if cost else "$0.00"
    return f"${cost:,.4f}"


def fmt_tokens(value) -> str:
    return "?" if value is None else f"{value:,}"


def meta_caption(meta: dict) -> str:
    source = meta.get("key_source") or ""
    verb = "Paid by" if (meta.get("status") or "ok") == "ok" else "Tried with"  # a failed call may cost nothing
    parts = [f"{verb} {PAID_BY.get(source.lower(), source or 'an unknown key')}"]
    if meta.get("model"):
        provider = meta.get("provider") or ""
        try:
            provider = Provider(provider).label
        except ValueError:
            pass
        parts.append(f"{provider} {meta['model']}".strip())
    parts.append(f"{fmt_tokens(meta.get('input_tokens'))} in / {fmt_tokens(meta.get('output_tokens'))} out tokens")
    parts.append(fmt_cost(meta.get("cost_usd")))
    if meta.get("latency_ms") is not None:
        parts.append(f"{meta['latency_ms']:,} ms")
    return " · ".join(parts)


def keys_link(label: str = "Open the Keys page") -> None:
    try:
        st.page_link(KEYS_PAGE, label=label, icon=":material/key:")
    except Exception:  # the page is not in this user's navigation (never expected)
        st.caption("Open the Keys page from the menu.")


def show_status(meta: dict) -> None:
    """Plain-words error under a reply, with what to do next."""
    status = meta.get("status") or "ok"
    if status == "ok":
        return
    message = meta.get("error") or "The provider call failed."
    if status == "rate_limited":
        st.warning(message, icon=":material/hourglass_top:", title="Rate limited")  # says when to retry
    elif status in {"key_rejected", "auth", "bad_key", "unauthorized"}:
        st.error(message, icon=":material/key_off:", title="The provider rejected the key")
        keys_link("Check or replace the key on the Keys page")
    elif status in {"cut_off", "stream_cut"}:
        st.warning(message, icon=":material/content_cut:", title="The reply was cut off")  # says the text is kept
    else:
        st.error(message, icon=":material/error:")


def show_sources(sources: list[dict]) -> None:
    if not sources:
        return
    with st.expander(f"Sources ({len(sources)})", icon=":material/link:"):
        lines = []
        for n, s in enumerate(sources, 1):
            url = s.get("url") or ""
            title = md_escape(s.get("title") or url)
            safe_url = url.replace(")", "%29").replace(" ", "%20")
            link = f"[{title}]({safe_url})" if url.startswith(("http://", "https://")) else title
            lines.append(f"{n}. {link}")
        st.markdown("\n".join(lines))


def show_reply_footer(meta: dict) -> None:
    show_sources(meta.get("sources") or [])
    st.caption(meta_caption(meta))
    show_status(meta)
    if meta.get("budget_warning"):
        st.info(meta["budget_warning"], icon=":material/savings:")


def show_start_error(exc: ByokError) -> None:
    """An error raised before any text arrived (no key, unreadable key, bad input, provider error)."""
    kind = getattr(exc, "kind", None)
    if kind:
        show_status({"status": kind, "error": str(exc)})
        return
    st.error(str(exc), icon=":material/error:")
    if isinstance(exc, (NoKeyError, KeyUnreadableError)):
        keys_link()

"""Rendering helpers for chat replies: who paid, tokens, cost, sources, and errors in plain words."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from byok_core import replies, words
from byok_core.adapters.base import SearchResult
from byok_core.clock import utcnow
from byok_core.conversations import StoredMessage
from byok_core.currency import money
from byok_core.errors import ByokError, CallStatus, KeyUnreadableError, NoKeyError, ProviderError
from byok_core.md import md_escape, no_images, source_line
from byok_core.models import ReplyStatus
from byok_core.record import CallRecord
from byok_core.runtime import Runtime
from byok_ui import turns

# The live reply: the browser asks for a run of its fragment every LIVE_EVERY seconds; each run
# follows the reply for LIVE_FOR seconds and ends, so runs never overlap and none lasts the 0.5 s
# after which Streamlit shows its running indicator and its Stop. The page's own run follows it
# only for PAGE_FOR (the first words), so that run ends soon too. Within a run the text is drawn
# again at most every DRAW_EVERY seconds (ten times a second reads as smooth; each draw sends the
# whole text so far, so twenty a second cost twice the CPU for twenty people at once).
LIVE_EVERY = 0.4
LIVE_FOR = 0.3
PAGE_FOR = 0.2
DRAW_EVERY = 0.1
COST_UNKNOWN = "cost unknown"  # a call not priced, as the line under a reply says it
KEYS_PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "keys.py")


def follow(rt: Runtime, user_id: int, conversation_id: int, reply_id: int, label: str, since: datetime,
           seconds: float = LIVE_FOR, every: float = DRAW_EVERY) -> bool:
    """Draw a reply being written and follow it for up to ``seconds`` (one run of the page's live
    fragment); whether it is done. A worker in this process is followed as its text arrives,
    redrawn at most every ``every`` seconds; a reply another process writes is read from the
    database. "Waiting for OpenAI… 4 s" before the first text; images neutralised on the whole
    text so far (an image's ``![`` can be split across deltas)."""
    placeholder = st.empty()

    def draw(text: str) -> None:
        if text:
            placeholder.markdown(no_images(text))
        else:
            placeholder.caption(waiting(label, since))

    running = replies.live(reply_id)
    if running is None:
        replies.mark_interrupted(rt, conversation_id)
        now = replies.reply(rt, user_id, reply_id)
        draw(now.content)
        return not now.running
    end, seen, shown, shown_at = time.monotonic() + seconds, -1, None, 0.0

    def more_words() -> None:  # while the page's run waits for its turn again (byok_ui/turns.py)
        nonlocal seen, shown
        text, _, seen = running.after(seen, 0)
        if text != shown:
            draw(text)
            shown = text

    with turns.waiting(more_words, every):  # the words come from the worker: other page runs go on meanwhile
        while True:
            text, done, seen = running.after(seen, max(0.0, end - time.monotonic()))
            first_words = bool(text) and not shown  # drawn at once, not ``every`` after "Waiting for…"
            if done or first_words or time.monotonic() >= end or time.monotonic() - shown_at >= every:
                draw(text)
                shown, shown_at = text, time.monotonic()
            if done or time.monotonic() >= end:
                return done


COPY_BUTTON = '<button type="button" class="byok-copy" title="Copy this message">Copy</button>'
COPY_SCRIPT = """<script>(() => {
  if (window.byokCopies) return; window.byokCopies = true;
  const style = document.createElement("style");
  style.textContent = ".byok-copy{font:inherit;font-size:.8rem;padding:.1rem .6rem;border-radius:.4rem;"
    + "border:1px solid rgba(128,128,128,.4);background:transparent;color:inherit;opacity:.7;cursor:pointer}"
    + ".byok-copy:hover{opacity:1}";
  document.head.appendChild(style);
  const put = async (text) => {
    try { await navigator.clipboard.writeText(text); return; } catch (e) { /* not a secure context */ }
    const area = Object.assign(document.createElement("textarea"), {value: text});
    document.body.appendChild(area); area.select(); document.execCommand("copy"); area.remove();
  };
  document.addEventListener("click", async (event) => {
    const button = event.target.closest(".byok-copy");
    if (!button) return;
    const text = button.closest("[data-testid=stChatMessage]")
      ?.querySelector("[data-testid=stMarkdownContainer]")?.innerText ?? "";
    await put(text);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
})();</script>"""


def copy_button() -> None:
    """A Copy button under a message (the page's ``copy_script`` makes it copy the message's text);
    plain HTML, so a click runs nothing on the server."""
    st.html(COPY_BUTTON, width="content")


def versions(message: StoredMessage, switch: Callable[[int, int], None], disabled: bool = False) -> None:
    """``< 2/3 >`` beside a message that has versions (an edited prompt, a regenerated reply):
    ``switch(message_id, step)`` shows the one before (-1) or after (+1)."""
    if message.versions < 2:
        return
    st.button("", icon=":material/chevron_left:", key=f"chat_prev_{message.id}", type="tertiary",
              help="The version before", disabled=disabled or message.version <= 1, on_click=switch,
              args=(message.id, -1))
    st.caption(f"{message.version}/{message.versions}")
    st.button("", icon=":material/chevron_right:", key=f"chat_next_{message.id}", type="tertiary",
              help="The version after", disabled=disabled or message.version >= message.versions, on_click=switch,
              args=(message.id, 1))


def copy_script() -> None:
    st.html(COPY_SCRIPT, unsafe_allow_javascript=True, width="content")


def waiting(label: str, since: datetime) -> str:
    return f"Waiting for {label}… {max(0, int((utcnow() - since).total_seconds()))} s"


def caption(record: CallRecord) -> str:
    """The line under a reply: who paid (or whose key was tried), model, tokens, cost, time."""
    verb = "Paid by" if record.ok or record.cost_usd or record.charged_usd else "Tried with"  # it may cost nothing
    parts = [f"{verb} {words.PAID_BY[record.key_source]}"]
    if record.model:
        name = md_escape(record.connection) if record.connection else words.provider_name(record.provider)
        parts.append(f"{name} {md_escape(record.model)}")
    if record.input_tokens is None and record.output_tokens is None:
        parts.append("tokens unknown")
    else:
        parts.append(f"{words.count(record.input_tokens)} tokens in, {words.count(record.output_tokens)} out")
    parts.append(money(record.cost_usd, unknown=COST_UNKNOWN) + (  # the provider's own bill, with genai-prices' figure
        f" as billed (price list: {money(record.priced_usd)})" if record.priced_usd is not None else ""))
    if record.charged_usd and record.charged_usd != record.cost_usd:  # a bound: the provider's figure never came
        parts.append(f"{money(record.charged_usd)} counted against the budget (a bound: the reply ended early)")
    parts.append(words.duration(record.latency_ms))
    return " · ".join(parts)


def keys_link(label: str = "Open the Keys page") -> None:
    try:
        st.page_link(KEYS_PAGE, label=label, icon=":material/key:")
    except StreamlitPageNotFoundError:  # not in this user's navigation (never expected)
        st.caption("Open the Keys page from the menu.")


def show_status(status: CallStatus, message: str | None) -> None:
    """Plain-words error under a reply, with what to do next; the message (often the provider's
    own words) shown as text."""
    if status is CallStatus.OK:
        return
    message = md_escape(message or "The provider call failed.")
    if status is CallStatus.RATE_LIMITED:
        st.warning(message, icon=":material/hourglass_top:", title="Rate limited")  # says when to retry
    elif status is CallStatus.KEY_REJECTED:
        st.error(message, icon=":material/key_off:", title="The provider rejected the key")
        keys_link("Check or replace the key on the Keys page")
    elif status is CallStatus.CUT_OFF:
        st.warning(message, icon=":material/content_cut:", title="The reply was cut off")  # says the text is kept
    else:
        st.error(message, icon=":material/error:")


def show_sources(sources: list[SearchResult]) -> None:
    if not sources:
        return
    with st.expander(f"Sources ({len(sources)})", icon=":material/link:"):
        st.markdown("\n".join(f"{n}. {source_line(s)}" for n, s in enumerate(sources, 1)))


def search_caption(record: CallRecord) -> str:
    """The line on a chat's web search: which provider, who paid (or whose key was tried), cost."""
    verb = "paid by" if record.ok else "tried with"
    return (f"Web search: {words.provider_name(record.provider)}, {verb} {words.PAID_BY[record.key_source]} · "
            f"{money(record.cost_usd, unknown=COST_UNKNOWN)}")


def total_caption(*records: CallRecord) -> str:
    known = [r.cost_usd for r in records if r.cost_usd is not None]
    unknown = len(records) - len(known)
    return f"Total {money(sum(known))}" + (f" + {unknown} of unknown cost" if unknown else "")


def show_reply_footer(message: StoredMessage) -> None:
    """Sources, who paid for the search and the model and what they cost, and any warning or failure."""
    show_sources(message.sources)
    made = [r for r in (message.search_record, message.record) if r is not None]
    if message.search_record is not None:
        st.caption(search_caption(message.search_record))
    if message.record is not None:
        st.caption(caption(message.record))
    if len(made) == 2:
        st.caption(total_caption(*made))
    if message.notice:  # the model refused, stopped at its output cap or in a safety stop, or only called a tool
        st.warning(md_escape(message.notice), icon=":material/block:" if message.refusal else ":material/info:",
                   title="The model refused" if message.refusal else None)
    if message.search_record is not None and not message.search_record.ok and message.status is ReplyStatus.DONE:
        st.warning(f"The web search failed, so this answer has no sources: "
                   f"{md_escape(message.search_record.error or 'the search provider did not answer.')}",
                   icon=":material/travel_explore:")
    if message.status is ReplyStatus.STOPPED:
        st.caption("Stopped: the text so far is kept." if message.content else stopped_early(message.record))
    elif message.status is ReplyStatus.INTERRUPTED:
        st.warning("The server stopped while writing this reply; the text so far is kept. Retry to ask again.",
                   icon=":material/sync_problem:")
    elif message.status is ReplyStatus.FAILED:
        failed = next((r for r in reversed(made) if not r.ok), None)
        show_status(failed.status if failed else CallStatus.ERROR, message.error)
    if message.budget_warning:
        st.info(md_escape(message.budget_warning), icon=":material/savings:")


def stopped_early(record: CallRecord | None) -> str:
    """A reply stopped before its first word: what, if anything, was counted for it."""
    if record is not None and record.charged_usd:
        return (f"Stopped before the model answered; {money(record.charged_usd)} was counted against the "
                "budget (the provider sent no usage).")
    if record is not None and record.cost_usd:
        return f"Stopped before the model answered; it cost {money(record.cost_usd)}."
    return "Stopped before the model answered; not charged."


def show_start_error(exc: ByokError) -> None:
    """An error raised before any text arrived (no key, unreadable key, bad input, provider error)."""
    if isinstance(exc, ProviderError):
        show_status(exc.status, str(exc))
        return
    st.error(md_escape(str(exc)), icon=":material/error:")
    if isinstance(exc, (NoKeyError, KeyUnreadableError)):
        keys_link()

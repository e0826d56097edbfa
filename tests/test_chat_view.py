"""byok_ui.chat_view: the link to the Keys page (and its fallback where that page cannot be linked),
and how a live reply is drawn."""

from __future__ import annotations

import threading

from streamlit.testing.v1 import AppTest

from byok_core.clock import utcnow


def _keys_link_script() -> None:
    from byok_ui.chat_view import keys_link

    keys_link("Add a key on the Keys page")


def test_without_the_keys_page_in_the_navigation_the_link_is_a_sentence():
    at = AppTest.from_function(_keys_link_script).run()
    assert not at.exception
    assert [c.value for c in at.caption] == ["Open the Keys page from the menu."]


def _unlabelled_external_link() -> None:
    import byok_ui.chat_view as chat_view

    page, chat_view.KEYS_PAGE = chat_view.KEYS_PAGE, "https://keys.example/"  # external: needs a label
    try:
        chat_view.keys_link("")
    finally:
        chat_view.KEYS_PAGE = page


def test_any_other_failure_of_the_link_shows_as_the_bug_it_is():
    """Only a page missing from the navigation falls back to the sentence; a misused link is not hidden."""
    at = AppTest.from_function(_unlabelled_external_link).run()
    assert at.exception and not at.caption  # Streamlit's error box (its details go to the log)


class Drawn:
    """Stands in for the live reply's placeholder: what was drawn, in order; ``waiting`` is set when
    the waiting line is drawn, ``first_words`` when text is."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.waiting, self.first_words = threading.Event(), threading.Event()

    def markdown(self, text: str) -> None:
        self.calls.append(("markdown", text))
        self.first_words.set()

    def caption(self, text: str) -> None:
        self.calls.append(("caption", text))
        self.waiting.set()


def test_a_live_reply_s_first_words_are_drawn_at_once(monkeypatch):
    """Text is drawn again at most every ``every`` seconds, but the first words never wait for that
    after the "Waiting for…" line: here the worker sends the rest only once they were drawn (with
    ``every`` at 60 s, drawing them late would draw "Hello world" first)."""
    from byok_core import replies
    from byok_ui import chat_view

    drawn = Drawn()
    monkeypatch.setattr(chat_view.st, "empty", lambda: drawn)
    item = replies.Live(None, 424242, None)  # type: ignore[arg-type]  # no call behind it: the test writes it
    replies._register(item)

    def worker() -> None:
        drawn.waiting.wait(10)  # "Waiting for OpenAI… 0 s" first
        item.add("Hello")
        drawn.first_words.wait(10)
        item.add(" world")
        item.finish()

    writer = threading.Thread(target=worker, daemon=True)
    try:
        writer.start()
        assert chat_view.follow(None, 1, 1, 424242, "OpenAI", utcnow(), seconds=30, every=60)  # type: ignore[arg-type]
    finally:
        replies._unregister(item)
        writer.join(10)
    words = [text for kind, text in drawn.calls if kind == "markdown"]
    assert words[0] == "Hello" and words[-1] == "Hello world"

"""byok_ui.chat_view: the link to the Keys page, and its fallback where that page cannot be linked."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


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

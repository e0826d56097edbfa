"""AppTest: the Search page marks the providers nobody has a key for before any search, and says whom
to ask (the search itself: tests/test_app_chat.py)."""

from __future__ import annotations

from apptest import make_user, page_as, text_of

from byok_core import keys
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider


def test_providers_without_any_key_are_marked_before_searching(app, rt):
    make_user(rt, "alice", admin=True)
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.BRAVE, "brave-ann-key-1234567")
    keys.store(rt, Actor.operator(), Owner.team(), Provider.TAVILY, "tvly-team-key-1234567")
    at = page_as(rt, ann, "search")
    pills = at.button_group(key="search_providers")
    assert sorted(pills.options) == ["Brave Search", "Firecrawl (no key)", "Serper (no key)", "Tavily"]
    assert [text_of(c.value) for c in at.caption if "No key" in c.value] == [
        ":material/key_off: No key for Firecrawl and Serper yet: add your own on the Keys page, or ask your admin "
        "(alice) to add a team key."]
    assert not at.dataframe  # nothing searched yet


def test_every_provider_with_a_key_is_not_marked(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    for provider in (Provider.BRAVE, Provider.TAVILY, Provider.FIRECRAWL, Provider.SERPER):
        keys.store(rt, Actor.operator(), Owner.team(), provider, f"{provider.value}-team-key-1234567")
    at = page_as(rt, ann, "search")
    assert not [o for o in at.button_group(key="search_providers").options if "no key" in str(o)]
    assert not [c.value for c in at.caption if "No key" in c.value]

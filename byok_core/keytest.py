"""Key tests: the provider's cheapest authenticated call with one owner's stored key."""

from __future__ import annotations

import httpx

from byok_core import calls, keys
from byok_core.adapters import CHAT_ADAPTERS, SEARCH_ADAPTERS
from byok_core.errors import NoKeyError, NotFoundError, ProviderError
from byok_core.identity import Actor, KeySource, Owner
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.runtime import Runtime


def test_key(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, client: httpx.Client | None = None) -> str:
    """Check the owner's active key for ``provider``; the outcome in plain words.

    Stamps the key's last-used time and test status ("ok" or the error's status)."""
    actor.check_may_manage(owner)
    try:
        key = keys.resolve(rt, None if owner.is_team else owner.id, provider)
    except NoKeyError:
        key = None
    if key is None or key.source is not (KeySource.TEAM if owner.is_team else KeySource.USER):
        raise NotFoundError(f"There is no saved {provider.label} key for {owner} to test.")
    calls.checked(rt, key)
    adapter = CHAT_ADAPTERS.get(provider) or SEARCH_ADAPTERS[provider]
    try:
        with calls.metered(rt, key, CallRecord(provider, key.source), client=client, key_test=True) as c:
            detail = adapter.test_key(c, key.credential)
    except ProviderError as exc:
        return str(exc)
    return f"OK: the key works ({detail})."


test_key.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, even when imported into a test module

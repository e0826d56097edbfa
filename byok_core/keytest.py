"""Key tests: the provider's cheapest authenticated call with one owner's stored key."""

from __future__ import annotations

import httpx

from byok_core import keys
from byok_core.adapters import ADAPTERS
from byok_core.adapters.base import check_target, client_for
from byok_core.adapters.errors import ProviderError
from byok_core.errors import NoKeyError, NotFoundError
from byok_core.models import KeySource, OwnerKind
from byok_core.providers import Provider
from byok_core.runtime import Runtime


def test_key(rt: Runtime, actor: keys.Actor, owner: keys.Owner, provider: Provider,
             client: httpx.Client | None = None) -> str:
    """Check the owner's active key for ``provider``; the outcome in plain words.

    Stamps the key's last-used time and test status ("ok" or the error kind)."""
    actor.check_may_manage(owner)
    is_user = owner.kind is OwnerKind.USER
    try:
        key = keys.resolve(rt, owner.id if is_user else None, provider)
    except NoKeyError:
        key = None
    if key is None or key.source is not (KeySource.USER if is_user else KeySource.TEAM):
        raise NotFoundError(f"There is no saved {provider.label} key for {owner} to test.")
    check_target(key, rt.settings.allow_private_endpoints)
    try:
        with client_for(rt.environ, client) as c:
            detail = ADAPTERS[provider].test_key(c, key)
    except ProviderError as exc:
        keys.mark_used(rt, key, test_status=exc.kind)
        return str(exc)
    keys.mark_used(rt, key, test_status="ok")
    return f"OK: the key works ({detail})."


test_key.__test__ = False  # not a pytest test, even when imported into a test module

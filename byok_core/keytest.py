"""Key tests: the provider's cheapest authenticated call, with an owner's stored key (``check``)
or with a key about to be saved (``save``).

``save`` stores a key only once the provider has accepted it. A key the provider rejects is not
saved, so the key in use stays in use; when the test cannot be made (the provider unreachable,
too slow, rate limiting, or an answer the app cannot use) the outcome offers to save it without
testing (``save(..., test=False)``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import httpx

from byok_core import calls, connections, keys
from byok_core.adapters import CHAT_ADAPTERS, SEARCH_ADAPTERS
from byok_core.errors import CallStatus, NoKeyError, NotFoundError, ProviderError
from byok_core.identity import Actor, KeySource, Owner
from byok_core.keys import KeyInfo
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.runtime import Runtime
from byok_core.secret import Secret, mask


@dataclass(frozen=True)
class Outcome:
    """What a key test (or a save that tests first) came to, for people and for code."""

    ok: bool
    message: str  # one plain sentence; a key appears only as its mask
    status: CallStatus | None = None  # the test's outcome; None: no test was made (saved without testing)
    saved: KeyInfo | None = None  # the key that was saved, if one was
    can_save_untested: bool = False  # the test could not be made: offer to save the key without testing
    key_id: str | None = None  # the stored key that was tested (``check``)
    quota: bool = False  # the provider said the key has no quota or credit left


def _source(owner: Owner) -> KeySource:
    return KeySource.TEAM if owner.is_team else KeySource.USER


def _cheapest_call(rt: Runtime, key: keys.ResolvedKey, client: httpx.Client | None) -> str:
    """The provider's cheapest authenticated call with ``key``: a few words on what it showed, or
    the ProviderError (ValidationError when a typed-in endpoint is not allowed, before any call)."""
    calls.checked(rt, key)
    adapter = CHAT_ADAPTERS.get(key.provider) or SEARCH_ADAPTERS[key.provider]
    with calls.metered(rt, key, CallRecord(key.provider, key.source), client=client, key_test=True) as c:
        return adapter.test_key(c, key.credential)


def _stored(rt: Runtime, actor: Actor, owner: Owner, provider: Provider,
            connection: str | None) -> keys.ResolvedKey:
    actor.check_may_manage(owner)
    try:
        key = keys.resolve(rt, None if owner.is_team else owner.id, provider, connection)
    except NoKeyError:
        key = None
    if key is None or key.source is not _source(owner):
        raise NotFoundError(f"There is no saved {provider.label} key for {owner} to test.")
    return key


def _named(message: str, provider: Provider, name: str) -> str:
    """A provider's message about an OpenAI-compatible endpoint, naming it as people know it."""
    return message.replace(provider.label, name) if name != provider.label else message


def check(rt: Runtime, actor: Actor, owner: Owner, provider: Provider,
          client: httpx.Client | None = None, *, connection: str | None = None) -> Outcome:
    """Test the owner's active key for ``provider`` (for an OpenAI-compatible one: of ``connection``);
    stamps its test status and time (not a use).

    NotFoundError when the owner has no saved key for it (another owner's key never counts)."""
    key = _stored(rt, actor, owner, provider, connection)
    info = next((i for i in keys.list_keys(rt, actor, owner) if i.id == key.row_id), None)
    name = key.connection.name if key.connection is not None else info.name if info is not None else provider.label
    try:
        detail = _cheapest_call(rt, key, client)
    except ProviderError as exc:
        return Outcome(False, _named(str(exc), provider, name), exc.status, key_id=key.row_id,
                       quota=getattr(exc, "quota", False))
    return Outcome(True, f"The {name} key {key.credential.mask} works: {detail}.", CallStatus.OK, key_id=key.row_id)


def _not_saved(exc: ProviderError, provider: Provider, name: str, shown: str, in_use: KeyInfo | None) -> Outcome:
    """Why a key that failed its test was not saved, and what to do."""
    keep = f"; your key {in_use.mask} stays in use" if in_use is not None else ""
    if exc.status is CallStatus.KEY_REJECTED:
        return Outcome(False, f"Not saved: {name} rejected the key {shown}, so check that you copied all of it{keep}.",
                       exc.status)
    why, todo = {
        CallStatus.PROVIDER_DOWN: ("cannot be reached or is having trouble", "try again in a minute"),
        CallStatus.TIMEOUT: ("did not answer in time", "try again in a minute"),
        CallStatus.RATE_LIMITED: ("is limiting requests (or the key has no credit left)", "try again later"),
    }.get(exc.status, ("sent an answer the app could not use",
                       "check the base URL" if provider.user_supplies_url else "try again later"))
    return Outcome(False, f"Not saved yet: the key {shown} could not be tested because {name} {why}, so {todo} or "
                          f"save it without testing{keep}.", exc.status, can_save_untested=True)


def save(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, raw_key: str, label: str = "",
         base_url: str | None = None, *, test: bool = True, client: httpx.Client | None = None,
         expires_on: date | None = None, connection: str | None = None) -> Outcome:
    """Save a key once the provider has accepted it (``test=False``: without testing it).

    A key that fails its test is not saved and the key in use stays in use. Input that cannot be
    saved at all raises ValidationError (PermissionDenied for someone else's keys), as ``keys.store``.
    The outcome says what was removed from the key as pasted (quotes, "Bearer "; ``keys.unwrap``)."""
    outcome = _save(rt, actor, owner, provider, raw_key, label, base_url, test=test, client=client,
                    expires_on=expires_on, connection=connection)
    note = keys.paste_note(raw_key)
    return replace(outcome, message=f"{outcome.message} {note}") if note else outcome


def _save(rt: Runtime, actor: Actor, owner: Owner, provider: Provider, raw_key: str, label: str,
          base_url: str | None, *, test: bool, client: httpx.Client | None, expires_on: date | None,
          connection: str | None) -> Outcome:
    actor.check_may_manage(owner)
    conn = keys.connection_for(rt, actor, owner, provider, base_url, connection, label) if connection else None
    value, label, base_url = keys.check_new(rt, provider, raw_key, label, base_url, conn)
    keys.check_expiry(expires_on)
    in_use = next((i for i in keys.list_keys(rt, actor, owner) if i.active and i.provider is provider
                   and (conn is None or i.connection_id == conn.id)), None)
    if not test:
        info = keys.store(rt, actor, owner, provider, value, label, base_url, expires_on=expires_on,
                          connection=connection)
        name = conn.name if conn else info.name
        return Outcome(True, f"Saved the {name} key {info.mask} without testing it; press Check now once "
                             f"{name} can be reached.", saved=info)
    endpoint = base_url if provider.user_supplies_url else rt.settings.base_urls[provider]
    key = keys.ResolvedKey(provider, connections.credential(Secret(value), endpoint or "", conn), _source(owner),
                           connection=conn)
    try:
        detail = _cheapest_call(rt, key, client)
    except ProviderError as exc:
        name = conn.name if conn else keys.display_name(provider, label or (in_use.label if in_use else ""), base_url)
        return _not_saved(exc, provider, name, mask(value), in_use)
    info = keys.store(rt, actor, owner, provider, value, label, base_url, tested=CallStatus.OK, expires_on=expires_on,
                      connection=connection)
    name = conn.name if conn else info.name
    return Outcome(True, f"Saved the {name} key {info.mask} and tested it: {detail}.", CallStatus.OK, info)

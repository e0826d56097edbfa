"""One provider call, metered: ``metered`` is the one way to run a call, and fills its ``CallRecord``.

    key = calls.prepare(rt, user_id, provider)          # the key that pays, its endpoint checked
    record = CallRecord(provider, key.source, model, user_id)
    with calls.metered(rt, key, record, bound=pricing.search_bound(rt, provider)) as client:
        ...                                              # adapter calls with key.credential

The usage row is written before the call and completed after it; whatever happens inside, on exit
the record has its latency, outcome and cost, and one transaction completes the row and stamps the
key's last use. On a shared key the call is first admitted against the rate limits and budgets
(reserving ``bound``, its worst-case cost) and settled to what it cost when the row is completed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
from sqlalchemy.exc import SQLAlchemyError

from byok_core import budgets, keys, metrics, netguard, pricing, usage_log
from byok_core.adapters.base import Reply, new_client, shared_client
from byok_core.budgets import caps
from byok_core.errors import ByokError, ProviderError, ReplyStopped, ValidationError
from byok_core.identity import Owner
from byok_core.pricing import CostBound
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.runtime import Runtime

log = logging.getLogger(__name__)


def prepare(rt: Runtime, user_id: int | None, provider: Provider, connection: str | None = None) -> keys.ResolvedKey:
    """The key that will pay for ``user_id``'s call to ``provider`` (an OpenAI-compatible one: on
    ``connection``), its endpoint checked. Raises NoKeyError, KeyUnreadableError or ValidationError."""
    return checked(rt, keys.resolve(rt, user_id, provider, connection))


def checked(rt: Runtime, key: keys.ResolvedKey) -> keys.ResolvedKey:
    """``key`` after checking a URL its owner typed in, before any call is prepared: its form and any
    address written in it (the host name is resolved and checked once, right before each call, by
    ``http``'s pinned transport). Operator-set base URLs (overrides and defaults) are trusted as they are."""
    if key.provider.user_supplies_url:
        if not key.credential.base_url:
            raise ValidationError(f"The {key.provider.label} key has no base URL; save it again with its endpoint.")
        netguard.check_endpoint(key.credential.base_url, rt.settings.allow_private_endpoints, resolve=False)
    return key


def client_for(rt: Runtime) -> httpx.Client:
    """The process-wide HTTP client for the configured timeouts (operator-set endpoints)."""
    return shared_client(rt.settings.connect_timeout, rt.settings.read_timeout)


@contextmanager
def http(rt: Runtime, key: keys.ResolvedKey, client: httpx.Client | None = None) -> Iterator[httpx.Client]:
    """The client for a call with ``key``: ``client`` (the tests' seam), the shared client for
    operator-set endpoints, or, for a URL a user typed in, a client pinned to the addresses checked
    just now (resolved once, so a DNS answer that changes after the check cannot redirect the key).
    Raises ValidationError, before anything is sent, when the endpoint is not allowed."""
    if client is not None:
        yield client
    elif not key.provider.user_supplies_url:
        yield client_for(rt)
    else:
        transport = netguard.pinned_transport(key.credential.base_url, rt.settings.allow_private_endpoints)
        with new_client(rt.settings.connect_timeout, rt.settings.read_timeout, transport) as pinned:
            yield pinned


def _stopped() -> ReplyStopped:
    return ReplyStopped("The reply was stopped before it finished; the text so far is kept.")


@contextmanager
def metered(rt: Runtime, key: keys.ResolvedKey, record: CallRecord, *, bound: CostBound | None = None,
            client: httpx.Client | None = None, key_test: bool = False,
            reply: Reply | None = None) -> Iterator[httpx.Client]:
    """Run one call with ``key``: yields the HTTP client (see ``http``).

    The usage row is written before the call (as not finished; a call that cannot be logged is not
    made) and completed after it, so every call that reached a provider stays logged even if the
    last write fails. On a shared key the call is first admitted, in the same transaction, against
    the rate limits and budgets for ``bound`` (None: a cost that cannot be bounded), or BudgetExceeded
    or SharedKeyLimit is raised before anything is sent. A ProviderError is recorded and raised
    again; a generator closed early (a reply stopped) is recorded as stopped; any other exception
    becomes a ProviderError, with its details kept out of messages and logs. ``reply``: a streamed
    reply, whose usage and text received are recorded at the end. A key test writes no usage row:
    it stamps the key's test status and time instead of its last use."""
    record.key_row_id = key.row_id  # which stored key paid: the bill check reads it
    with ExitStack() as stack:
        try:
            session = stack.enter_context(http(rt, key, client))
            row_id, admission = (None, None) if key_test else _start(rt, key, record, bound)
        except ByokError as exc:  # refused before anything was sent: the endpoint, a limit or a budget
            record.fail(exc)
            raise
        started = time.perf_counter()
        if key.connection is not None:
            record.connection = key.connection.name
        record.pricing_id = key.pricing_id
        try:
            yield session
        except ProviderError as exc:  # a reply the person stopped ends as a broken connection: say stopped
            record.fail(_stopped() if reply is not None and reply.stopped else exc)
            raise
        except (GeneratorExit, KeyboardInterrupt):  # a reply stopped: by the person, or Ctrl-C at the CLI
            record.fail(_stopped())
            raise
        except Exception as exc:  # a bug or an odd answer: never show or log its text, which could hold a key
            log.error("call to %s failed unexpectedly: %s", key.provider.value, type(exc).__name__)
            error = ProviderError(f"The answer from {key.provider.label} could not be read "
                                  f"({type(exc).__name__}); try again.")
            record.fail(error)
            raise error from None
        finally:
            record.latency_ms = int((time.perf_counter() - started) * 1000)
            if reply is not None:
                record.bill(reply.usage)
                record.output_bytes = len("".join(reply.text).encode())
                if key.credential.azure:  # a deployment's name is its owner's word: price the model behind it
                    record.priced_model = reply.served_model
                if key.credential.usage_accounting:  # the provider's own billed cost: the call's cost
                    record.reported_usd = reply.reported_cost
                if reply.notice is not None:  # a complete reply that ended in a way the person must be told
                    record.notice, record.notice_kind = reply.notice, reply.stop.value if reply.stop else ""
            if not key_test:
                record.cost_usd = pricing.call_cost(rt, record, bound)
            _finish(rt, key, record, row_id, admission)
            metrics.observe(record, key_test=key_test)


Admission = budgets.Admission | caps.CapAdmission


def _start(rt: Runtime, key: keys.ResolvedKey, record: CallRecord,
           bound: CostBound | None) -> tuple[int, Admission | None]:
    """Log the call as not finished; on a shared key, or an own key with a cap, admitted first in
    the same transaction."""
    if not key.source.shared:
        if key.cap is None:
            with rt.engine.begin() as conn:
                return usage_log.start(conn, record), None
        with caps.admitted(rt, record, key.cap, bound or CostBound(None)) as (conn, held):
            return usage_log.start(conn, record), held
    with budgets.admitted(rt, record, bound or CostBound(None)) as (conn, admission):
        # the worst case a budget holds (already priced to reserve it): what the call counts if its process dies
        reserved = admission.bound.usd if admission.reservation_id is not None else None
        return usage_log.start(conn, record, reserved), admission


def _finish(rt: Runtime, key: keys.ResolvedKey, record: CallRecord, row_id: int | None,
            admission: Admission | None) -> None:
    """Complete the usage row (or, for a key test, stamp its status), settle its budgets and stamp
    the key's last use, in one transaction; if that fails the call stays logged as not finished
    (its reservation expires), and the reply is not lost."""
    crossed: list[tuple[Owner, int]] = []
    charge = record.charged_usd = admission.bound.charge(record) if admission is not None else None
    try:
        with rt.engine.begin() as conn:
            if row_id is not None:
                usage_log.complete(conn, row_id, record, charge)
            if isinstance(admission, caps.CapAdmission) and charge is not None:
                record.cap_after = caps.settle(conn, admission, charge)
            elif isinstance(admission, budgets.Admission) and charge is not None:
                record.budgets_after, crossed = budgets.settle(conn, admission, record, charge)
            keys.stamp_used(conn, key, test_status=record.status if row_id is None else None)
    except SQLAlchemyError as exc:
        log.error("could not record the outcome of usage row %s (%s); it stays logged as not finished",
                  row_id, type(exc).__name__)
    if isinstance(admission, budgets.Admission):
        budgets.announce(rt, crossed, admission.month)
    log.info("%s %s %s via %s key: %s in %d ms", "key test" if row_id is None else key.provider.kind.value,
             key.provider.value, record.model, key.source.value, record.status.value, record.latency_ms)

"""Budget alerts to a webhook the admins set: Slack-compatible JSON (``{"text": ...}``), which
Slack, Mattermost, Microsoft Teams and ntfy accept.

The URL is a secret (whoever has it can post to the channel): it is stored encrypted under the
master key, shown only by its host, and goes through the same outbound guard as a key's base URL
(``netguard``: no metadata or link-local address ever, no private one unless the operator allows
private endpoints; the host is resolved once and pinned). Sending happens in the background, and
its failures are logged, never raised into the call that crossed the threshold."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlmodel import Session, col

from byok_core import audit, netguard
from byok_core.adapters.base import new_client
from byok_core.audit import AuditAction
from byok_core.budgets.lines import apart
from byok_core.errors import DecryptionError, ProviderDown, ValidationError
from byok_core.identity import Actor
from byok_core.models import AppSetting
from byok_core.runtime import Runtime

log = logging.getLogger(__name__)

SETTING = "alerts.webhook_url"
_CONTEXT = "app_setting:" + SETTING
TIMEOUT_S = 10.0
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # in English, whatever the server's locale


def _checked(rt: Runtime, url: str) -> str:
    """The URL, if the outbound guard allows it; its query (Teams and some others sign with one) is kept."""
    url = (url or "").strip()
    base, _, query = url.partition("?")
    base = netguard.check_endpoint(base, rt.settings.allow_private_endpoints, resolve=False, subject=netguard.WEBHOOK)
    return f"{base}?{query}" if query else base


def webhook(rt: Runtime) -> str | None:
    """The webhook URL, or None when none is set (or it cannot be decrypted: logged)."""
    with Session(rt.engine) as session:
        row = session.get(AppSetting, SETTING)
    if row is None:
        return None
    try:
        return rt.keyring.decrypt(row.value, _CONTEXT)
    except DecryptionError as exc:
        log.error("the alert webhook URL cannot be decrypted (%s); save it again on the Budgets page", exc)
        return None


def reseal(rt: Runtime, dry_run: bool = False) -> str:
    """For `byok rotate-master-key`: re-encrypt the webhook URL under the current master key.
    What was found: "none", "current", "rotated" (or, with ``dry_run``, would be) or "unreadable"
    (left as it is: no configured master key opens it)."""
    with Session(rt.engine) as session, session.begin():
        row = session.get(AppSetting, SETTING)
        if row is None:
            return "none"
        if not rt.keyring.needs_rotation(row.value):
            return "current"
        try:
            url = rt.keyring.decrypt(row.value, _CONTEXT)
        except DecryptionError:
            return "unreadable"
        if not dry_run:
            row.value = rt.keyring.encrypt(url, _CONTEXT)
            audit.record(session, "operator", AuditAction.ALERTS_ROTATE,
                         detail=f"to master key {rt.keyring.primary.key_id}")
    return "rotated"


def describe(rt: Runtime) -> str | None:
    """The webhook as it may be shown: its scheme and host only."""
    url = webhook(rt)
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…"


def set_webhook(rt: Runtime, actor: Actor, url: str | None) -> None:
    """Save (None or empty: remove) the alert webhook. Admins only; the URL must pass the guard."""
    actor.check_admin("change the alert webhook")
    with Session(rt.engine) as session, session.begin():
        if not url or not url.strip():
            session.execute(sa.delete(AppSetting).where(col(AppSetting.name) == SETTING))
            audit.record(session, actor.name, AuditAction.ALERTS_SET)
            return
        checked = _checked(rt, url)
        sealed = rt.keyring.encrypt(checked, _CONTEXT)
        if len(sealed) > 500:
            raise ValidationError("That webhook URL is too long; use one under 300 characters.")
        session.merge(AppSetting(name=SETTING, value=sealed))
        audit.record(session, actor.name, AuditAction.ALERTS_SET, detail=urlsplit(checked).hostname or "")


def send(rt: Runtime, text: str) -> bool:
    """Post ``text`` to the webhook now; False when none is set. Raises ValidationError when the
    guard refuses the URL, ProviderDown when the webhook cannot be reached or answers an error."""
    url = webhook(rt)
    if url is None:
        return False
    url = _checked(rt, url)  # checked again: the operator may have tightened the guard since
    transport = netguard.pinned_transport(url.partition("?")[0], rt.settings.allow_private_endpoints,
                                          subject=netguard.WEBHOOK)
    try:
        with new_client(TIMEOUT_S, TIMEOUT_S, transport) as client:
            response = client.post(url, json={"text": text})
    except httpx.HTTPError as exc:
        raise ProviderDown(f"The alert webhook could not be reached ({type(exc).__name__}).") from None
    if response.status_code >= 400:
        raise ProviderDown(f"The alert webhook answered HTTP {response.status_code}.")
    return True


def month_name(month: str) -> str:
    """A month as the running figures key it ("2026-12") as people say it: "December 2026"."""
    year, number = month.split("-")
    return f"{_MONTHS[int(number) - 1]} {year}"


def budget_reached(name: str | None, level: int, spent_usd: float, budget_usd: float, month: str) -> str:
    """The alert that ``name``'s budget (None: the whole team's) reached ``level`` percent in ``month``
    ("2026-12"); 100: calls on shared keys are refused, because it is used up or because the next
    call could cost more than is left."""
    who = "The whole team's" if name is None else f"{name}'s"
    if level < 100:
        verb, spent = f"has reached {level}%", f"${spent_usd:,.2f}"
    elif spent_usd >= budget_usd:
        verb, spent = "is used up: shared-key calls are refused", f"${spent_usd:,.2f}"
    else:
        verb = "is nearly used up: shared-key calls are refused when they could cost more than is left"
        spent = apart(spent_usd, budget_usd)[0]
    return (f"BYOK Dashboard: {who} monthly budget for shared keys {verb} "
            f"({spent} of ${budget_usd:,.2f} in {month_name(month)}).")


def notify(rt: Runtime, text: str) -> threading.Thread:
    """Send ``text`` in the background; failures are logged (without the URL), never raised."""

    def run() -> None:
        try:
            send(rt, text)
        except (ValidationError, ProviderDown) as exc:
            log.warning("budget alert not delivered: %s", exc)

    thread = threading.Thread(target=run, name="byok-alert", daemon=True)
    thread.start()
    return thread

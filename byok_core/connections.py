"""Named OpenAI-compatible connections: any number per person and for the team, each a name and a
base URL with one active key (``keys`` stores it with ``connection=``), from a preset or custom.

A connection belongs to one owner, and its keys to the same owner: a team key only ever goes to a
team connection's URL, which an admin typed; a person's connection only ever receives that person's
own key. The base URL is bound into each key's stored value (``vault.context``), and a key is used
only while it still matches its connection's URL; DNS is pinned per call (``calls.http``).

Presets fill the base URL, the key hint, where to get a key and genai-prices' provider id; a custom
connection is priced by the provider whose API address its base URL matches (``pricing_id``)."""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import audit, azure, netguard
from byok_core.audit import AuditAction
from byok_core.clock import utcnow
from byok_core.credential import Credential
from byok_core.errors import NotFoundError, ValidationError
from byok_core.identity import Actor, KeySource, Owner, OwnerKind
from byok_core.models import ApiKey, Connection, team_or_user
from byok_core.providers import Provider
from byok_core.secret import Secret

if TYPE_CHECKING:
    from byok_core.runtime import Runtime

MAX_NAME = 80
AZURE = "azure"  # the Azure OpenAI preset: its base URL is made from an endpoint and an API version


@dataclass(frozen=True)
class Preset:
    id: str
    label: str
    base_url: str
    key_hint: str
    key_url: str | None = None  # where a person gets a key (None: a server of one's own)
    pricing_id: str | None = None  # genai-prices' provider id (None: not priced)
    reports_cost: bool = False  # the provider reports the billed cost in its usage (OpenRouter)
    local: bool = False  # a server on one's own machine or network (needs BYOK_ALLOW_PRIVATE_ENDPOINTS=1)


PRESETS: dict[str, Preset] = {p.id: p for p in (
    Preset("groq", "Groq", "https://api.groq.com/openai/v1", "starts with gsk_", "https://console.groq.com/keys",
           "groq"),
    Preset("mistral", "Mistral", "https://api.mistral.ai/v1", "32 letters and digits",
           "https://console.mistral.ai/api-keys", "mistral"),
    Preset("deepseek", "DeepSeek", "https://api.deepseek.com/v1", "starts with sk-",
           "https://platform.deepseek.com/api_keys", "deepseek"),
    Preset("xai", "xAI (Grok)", "https://api.x.ai/v1", "starts with xai-", "https://console.x.ai", "x-ai"),
    Preset("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "starts with sk-or-",
           "https://openrouter.ai/settings/keys", "openrouter", reports_cost=True),
    Preset("together", "Together AI", "https://api.together.xyz/v1", "64 letters and digits",
           "https://api.together.ai/settings/api-keys", "together"),
    Preset("fireworks", "Fireworks AI", "https://api.fireworks.ai/inference/v1", "starts with fw_",
           "https://fireworks.ai/account/api-keys", "fireworks"),
    Preset("cerebras", "Cerebras", "https://api.cerebras.ai/v1", "starts with csk-", "https://cloud.cerebras.ai",
           "cerebras"),
    Preset("perplexity", "Perplexity", "https://api.perplexity.ai", "starts with pplx-",
           "https://www.perplexity.ai/account/api/keys", "perplexity"),
    Preset("azure", "Azure OpenAI", "https://YOUR-RESOURCE.openai.azure.com",
           "32 or 84 letters and digits (Keys and Endpoint in the Azure portal)",
           "https://portal.azure.com/#browse/Microsoft.CognitiveServices%2Faccounts", "azure"),
    Preset("ollama", "Ollama (local)", "http://localhost:11434/v1", "any word: Ollama checks no key", local=True),
    Preset("vllm", "vLLM (local)", "http://localhost:8000/v1", "the --api-key vLLM was started with (else any word)",
           local=True),
    Preset("lmstudio", "LM Studio (local)", "http://localhost:1234/v1", "any word: LM Studio checks no key",
           local=True),
)}


@dataclass(frozen=True)
class ConnectionInfo:
    """What is shown of a connection, and what a call on it needs besides its key."""

    id: str
    owner: Owner
    name: str
    base_url: str
    preset: str  # a PRESETS id, "" for a custom connection
    created_at: datetime

    @classmethod
    def of(cls, row: Connection) -> ConnectionInfo:
        return cls(row.id, Owner(row.owner_kind, row.owner_id), row.name, row.base_url, row.preset, row.created_at)

    @property
    def pricing_id(self) -> str | None:
        return pricing_id(self.preset, self.base_url)

    @property
    def azure(self) -> bool:
        """An Azure OpenAI resource (``byok_core.azure``): by its preset, or its host."""
        return self.preset == AZURE or azure.is_azure_host(self.base_url)

    @property
    def reports_cost(self) -> bool:
        """The provider reports what it billed (OpenRouter's ``usage.cost``): that is the call's cost."""
        return self.pricing_id == "openrouter"


def credential(secret: Secret, base_url: str, conn: ConnectionInfo | None) -> Credential:
    """What a call with a key of ``conn`` (None: of no connection) needs: where it goes, and how."""
    return Credential(secret, base_url, usage_accounting=conn is not None and conn.reports_cost,
                      azure=conn is not None and conn.azure)


def pricing_id(preset: str, base_url: str) -> str | None:
    """genai-prices' provider for a connection: its preset's, else the provider whose API address
    the base URL matches (its ``api_pattern``); None when neither is known (cost unknown)."""
    if preset in PRESETS:
        return PRESETS[preset].pricing_id
    return _matched(base_url)


@functools.lru_cache(maxsize=256)
def _matched(base_url: str) -> str | None:
    from genai_prices import data  # its table takes ~45 ms to load: only when a custom connection is priced

    return next((p.id for p in data.providers if p.api_pattern and re.match(p.api_pattern, base_url)), None)


def _owned(owner: Owner) -> sa.ColumnElement[bool]:
    return (col(Connection.owner_kind) == owner.kind) & (col(Connection.owner_id) == owner.id)


def check_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the connection a name, e.g. Groq or Office Ollama.")
    if len(name) > MAX_NAME or any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in name):
        raise ValidationError(f"A connection's name must be at most {MAX_NAME} printable characters.")
    return name


def _taken(session: Session, owner: Owner, name: str, but: str | None = None) -> None:
    where = _owned(owner) & (sa.func.lower(col(Connection.name)) == name.lower())
    if but is not None:
        where &= col(Connection.id) != but
    if session.exec(select(Connection.id).where(where)).first() is not None:
        raise ValidationError(f"There is already a connection named {name!r}; choose another name.")


def create(rt: Runtime, actor: Actor, owner: Owner, name: str, base_url: str, preset: str = "",
           api_version: str = "") -> ConnectionInfo:
    """A new connection for ``owner``; ValidationError for a name in use, an unknown preset or a base
    URL that is not allowed (checked as written here, and its addresses again before each call).
    An Azure OpenAI connection's ``base_url`` is the resource's endpoint, made into its API's base
    URL with ``api_version`` (``azure.base_url``)."""
    actor.check_may_manage(owner)
    name = check_name(name)
    if preset and preset not in PRESETS:
        raise ValidationError(f"Unknown preset {preset!r}; use one of: {', '.join(PRESETS)}, or none for custom.")
    if preset == AZURE:
        base_url = azure.base_url(base_url, api_version)
    elif api_version:
        raise ValidationError("Only an Azure OpenAI connection takes an API version; leave it empty.")
    url = netguard.check_endpoint(base_url, rt.settings.allow_private_endpoints, resolve=False)
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        _taken(session, owner, name)
        now = utcnow()
        row = Connection(id=uuid.uuid4().hex, owner_kind=owner.kind, owner_id=owner.id, name=name, base_url=url,
                         preset=preset, created_at=now, updated_at=now)
        session.add(row)
        audit.record(session, actor.name, AuditAction.CONNECTION_SET, audit.Target(owner=owner),
                     detail=f"{name} ({url})")
        return ConnectionInfo.of(row)


def _get(session: Session, owner: Owner, connection_id: str) -> Connection:
    row = session.exec(select(Connection).where(col(Connection.id) == connection_id, _owned(owner))).first()
    if row is None:
        raise NotFoundError("No such connection.")
    return row


def get(rt: Runtime, actor: Actor, owner: Owner, connection_id: str) -> ConnectionInfo:
    """The owner's connection; someone else's id fails exactly like one that does not exist."""
    actor.check_may_manage(owner)
    with Session(rt.engine) as session:
        return ConnectionInfo.of(_get(session, owner, connection_id))


def rename(rt: Runtime, actor: Actor, owner: Owner, connection_id: str, name: str) -> ConnectionInfo:
    """Give the owner's connection another name; its URL and keys stay as they are."""
    actor.check_may_manage(owner)
    name = check_name(name)
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        row = _get(session, owner, connection_id)
        _taken(session, owner, name, but=row.id)
        row.name, row.updated_at = name, utcnow()
        audit.record(session, actor.name, AuditAction.CONNECTION_SET, audit.Target(owner=owner),
                     detail=f"{name} ({row.base_url})")
        return ConnectionInfo.of(row)


def delete(rt: Runtime, actor: Actor, owner: Owner, connection_id: str) -> None:
    """Remove the owner's connection and every key saved for it (each audited)."""
    actor.check_may_manage(owner)
    with Session(rt.engine) as session, session.begin():
        row = _get(session, owner, connection_id)
        for key in session.exec(select(ApiKey).where(col(ApiKey.connection_id) == row.id)):
            audit.record(session, actor.name, AuditAction.KEY_DELETE, audit.Target.key(key, key.mask),
                         detail=f"with the connection {row.name}")
            session.delete(key)
        session.delete(row)
        audit.record(session, actor.name, AuditAction.CONNECTION_DELETE, audit.Target(owner=owner), detail=row.name)


def list_connections(rt: Runtime, actor: Actor, owner: Owner) -> list[ConnectionInfo]:
    """The owner's connections, by name."""
    actor.check_may_manage(owner)
    with Session(rt.engine) as session:
        rows = session.exec(select(Connection).where(_owned(owner)).order_by(sa.func.lower(col(Connection.name))))
        return [ConnectionInfo.of(r) for r in rows]


@dataclass(frozen=True)
class Usable:
    """A connection someone can chat on, and the id of the key that pays there."""

    connection: ConnectionInfo
    key_id: str

    @property
    def source(self) -> KeySource:
        return KeySource.TEAM if self.connection.owner.is_team else KeySource.USER


# Built once (every Chat page run asks): the person's and the team's connections with an active key.
_USABLE = select(Connection, ApiKey.id).join(ApiKey, col(ApiKey.connection_id) == col(Connection.id)).where(
    team_or_user(col(Connection.owner_kind), col(Connection.owner_id)),
    col(ApiKey.active), col(ApiKey.owner_kind) == col(Connection.owner_kind),
    col(ApiKey.owner_id) == col(Connection.owner_id), col(ApiKey.base_url) == col(Connection.base_url),
    col(ApiKey.provider) == Provider.OPENAI_COMPATIBLE)


def usable(rt: Runtime, user_id: int | None) -> list[Usable]:
    """The connections ``user_id`` can chat on (their own, then the team's, by name) with their active
    key, in one query: a key of the connection's owner at the connection's URL (as ``keys.resolve``)."""
    with Session(rt.engine) as session:
        rows = list(session.exec(_USABLE, params={"user_id": user_id or -1}))
    rows.sort(key=lambda r: (r[0].owner_kind is not OwnerKind.USER, r[0].name.lower()))
    return [Usable(ConnectionInfo.of(conn), key_id) for conn, key_id in rows]


def find(rt: Runtime, user_id: int | None, name: str) -> ConnectionInfo:
    """The usable connection called ``name`` (the person's own before the team's), for ``--connection``."""
    wanted = " ".join(name.split()).lower()
    found = [u.connection for u in usable(rt, user_id) if u.connection.name.lower() == wanted]
    if not found:
        raise NotFoundError(f"There is no connection named {name!r} with a saved key; see the Keys page.")
    return found[0]

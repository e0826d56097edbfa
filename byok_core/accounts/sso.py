"""Single sign-on roles: the role an OIDC sign-in's groups give its account."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from byok_core import audit
from byok_core.audit import AuditAction
from byok_core.identity import Role
from byok_core.models import User, rowcount
from byok_core.runtime import Runtime

OIDC_ADMIN_GROUPS_ENV = "BYOK_OIDC_ADMIN_GROUPS"
OIDC_GROUPS_CLAIM_ENV = "BYOK_OIDC_GROUPS_CLAIM"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OidcRoles:
    """Roles decided by the identity provider: a member of one of ``admin_groups`` (listed in the
    sign-in's ``claim``) is an admin, everyone else a member."""

    admin_groups: frozenset[str]
    claim: str = "groups"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OidcRoles | None:
        """``BYOK_OIDC_ADMIN_GROUPS`` (comma-separated group names) and ``BYOK_OIDC_GROUPS_CLAIM``
        (default ``groups``; a dotted name such as ``realm_access.roles`` reaches into an object).
        None without admin groups: then roles are managed in the app alone."""
        groups = frozenset(g.strip() for g in environ.get(OIDC_ADMIN_GROUPS_ENV, "").split(",") if g.strip())
        if not groups:
            return None
        return cls(groups, environ.get(OIDC_GROUPS_CLAIM_ENV, "").strip() or "groups")

    def groups(self, claims: Mapping[str, Any]) -> frozenset[str] | None:
        """The group names in ``claims`` (a list of strings, or one string); None when the claim is missing."""
        value: Any = claims.get(self.claim)
        if value is None and "." in self.claim:
            value = claims
            for part in self.claim.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return None
        if isinstance(value, str):
            return frozenset({value})
        if isinstance(value, list | tuple):
            return frozenset(g for g in value if isinstance(g, str))
        return frozenset()

    def role_for(self, claims: Mapping[str, Any]) -> Role:
        return Role.ADMIN if (self.groups(claims) or frozenset()) & self.admin_groups else Role.MEMBER


def apply_oidc_role(rt: Runtime, user: User, claims: Mapping[str, Any]) -> User:
    """On a single sign-on, with ``BYOK_OIDC_ADMIN_GROUPS`` set: give ``user`` the role its groups
    say (``OidcRoles``), changed and audited only when it differs. Returns ``user`` with that role.

    A sign-in whose claim is missing (the provider not asked to send groups) makes a member: when in
    doubt, less access; the audit entry says why."""
    roles = OidcRoles.from_env(rt.settings.environ)
    if roles is None:
        return user
    role = roles.role_for(claims)
    if user.role == role:
        return user
    why = ("from their single sign-on groups" if roles.groups(claims) is not None
           else f"because their single sign-on sent no {roles.claim!r} claim")
    with Session(rt.engine) as session, session.begin():
        changed = rowcount(session.execute(
            sa.update(User).where(col(User.id) == user.id, col(User.role) != role).values(role=role)))
        if changed:  # one audit entry even when two reruns race
            audit.record(session, "oidc", AuditAction.USER_ROLE, audit.Target(username=user.username, role=role),
                         detail=why)
    if changed:
        log.info("single sign-on: %s is now %s %s", user.username, role.value, why)
    user.role = role
    return user

"""Who acts, whose key it is, and who paid: the small values every service takes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from byok_core.errors import PermissionDenied

TEAM_ID = 0  # the team's owner id: keys and budgets alike


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class OwnerKind(StrEnum):
    USER = "user"
    TEAM = "team"


class KeySource(StrEnum):
    """Who paid for a call: the user's own key, the team's key, or the server's environment."""

    USER = "user"
    TEAM = "team"
    ENV = "env"

    @property
    def shared(self) -> bool:
        """Team and server keys are shared money: budgets apply to them."""
        return self is not KeySource.USER


@dataclass(frozen=True)
class Owner:
    """Whose key or budget: one user's, or the team's."""

    kind: OwnerKind
    id: int

    @classmethod
    def user(cls, user_id: int | None) -> Owner:
        if user_id is None:  # a User not saved yet has no id
            raise ValueError("Only a saved user can own keys or budgets.")
        return cls(OwnerKind.USER, user_id)

    @classmethod
    def team(cls) -> Owner:
        return cls(OwnerKind.TEAM, TEAM_ID)

    @property
    def is_team(self) -> bool:
        return self.kind is OwnerKind.TEAM

    def __str__(self) -> str:
        return "team" if self.is_team else f"user {self.id}"


class _Account(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def username(self) -> str: ...
    @property
    def is_admin(self) -> bool: ...


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, or the operator at the command line."""

    name: str
    user_id: int | None
    is_admin: bool

    @classmethod
    def of(cls, user: _Account) -> Actor:
        return cls(user.username, user.id, user.is_admin)

    @classmethod
    def operator(cls) -> Actor:
        return cls("operator", None, True)

    def may_manage(self, owner: Owner) -> bool:
        return self.is_admin or (not owner.is_team and owner.id == self.user_id)

    def check_may_manage(self, owner: Owner) -> None:
        if not self.may_manage(owner):
            raise PermissionDenied("Only admins can manage team keys.")

    def check_admin(self, what: str) -> None:
        if not self.is_admin:
            raise PermissionDenied(f"Only admins can {what}.")

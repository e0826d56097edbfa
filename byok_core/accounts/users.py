"""Accounts and their changes: usernames (one name in any capitals or width), creating, renaming,
disabling, roles and passwords, each audited."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.accounts.passwords import hash_password, validate_password, verify
from byok_core.accounts.sessions import delete_tickets, end_sessions, forget_sessions
from byok_core.audit import AuditAction
from byok_core.clock import utcnow
from byok_core.errors import AuthError, NotFoundError, PermissionDenied, ValidationError
from byok_core.identity import Actor, Role
from byok_core.models import User, rowcount, saved_id
from byok_core.runtime import Runtime

USERNAME_RULES = ("Usernames are 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit; "
                  "capitals do not make a different name.")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def _typed(name: str | None) -> str:
    """A name as typed, the way it is stored: NFKC (full-width letters become plain ones), trimmed."""
    return unicodedata.normalize("NFKC", name or "").strip()


def _quoted(name: str) -> str:
    """A name in a message: in quotation marks, or as Python writes it when it holds unprintable characters."""
    return f"“{name}”" if name.isprintable() else repr(name)


def validate_username(name: str) -> str:
    """The username to store (NFKC, trimmed; its capitals kept for display), or ValidationError."""
    name = _typed(name)
    if not _USERNAME.match(name):
        raise ValidationError(USERNAME_RULES)
    return name


def account_named(session: Session, name: str | None) -> User | None:
    """The account a typed name means: the one spelled exactly so, else the one whose key it has.

    Without collisions from before migration 0007 both are the same account. With them, each
    colliding account keeps its exact spelling and any other spelling reaches the oldest (which
    holds the plain key). A later one's ``<key>#<id>`` is never matched by a typed name."""
    typed = _typed(name)
    key = User.key_of(typed)
    if not typed or "#" in key or any(unicodedata.category(c) == "Cc" for c in typed):
        return None  # no account has such a name; PostgreSQL cannot even be asked about a NUL
    rows = session.exec(select(User).where(sa.or_(col(User.username) == typed, col(User.username_key) == key))).all()
    return next((u for u in rows if u.username == typed), rows[0] if rows else None)


def _taken(name: str) -> ValidationError:
    return ValidationError(f"The username {_quoted(name)} is taken (capitals do not make a different name); "
                           "choose another.")


def create_user(rt: Runtime, actor: Actor, username: str, password: str, role: Role = Role.MEMBER) -> User:
    """A new account. Admins only (the CLI acts as ``Actor.operator()``)."""
    actor.check_admin("create accounts")
    username = validate_username(username)
    user = User(username=username, username_key=User.key_of(username),
                password_hash=hash_password(validate_password(password)), role=Role(role))
    try:
        with Session(rt.engine, expire_on_commit=False) as session, session.begin():
            session.add(user)
            session.flush()
            audit.record(session, actor.name, AuditAction.USER_CREATE,
                         audit.Target(username=username, role=user.role))
    except IntegrityError:  # the same name in other capitals or width, even from a parallel request
        raise _taken(username) from None
    return user


def list_users(rt: Runtime) -> list[User]:
    with Session(rt.engine) as session:
        return list(session.exec(select(User).order_by(col(User.username_key), col(User.id))))


def find_user(rt: Runtime, username: str | None) -> User | None:
    """The account ``username`` means in any capitals or width (see ``account_named``), or None."""
    with Session(rt.engine) as session:
        return account_named(session, username)


def get_user(rt: Runtime, username: str) -> User:
    user = find_user(rt, username)
    if user is None:
        raise NotFoundError(f"No user named {_quoted(_typed(username))}; check the spelling "
                            "(byok users list shows them).")
    return user


_Ends = Callable[[Session, int], None]  # the sign-ins a change ends, in its own transaction


def _update_user(rt: Runtime, actor: Actor, username: str, action: AuditAction, *,
                 ends: _Ends | None = None, not_self: str = "", **values: Any) -> None:
    """Change ``username``'s row and audit it; ``ends`` runs in the same transaction, so nothing
    issued before the change survives it. ``not_self``: what an admin may not do to themselves."""
    with Session(rt.engine) as session, session.begin():
        user = account_named(session, username)
        if user is not None and not_self and user.id == actor.user_id:
            raise PermissionDenied(f"You cannot {not_self} yourself; ask another admin.")
        changed = user is not None and rowcount(session.execute(
            sa.update(User).where(col(User.id) == user.id).values(**values)))
        if user is None or not changed:
            raise NotFoundError(f"No user named {_quoted(_typed(username))}; check the spelling.")
        if ends is not None:
            ends(session, saved_id(user.id))
        audit.record(session, actor.name, action, audit.Target(username=user.username, role=values.get("role")))


def rename_user(rt: Runtime, actor: Actor, username: str, new_name: str) -> User:
    """Give an account another name (its keys, conversations, usage and sessions stay with it). Admins only.

    A new name that differs from another account's only in capitals or width is refused. When
    the renamed account held a name that others from before migration 0007 collided with, the
    oldest of them takes the plain key: it is then reached by every spelling."""
    actor.check_admin("rename accounts")
    new_name = validate_username(new_name)
    try:
        with Session(rt.engine, expire_on_commit=False) as session, session.begin():
            user = account_named(session, username)
            if user is None:
                raise NotFoundError(f"No user named {_quoted(_typed(username))}; check the spelling.")
            old_name, old_key = user.username, user.username_key or ""
            if new_name == old_name:
                return user
            user.username, user.username_key = new_name, User.key_of(new_name)
            session.flush()  # IntegrityError here: the name is another account's
            if "#" not in old_key and old_key != user.username_key:
                _promote_oldest_clash(session, old_key)
            audit.record(session, actor.name, AuditAction.USER_RENAME, audit.Target(username=new_name),
                         detail=old_name)
    except IntegrityError:
        raise _taken(new_name) from None
    return user


def _promote_oldest_clash(session: Session, key: str) -> None:
    """``key`` was just freed: the oldest account parked at ``<key>#<id>`` gets it."""
    parked = session.exec(select(User).where(col(User.username_key).startswith(key + "#", autoescape=True))
                          .order_by(col(User.id))).all()
    heir = next((u for u in parked if User.key_of(u.username) == key), None)
    if heir is not None:
        heir.username_key = key
        session.flush()


@dataclass(frozen=True)
class NameClash:
    """Accounts from before usernames ignored capitals whose names are now one name, oldest first.
    Each signs in with its exact spelling; other spellings reach the first."""

    usernames: tuple[str, ...]

    def sentence(self, how: str = "") -> str:
        """One sentence for an admin; ``how`` says where to rename (" with `byok users rename`")."""
        names = [repr(n) for n in self.usernames]
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        return (f"The usernames {listed} now count as one name, so rename all but one of them{how} (until then "
                f"each signs in with its exact spelling, and any other spelling signs in to {self.usernames[0]!r}).")


def name_clashes(rt: Runtime) -> list[NameClash]:
    """Accounts whose names collide (only possible for accounts made before migration 0007)."""
    with Session(rt.engine) as session:
        parked = session.exec(select(User).where(col(User.username_key).contains("#"))).all()
        if not parked:
            return []
        keys = {User.key_of(u.username) for u in parked}
        holders = session.exec(select(User).where(col(User.username_key).in_(keys))).all()
    groups: dict[str, list[User]] = {}
    for user in [*holders, *parked]:
        groups.setdefault(User.key_of(user.username), []).append(user)
    return [NameClash(tuple(u.username for u in sorted(users, key=lambda u: (u.username_key != key, u.id or 0))))
            for key, users in sorted(groups.items()) if len(users) > 1]


def set_disabled(rt: Runtime, actor: Actor, username: str, disabled: bool) -> None:
    """Disable or enable an account; admins only, and not their own. Disabling ends every session
    and sign-in ticket for good: enabling again deletes those sessions, it never revives them."""
    actor.check_admin("disable or enable accounts")
    action = AuditAction.USER_DISABLE if disabled else AuditAction.USER_ENABLE
    _update_user(rt, actor, username, action, ends=end_sessions if disabled else forget_sessions,
                 not_self="disable or enable", disabled=disabled)


def set_role(rt: Runtime, actor: Actor, username: str, role: Role) -> None:
    """Make an account an admin or a member; admins only, and not their own."""
    actor.check_admin("change roles")
    _update_user(rt, actor, username, AuditAction.USER_ROLE, not_self="change the role of", role=Role(role))


def set_password(rt: Runtime, actor: Actor, username: str, new_password: str) -> None:
    """An admin's reset of someone's password (``change_own_password`` is a member's own)."""
    actor.check_admin("reset passwords")
    _set_password(rt, actor, username, new_password)


def _set_password(rt: Runtime, actor: Actor, username: str, new_password: str) -> None:
    """Every session and outstanding sign-in ticket of the user ends."""
    digest = hash_password(validate_password(new_password))
    _update_user(rt, actor, username, AuditAction.USER_PASSWORD, password_hash=digest, password_changed_at=utcnow(),
                 failed_logins=0, locked_until=None, ends=delete_tickets)


def change_own_password(rt: Runtime, actor: Actor, old_password: str, new_password: str) -> None:
    """The signed-in ``actor`` changes their own password, given the current one."""
    with Session(rt.engine) as session:
        user = None if actor.user_id is None else session.get(User, actor.user_id)
    if user is None:
        raise PermissionDenied("Only a signed-in user can change their own password.")
    if not verify(user.password_hash, old_password):
        raise AuthError("The current password is wrong.")
    _set_password(rt, actor, user.username, new_password)

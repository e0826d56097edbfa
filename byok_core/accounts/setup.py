"""First-run setup: the one-time code the server prints, which makes the first admin."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.accounts.passwords import hash_password, validate_password
from byok_core.accounts.sessions import hash_token
from byok_core.accounts.users import validate_username
from byok_core.audit import AuditAction
from byok_core.errors import AuthError
from byok_core.identity import Role
from byok_core.models import AppSetting, User, rowcount
from byok_core.runtime import Runtime

SETUP_CODE_PREFIX = "setup_code."  # one row per code printed (each replica prints its own)


def has_users(rt: Runtime) -> bool:
    with Session(rt.engine) as session:
        return session.exec(select(User.id).limit(1)).first() is not None


def issue_setup_code(rt: Runtime) -> str | None:
    """With no users yet: a new one-time setup code (its hash stored) for the console; else None."""
    if has_users(rt):
        return None
    code = "-".join(secrets.token_hex(3) for _ in range(3))
    with Session(rt.engine) as session, session.begin():
        digest = hash_token(code)
        session.add(AppSetting(name=SETUP_CODE_PREFIX + digest[:32], value=digest))
    return code


def claim_first_admin(rt: Runtime, code: str, username: str, password: str) -> User:
    """Create the first admin if ``code`` matches the printed setup code and no user exists yet.

    The code is consumed in the same transaction, so two racing claims cannot both succeed."""
    username, password = validate_username(username), validate_password(password)
    user = User(username=username, username_key=User.key_of(username), password_hash=hash_password(password),
                role=Role.ADMIN)
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        digest = hash_token((code or "").strip().lower())
        consumed = rowcount(session.execute(sa.delete(AppSetting).where(
            col(AppSetting.name) == SETUP_CODE_PREFIX + digest[:32], col(AppSetting.value) == digest,
        )))
        if not consumed or session.exec(select(User.id).limit(1)).first() is not None:
            raise AuthError("That setup code is not valid. Use the code printed in the server's console.")
        session.add(user)
        session.flush()
        session.execute(sa.delete(AppSetting).where(col(AppSetting.name).startswith(SETUP_CODE_PREFIX)))
        audit.record(session, "setup", AuditAction.USER_CREATE, audit.Target(username=username, role=Role.ADMIN),
                     detail="first-run setup")
    return user

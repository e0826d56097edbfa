"""Local accounts, one module per concept:

* ``users``: usernames and account changes (create, rename, disable, role, password), audited;
* ``passwords``: the password rules, Argon2id hashing and checking;
* ``signin``: checking a password, throttled per account;
* ``sessions``: the cookie's session (bound to its browser), login tickets, why a session ended;
* ``setup``: the first-run setup code that makes the first admin;
* ``sso``: the role a single sign-on's groups give.

Callers use the names below through the package: ``accounts.create_user(...)``."""

from __future__ import annotations

from byok_core.accounts.sessions import (
    LOGIN_TICKET_TTL,
    SESSION_ENDED,
    SESSION_TTL,
    SessionEnd,
    create_session,
    issue_login_ticket,
    redeem_login_ticket,
    revoke_session,
    session_bound_to,
    session_status,
)
from byok_core.accounts.setup import claim_first_admin, has_users, issue_setup_code
from byok_core.accounts.signin import ACCOUNT_DISABLED, FREE_ATTEMPTS, MAX_DELAY, SIGN_IN_FAILED, authenticate
from byok_core.accounts.sso import OidcRoles, apply_oidc_role
from byok_core.accounts.users import (
    USERNAME_RULES,
    NameClash,
    change_own_password,
    create_user,
    find_user,
    get_user,
    list_users,
    name_clashes,
    rename_user,
    set_disabled,
    set_password,
    set_role,
)

__all__ = [  # what the callers use, whichever module of the package holds it
    "ACCOUNT_DISABLED", "FREE_ATTEMPTS", "LOGIN_TICKET_TTL", "MAX_DELAY", "SESSION_ENDED", "SESSION_TTL",
    "SIGN_IN_FAILED", "USERNAME_RULES", "NameClash", "OidcRoles", "SessionEnd", "apply_oidc_role", "authenticate",
    "change_own_password", "claim_first_admin", "create_session", "create_user", "find_user", "get_user",
    "has_users", "issue_login_ticket", "issue_setup_code", "list_users", "name_clashes", "redeem_login_ticket",
    "rename_user", "revoke_session", "session_bound_to", "session_status", "set_disabled", "set_password",
    "set_role",
]

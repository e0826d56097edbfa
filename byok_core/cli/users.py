"""`byok users create|list|disable|enable|set-role|set-password|rename`, acting as ``Actor.operator()`` (audited as
"operator")."""

from __future__ import annotations

import argparse
import sys

from byok_core.cli.common import Parsers, print_table, read_secret, runtime
from byok_core.errors import ValidationError
from byok_core.identity import Actor, Role


def users_args(parser: argparse.ArgumentParser) -> None:
    users = parser.add_subparsers(dest="action", required=True)
    p = users.add_parser("create", help="create an account; the password is read from stdin")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="give the account the admin role")
    p.set_defaults(func=cmd_create)
    users.add_parser("list", help="list accounts").set_defaults(func=cmd_list)
    for action, disabled in (("disable", True), ("enable", False)):
        p = users.add_parser(action, help=f"{action} an account")
        p.add_argument("name")
        p.set_defaults(func=cmd_disable, disabled=disabled)
    p = users.add_parser("set-role", help="make an account an admin or a member")
    p.add_argument("name")
    p.add_argument("role", choices=[r.value for r in Role])
    p.set_defaults(func=cmd_set_role)
    p = users.add_parser("set-password", help="reset a password (read from stdin); signs the user out everywhere")
    p.add_argument("name")
    p.set_defaults(func=cmd_set_password)
    p = users.add_parser("rename", help="give an account a new name (its keys, chats and usage stay with it)")
    p.add_argument("name")
    p.add_argument("new_name")
    p.set_defaults(func=cmd_rename)


PARSERS: Parsers = {"users": users_args}


def _read_password() -> str:
    password = read_secret("Password: ")
    if sys.stdin is not None and sys.stdin.isatty() and read_secret("Again: ") != password:
        raise ValidationError("The two passwords differ.")
    return password


def cmd_create(args: argparse.Namespace) -> int:
    from byok_core import accounts

    rt = runtime()
    user = accounts.create_user(rt, Actor.operator(), args.name, _read_password(),
                               Role.ADMIN if args.admin else Role.MEMBER)
    print(f"created {user.role} {user.username}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from byok_core import accounts

    rt = runtime()
    print_table(["name", "role", "status", "created"], [
        [u.username, u.role, "disabled" if u.disabled else "active", u.created_at.strftime("%Y-%m-%d %H:%M")]
        for u in accounts.list_users(rt)
    ])
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    from byok_core import accounts

    rt = runtime()
    accounts.set_disabled(rt, Actor.operator(), args.name, args.disabled)
    print(f"{'disabled' if args.disabled else 'enabled'} {args.name}")
    return 0


def cmd_set_role(args: argparse.Namespace) -> int:
    from byok_core import accounts

    rt = runtime()
    accounts.set_role(rt, Actor.operator(), args.name, Role(args.role))
    print(f"{args.name} is now {args.role}")
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    from byok_core import accounts

    rt = runtime()
    accounts.set_password(rt, Actor.operator(), args.name, _read_password())
    print(f"password changed for {args.name}; their sessions are signed out")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from byok_core import accounts

    rt = runtime()
    old = accounts.get_user(rt, args.name).username
    user = accounts.rename_user(rt, Actor.operator(), args.name, args.new_name)
    print(f"renamed {old} to {user.username}")
    return 0

"""`byok chat` and `byok search`: the same calls as the UI, logged in the usage table the same way.

Without --user only the team's and the server's keys can pay."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from byok_core.cli.common import Parsers, print_table, runtime, settings
from byok_core.providers import Provider, ProviderKind

if TYPE_CHECKING:
    from byok_core.presets import Settings
    from byok_core.runtime import Runtime


def _ids(kind: ProviderKind) -> str:
    return ", ".join(p.value for p in Provider.of_kind(kind))


def chat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", type=Provider.arg, metavar="P", help=f"{_ids(ProviderKind.CHAT)} (or --preset)")
    p.add_argument("--model", default="", metavar="M", help="model id (default: the preset's, else the provider's)")
    p.add_argument("--user", metavar="NAME", help="use this user's keys first (default: team and server keys only)")
    p.add_argument("--search", type=Provider.arg, metavar="SEARCH_PROVIDER",
                   help=f"search the web first and cite the results ({_ids(ProviderKind.SEARCH)})")
    p.add_argument("--preset", metavar="NAME", help="a preset's provider, model and settings (the team's, or with "
                   "--user also that user's own); the options below change them")
    p.add_argument("--connection", metavar="NAME", help="which OpenAI-compatible connection (when there are several)")
    p.add_argument("--system", metavar="TEXT", help="a system prompt")
    p.add_argument("--temperature", type=float, metavar="T", help="0 to 2 (default: the provider's)")
    p.add_argument("--max-output-tokens", type=int, metavar="N", help="the output cap, thinking included")
    p.add_argument("--effort", choices=("low", "medium", "high"), help="reasoning effort, where the model takes one")
    p.add_argument("prompt", nargs="+", metavar="PROMPT")
    p.set_defaults(func=cmd_chat)


def search_args(p: argparse.ArgumentParser) -> None:
    from byok_core.adapters.base import MAX_RESULTS

    p.add_argument("--provider", required=True, type=Provider.arg, metavar="P", help=_ids(ProviderKind.SEARCH))
    p.add_argument("--user", metavar="NAME", help="use this user's key first (default: team and server keys only)")
    p.add_argument("--limit", type=int, default=10, metavar="N", help=f"number of results, 1 to {MAX_RESULTS}")
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.set_defaults(func=cmd_search)


PARSERS: Parsers = {"chat": chat_args, "search": search_args}


def _user_id(rt: Runtime, name: str | None) -> int | None:
    if not name:
        return None
    from byok_core import accounts

    return accounts.get_user(rt, name).id


def _warm_up() -> None:
    """Start building the HTTP client while the database opens (see ``adapters.base.warm_up``)."""
    from byok_core.adapters.base import warm_up

    warm_up(settings().connect_timeout, settings().read_timeout)


def cmd_chat(args: argparse.Namespace) -> int:
    from byok_core import chat, connections
    from byok_core.conversations import MAX_MESSAGE
    from byok_core.errors import ValidationError
    from byok_core.text import check_message

    prompt = check_message(" ".join(args.prompt), MAX_MESSAGE)  # before anything is opened or billed
    if args.provider is None and args.preset is None:
        raise ValidationError("Say which provider to ask: --provider P, or --preset NAME.")
    _warm_up()
    rt = runtime()
    user_id = _user_id(rt, args.user)
    provider, model, chosen = _chosen(rt, user_id, args)
    said = [chat.ChatMessage("system", chosen.system_prompt)] if chosen.system_prompt.strip() else []
    connection = connections.find(rt, user_id, args.connection).id if args.connection else None
    stream = chat.stream_chat(rt, user_id=user_id, provider=provider, model=model,
                              messages=[*said, chat.ChatMessage("user", prompt)], search_provider=args.search,
                              params=chosen.params, connection=connection)
    for delta in stream:
        sys.stdout.write(delta)
        sys.stdout.flush()
    result = stream.result
    assert result is not None  # set by the iteration
    record = result.record
    if result.text and not result.text.endswith("\n"):
        sys.stdout.write("\n")
    for source in result.sources:
        print(f"[{source.rank}] {source.title} — {source.url}")
    sys.stdout.flush()
    if record.notice:  # the model refused, hit the output cap, was stopped by a safety filter, ...
        print(f"byok: {record.notice}", file=sys.stderr)
    tokens = f"{_n(record.input_tokens)} in / {_n(record.output_tokens)} out tokens"
    details = [f"{n} {what}" for n, what in ((record.cache_read_tokens, "cached"),
                                             (record.reasoning_tokens, "reasoning")) if n]
    tokens += f" ({', '.join(details)})" if details else ""
    cost = f"${record.cost_usd:.6f}" if record.cost_usd is not None else "cost unknown"
    print(f"[{record.provider.value} {record.model}, {record.key_source.value} key, {tokens}, {cost}, "
          f"{record.latency_ms} ms, {record.status.value}]", file=sys.stderr)
    if result.budget_warning:
        print(f"byok: {result.budget_warning}", file=sys.stderr)
    if result.error is not None:
        raise result.error
    return 0


def _chosen(rt: Runtime, user_id: int | None, args: argparse.Namespace) -> tuple[Provider, str, Settings]:
    """The provider, model and settings asked for: the preset's, changed by the options given."""
    from byok_core import presets
    from byok_core.adapters.base import ChatParams, Effort

    preset = presets.named(rt, user_id, args.preset) if args.preset else None
    provider = args.provider or (preset.provider if preset else None)
    assert provider is not None  # checked by cmd_chat
    model = args.model or (preset.model if preset and preset.provider is provider else "")
    base = preset.settings if preset else presets.Settings()
    p = base.params
    params = ChatParams(args.temperature if args.temperature is not None else p.temperature,
                        args.max_output_tokens if args.max_output_tokens is not None else p.max_output_tokens,
                        Effort(args.effort) if args.effort else p.reasoning_effort)
    system = args.system if args.system is not None else base.system_prompt
    return provider, model, presets.check_settings(presets.Settings(system, params), provider)


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def cmd_search(args: argparse.Namespace) -> int:
    from byok_core.search import run_search

    _warm_up()
    rt = runtime()
    results = run_search(rt, user_id=_user_id(rt, args.user), provider=args.provider, query=" ".join(args.query),
                         limit=args.limit)
    if not results:
        print("no results")
        return 0
    print_table(["#", "title", "url", "snippet", "provider"], [
        [r.rank, _short(r.title, 60), r.url, _short(r.snippet, 80), r.provider.value] for r in results
    ])
    return 0


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

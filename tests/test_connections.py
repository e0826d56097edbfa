"""Named OpenAI-compatible connections on a real database, over loopback: their CRUD, one active key
per connection, that a team key never reaches a URL a member typed (across save, delete, rename and
restore), pricing by preset and by base URL, and OpenRouter's own billed cost (a real recording)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from callhelpers import dump_database, usage_rows
from fakeproviders import FakeProvider
from genai_prices import Usage, calc_price
from replay import ReplayServer, recording, written

from byok_core import accounts, audit, chat, connections, keys, keytest
from byok_core.errors import KeyUnreadableError, NoKeyError, NotFoundError, PermissionDenied, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import ApiKey, Role
from byok_core.providers import Provider

COMPAT = Provider.OPENAI_COMPATIBLE
ALICE_KEY = "gsk_fake-alice-own-AAAAAAAAAAAAAAAA1111"
ALICE_KEY_2 = "gsk_fake-alice-new-AAAAAAAAAAAAAAAA2222"
TEAM_KEY = "sk-fake.team-connection-TTTTTTTTTTT3333"
ALL = (ALICE_KEY, ALICE_KEY_2, TEAM_KEY)


@pytest.fixture
def people(lan):
    alice = accounts.create_user(lan, Actor.operator(), "alice", "alice-password")
    bob = accounts.create_user(lan, Actor.operator(), "bob", "bob-password")
    admin = accounts.create_user(lan, Actor.operator(), "root", "root-password", Role.ADMIN)
    return Actor.of(alice), Actor.of(bob), Actor.of(admin)


def reply(rt, user_id, connection=None, model="llama-3.3-70b-versatile"):
    stream = chat.stream_chat(rt, user_id=user_id, provider=COMPAT, model=model,
                              messages=[chat.ChatMessage("user", "hi")], connection=connection)
    text = "".join(stream)
    assert stream.result is not None
    return text, stream.result


def test_connections_are_added_renamed_and_deleted_by_their_owner_only(lan, people):
    alice, bob, admin = people
    mine = Owner.user(alice.user_id)
    groq = connections.create(lan, alice, mine, "Groq", connections.PRESETS["groq"].base_url, "groq")
    office = connections.create(lan, alice, mine, "  Office   Ollama ", "http://127.0.0.1:11434/v1/", "ollama")
    assert (office.name, office.base_url) == ("Office Ollama", "http://127.0.0.1:11434/v1")
    assert [c.name for c in connections.list_connections(lan, alice, mine)] == ["Groq", "Office Ollama"]
    with pytest.raises(ValidationError, match="already a connection named 'groq'"):
        connections.create(lan, alice, mine, "groq", "https://api.mistral.ai/v1")
    with pytest.raises(ValidationError, match="Unknown preset"):
        connections.create(lan, alice, mine, "X", "https://api.x.ai/v1", "grok")
    with pytest.raises(ValidationError, match="Give the connection a name"):
        connections.create(lan, alice, mine, "  ", "https://api.x.ai/v1")
    with pytest.raises(ValidationError, match="cloud metadata"):
        connections.create(lan, alice, mine, "Meta", "http://169.254.169.254/v1")
    assert connections.create(lan, admin, Owner.team(), "Groq", "https://api.groq.com/openai/v1", "groq").name == "Groq"

    renamed = connections.rename(lan, alice, mine, groq.id, "Groq fast")
    assert (renamed.id, renamed.name, renamed.base_url) == (groq.id, "Groq fast", groq.base_url)
    with pytest.raises(ValidationError, match="already"):
        connections.rename(lan, alice, mine, groq.id, "office ollama")
    # someone else's connection: refused for another owner, and looks like none with one's own
    with pytest.raises(PermissionDenied):
        connections.rename(lan, bob, mine, groq.id, "Mine now")
    for attempt in (lambda: connections.rename(lan, bob, Owner.user(bob.user_id), groq.id, "Mine now"),
                    lambda: connections.delete(lan, bob, Owner.user(bob.user_id), groq.id)):
        with pytest.raises(NotFoundError, match="No such connection"):
            attempt()
    with pytest.raises(PermissionDenied):
        connections.create(lan, alice, Owner.team(), "Team", "https://api.groq.com/openai/v1")

    keys.store(lan, alice, mine, COMPAT, ALICE_KEY, connection=groq.id)
    connections.delete(lan, alice, mine, groq.id)
    assert [c.name for c in connections.list_connections(lan, alice, mine)] == ["Office Ollama"]
    assert keys.list_keys(lan, alice, mine) == []  # its key went with it
    said = [(e.action, e.detail) for e in audit.recent(lan) if e.action.startswith("connection.")]
    assert ("connection.delete", "Groq fast") in said
    assert ("connection.set", "Office Ollama (http://127.0.0.1:11434/v1)") in said
    assert ALICE_KEY not in dump_database(lan)


def test_one_active_key_per_connection(lan, people):
    alice, _, _ = people
    mine = Owner.user(alice.user_id)
    with FakeProvider(COMPAT) as one, FakeProvider(COMPAT) as two:
        a = connections.create(lan, alice, mine, "One", one.base_url)
        b = connections.create(lan, alice, mine, "Two", two.base_url)
        first = keys.store(lan, alice, mine, COMPAT, ALICE_KEY, connection=a.id)
        keys.store(lan, alice, mine, COMPAT, ALICE_KEY_2, connection=b.id)
        assert sorted((k.connection_id, k.active) for k in keys.list_keys(lan, alice, mine)) == sorted(
            [(a.id, True), (b.id, True)])  # one each: a second connection does not replace the first's key
        assert reply(lan, alice.user_id, a.id)[1].record.connection == "One"
        assert reply(lan, alice.user_id, b.id)[1].record.connection == "Two"
        assert (one.sent_keys()[-1], two.sent_keys()[-1]) == (ALICE_KEY, ALICE_KEY_2)
        with pytest.raises(ValidationError, match=r"Choose one of the connections \(One, Two\)"):
            keys.resolve(lan, alice.user_id, COMPAT)
        again = keys.store(lan, alice, mine, COMPAT, ALICE_KEY_2, connection=a.id)  # replaces the one of One
        left = {k.id: k.active for k in keys.list_keys(lan, alice, mine) if k.connection_id == a.id}
        assert left == {again.id: True, first.id: False}
        with pytest.raises(ValidationError, match="sends to"):  # a connection's key goes to its URL only
            keys.store(lan, alice, mine, COMPAT, ALICE_KEY, base_url="https://elsewhere.example/v1", connection=a.id)
    with lan.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):  # the database holds it too
        conn.execute(sa.update(ApiKey).where(ApiKey.id == first.id).values(active=True))


def test_a_team_key_never_reaches_a_url_a_member_typed(lan, people):
    """Across save, delete, rename and restore of connections, and rows changed in the database."""
    alice, _, admin = people
    mine, team = Owner.user(alice.user_id), Owner.team()
    with FakeProvider(COMPAT) as team_server, FakeProvider(COMPAT) as member_server:
        shared = connections.create(lan, admin, team, "Team Groq", team_server.base_url, "groq")
        keytest.save(lan, admin, team, COMPAT, TEAM_KEY, connection=shared.id)
        own = connections.create(lan, alice, mine, "Team Groq", member_server.base_url)  # same name: her own
        for attempt in (lambda: keys.store(lan, alice, mine, COMPAT, ALICE_KEY, connection=shared.id),
                        lambda: keytest.save(lan, alice, mine, COMPAT, ALICE_KEY, connection=shared.id)):
            with pytest.raises(NotFoundError):  # a member cannot put her key in the team's connection...
                attempt()
        with pytest.raises(PermissionDenied):  # ...nor a key of the team's in hers
            keys.store(lan, alice, team, COMPAT, ALICE_KEY, connection=own.id)
        with pytest.raises(NoKeyError):  # her connection has no key yet: nothing falls back to the team's
            reply(lan, alice.user_id, own.id)
        first = keytest.save(lan, alice, mine, COMPAT, ALICE_KEY, connection=own.id).saved
        assert first is not None
        reply(lan, alice.user_id, own.id)
        reply(lan, alice.user_id, shared.id)  # the team's connection: its own URL, the admin's
        connections.rename(lan, alice, mine, own.id, "Mine")
        reply(lan, alice.user_id, own.id)
        keys.store(lan, alice, mine, COMPAT, ALICE_KEY_2, connection=own.id)
        keys.restore(lan, alice, mine, first.id)
        reply(lan, alice.user_id, own.id)
        connections.delete(lan, alice, mine, own.id)
        with pytest.raises(NoKeyError):
            reply(lan, alice.user_id, own.id)
        _, result = reply(lan, alice.user_id)  # now one connection she can use: the team's
        assert result.record.connection == "Team Groq" and result.record.key_source.value == "team"

        # rows changed in the database: the team key moved to a member's connection, or the team
        # connection's URL rewritten to hers: the key is not used at all
        own = connections.create(lan, alice, mine, "Again", member_server.base_url)
        with lan.engine.begin() as conn:
            conn.execute(sa.text("UPDATE api_keys SET connection_id = :c WHERE owner_kind = 'team'"), {"c": own.id})
        with pytest.raises(KeyUnreadableError):
            reply(lan, alice.user_id, own.id)
        with lan.engine.begin() as conn:
            conn.execute(sa.text("UPDATE api_keys SET connection_id = :c WHERE owner_kind = 'team'"), {"c": shared.id})
            conn.execute(sa.text("UPDATE connections SET base_url = :u WHERE id = :c"),
                         {"u": member_server.base_url, "c": shared.id})
        with pytest.raises(KeyUnreadableError):
            reply(lan, alice.user_id, shared.id)
        with lan.engine.begin() as conn:  # and both URLs rewritten: the key's own no longer opens
            conn.execute(sa.text("UPDATE api_keys SET base_url = :u WHERE owner_kind = 'team'"),
                         {"u": member_server.base_url})
        with pytest.raises(KeyUnreadableError, match="cannot be decrypted"):
            reply(lan, alice.user_id, shared.id)
    said = [e.detail for e in audit.recent(lan) if e.action == "key.decrypt_failed"]
    assert said.count("it does not match its connection (owner or base URL)") == 2
    assert TEAM_KEY not in member_server.sent_keys()
    assert set(member_server.sent_keys()) == {ALICE_KEY} and set(team_server.sent_keys()) == {TEAM_KEY}
    assert all(k not in dump_database(lan) for k in ALL)


def test_pricing_by_preset_and_by_base_url(lan, people):
    _, _, admin = people
    assert connections.pricing_id("groq", "http://127.0.0.1:1/v1") == "groq"
    for url, provider in [("https://api.groq.com/openai/v1", "groq"), ("https://api.deepseek.com", "deepseek"),
                          ("https://openrouter.ai/api/v1", "openrouter"), ("https://api.x.ai/v1", "x-ai"),
                          ("https://api.together.xyz/v1", "together"), ("http://127.0.0.1:8000/v1", None)]:
        assert connections.pricing_id("", url) == provider
    assert {p.pricing_id for p in connections.PRESETS.values() if not p.local} == {
        "groq", "mistral", "deepseek", "x-ai", "openrouter", "together", "fireworks", "cerebras", "perplexity", "azure"}
    team = Owner.team()
    with FakeProvider(COMPAT, input_tokens=20, reply="one two three") as server:
        groq = connections.create(lan, admin, team, "Groq", server.base_url, "groq")
        custom = connections.create(lan, admin, team, "Local", server.base_url.replace("127.0.0.1", "localhost"))
        for c, key in ((groq, TEAM_KEY), (custom, ALICE_KEY)):
            keys.store(lan, admin, team, COMPAT, key, connection=c.id)
        reply(lan, None, groq.id)
        reply(lan, None, custom.id)
    priced, unknown = usage_rows(lan)
    expected = calc_price(Usage(input_tokens=20, output_tokens=priced.output_tokens),
                          model_ref="llama-3.3-70b-versatile", provider_id="groq").total_price
    assert (priced.connection, priced.cost_usd) == ("Groq", pytest.approx(float(expected)))
    assert priced.cost_usd > 0 and priced.priced_usd is None  # genai-prices' own figure: no second one
    assert (unknown.connection, unknown.cost_usd) == ("Local", None)  # unknown, never $0


def test_openrouters_billed_cost_is_the_cost_with_genai_prices_figure_beside_it(lan, people):
    _, _, admin = people
    team = Owner.team()
    real = recording("openrouter/stream-usage-cost-grok-4.sse")
    usage = ('{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"cost":0.0012345,"is_byok":false,'
             '"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}')
    documented = written("openrouter", "openai/gpt-4o-mini", (  # OpenRouter's documented shape
        'data: {"id":"gen-1","model":"openai/gpt-4o-mini","object":"chat.completion.chunk","choices":[{"index":0,'
        '"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
        f'data: {{"id":"gen-1","object":"chat.completion.chunk","choices":[],"usage":{usage}}}\n\n'
        'data: [DONE]\n\n').encode())
    seen = []
    for rec, preset, model in ((real, "openrouter", "x-ai/grok-4"), (documented, "openrouter", "openai/gpt-4o-mini"),
                               (documented, "", "openai/gpt-4o-mini")):
        with ReplayServer(rec) as server:
            c = connections.create(lan, admin, team, f"Router {len(seen)}", server.url + "/api/v1", preset)
            keys.store(lan, admin, team, COMPAT, TEAM_KEY, connection=c.id)
            _, result = reply(lan, None, c.id, model)
            seen.append((server.requests[0][3].get("usage"), result.record))
    rows = usage_rows(lan)
    assert [s[0] for s in seen] == [{"include": True}, {"include": True}, None]  # asked for on OpenRouter only
    grok, mini, custom = rows
    assert (grok.cost_usd, grok.priced_usd) == (pytest.approx(real.entry["genai_prices"]["reported_cost_usd"]), None)
    assert seen[0][1].cost_usd == grok.cost_usd and grok.input_tokens == 687
    figure = float(calc_price(Usage(input_tokens=1000, output_tokens=500), model_ref="openai/gpt-4o-mini",
                              provider_id="openrouter").total_price)
    assert (mini.cost_usd, mini.priced_usd) == (pytest.approx(0.0012345), pytest.approx(figure))
    assert figure != pytest.approx(0.0012345)  # two figures, told apart
    # a connection that is not OpenRouter: what its server says it billed is not taken as the cost
    assert (custom.cost_usd, custom.priced_usd) == (None, None)


def test_a_real_groq_stream_on_a_groq_connection_is_priced_as_groq(lan, people):
    """Groq's usage only in ``x_groq.usage`` (a real recording), priced from genai-prices' Groq table
    because the connection is Groq's, by its preset or by its base URL."""
    _, _, admin = people
    real = recording("groq/stream-x-groq-usage-gpt-oss-120b.sse")
    billed = real.entry["genai_prices"]
    with ReplayServer(real) as server:
        by_preset = connections.create(lan, admin, Owner.team(), "Groq", server.url + "/openai/v1", "groq")
        keys.store(lan, admin, Owner.team(), COMPAT, TEAM_KEY, connection=by_preset.id)
        text, _ = reply(lan, None, by_preset.id, real.entry["request"]["model"])
    [row] = usage_rows(lan)
    expected = calc_price(Usage(input_tokens=billed["input_tokens"], output_tokens=billed["output_tokens"]),
                          model_ref="openai/gpt-oss-120b", provider_id="groq").total_price
    assert text == real.entry["text"]
    assert (row.connection, row.input_tokens, row.output_tokens) == ("Groq", 320, 15)
    assert row.cost_usd == pytest.approx(float(expected), abs=1e-12) and row.cost_usd > 0
    assert connections.pricing_id("", "https://api.groq.com/openai/v1") == "groq"  # a custom one at Groq's address


def test_a_real_deepseek_reasoner_stream_on_a_deepseek_connection(lan, people):
    """DeepSeek's thinking arrives in ``delta.reasoning_content`` (a real recording): it is not the
    reply, its tokens are counted as reasoning, and the call is priced from genai-prices' DeepSeek table."""
    _, _, admin = people
    real = recording("deepseek/stream-reasoning-content-deepseek-reasoner.sse")
    billed = real.entry["genai_prices"]
    with ReplayServer(real) as server:
        deepseek = connections.create(lan, admin, Owner.team(), "DeepSeek", server.url, "deepseek")
        keys.store(lan, admin, Owner.team(), COMPAT, TEAM_KEY, connection=deepseek.id)
        text, result = reply(lan, None, deepseek.id, "deepseek-reasoner")
    [row] = usage_rows(lan)
    assert text == real.entry["text"] and "Hmm" not in text  # the thinking ("Hmm, the user just said...") is not
    assert (row.connection, row.input_tokens, row.output_tokens, row.reasoning_tokens) == ("DeepSeek", 6, 212, 198)
    # DeepSeek's price depends on the hour (off-peak, 16:30-00:30 UTC, is cheaper), and a call is
    # priced at the hour it is made: the recording's figure is the peak price, the call is priced now.
    usage = Usage(input_tokens=6, output_tokens=212)
    peak = calc_price(usage, model_ref="deepseek-reasoner", provider_id="deepseek",
                      genai_request_timestamp=datetime(2026, 12, 7, 12, tzinfo=UTC))
    assert float(billed["price_on_deepseek_connection"]["total_price"]) == pytest.approx(float(peak.total_price))
    now = float(calc_price(usage, model_ref="deepseek-reasoner", provider_id="deepseek").total_price)
    assert row.cost_usd == pytest.approx(now, abs=1e-9) and result.record.cost_usd == row.cost_usd
    assert TEAM_KEY not in dump_database(lan)

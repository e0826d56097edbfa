"""Azure OpenAI connections over loopback, with Azure's real recorded answers (tests/recordings/azure):
the endpoint and API version make the address, the key goes in the ``api-key`` header, the deployment
is the model; the stream's text, usage and cost (genai-prices' Azure table, by the model the reply
names); a filtered prompt or reply, a missing deployment and a wrong key said in plain words; and no
key in the database, the usage log or any message."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from callhelpers import dump_database, usage_rows
from genai_prices import Usage, calc_price
from replay import MANIFEST, RECORDINGS, Recording, ReplayServer, recording, written

from byok_core import accounts, azure, chat, connections, keys, netguard
from byok_core.errors import CallStatus, KeyRejected, ModelNotFound, RequestRejected, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import Role
from byok_core.providers import Provider

COMPAT = Provider.OPENAI_COMPATIBLE
KEY = "0123456789abcdef0123456789abcdef"  # an Azure key: 32 hex digits
V1 = recording("azure/stream-text-v1-gpt-5-mini.sse")


@pytest.fixture
def admin(lan):
    return Actor.of(accounts.create_user(lan, Actor.operator(), "root", "root-password", Role.ADMIN))


def azure_chat(rt, admin, server, model="gpt-5-mini", api_version=""):
    """A team Azure connection at ``server`` with a key, and one reply on it: (text, result)."""
    conn = connections.create(rt, admin, Owner.team(), "Azure", server.url, connections.AZURE, api_version)
    keys.store(rt, admin, Owner.team(), COMPAT, KEY, connection=conn.id)
    stream = chat.stream_chat(rt, user_id=None, provider=COMPAT, model=model,
                              messages=[chat.ChatMessage("user", "What is 4200 + 42?")], connection=conn.id)
    text = "".join(stream)
    assert stream.result is not None
    return text, stream.result


def azure_error(rt, admin, server, model="gpt-5-mini"):
    """The error a reply on an Azure connection at ``server`` ended with."""
    _, result = azure_chat(rt, admin, server, model)
    assert result.error is not None
    return result.error


def no_leak(rt, caplog, *texts):
    assert KEY not in dump_database(rt) and KEY not in caplog.text
    for text in texts:
        assert KEY not in text


def test_a_real_v1_stream_is_read_and_priced_as_azure(lan, admin, caplog):
    caplog.set_level(logging.DEBUG)
    with ReplayServer(V1) as server:
        text, result = azure_chat(lan, admin, server)
    [(method, path, headers, body)] = server.requests
    assert (method, path) == ("POST", "/openai/v1/chat/completions")
    assert headers["api-key"] == KEY and "authorization" not in headers
    assert body["model"] == "gpt-5-mini" and "max_completion_tokens" in body and "max_tokens" not in body
    assert "temperature" not in body  # a gpt-5 deployment takes OpenAI's reasoning-model parameters
    assert text == V1.entry["text"] == "4242"
    [row] = usage_rows(lan)
    expected = calc_price(Usage(input_tokens=15, output_tokens=12), model_ref="gpt-5-mini-2025-08-07",
                          provider_id="azure").total_price
    assert float(expected) == pytest.approx(float(V1.entry["genai_prices"]["total_price"]))
    assert (row.model, row.connection, row.input_tokens, row.output_tokens) == ("gpt-5-mini", "Azure", 15, 12)
    assert row.cost_usd == pytest.approx(float(expected), abs=1e-9) and row.cost_usd > 0
    assert result.record.notice is None
    no_leak(lan, caplog, repr(result))


def test_a_deployment_named_unlike_its_model_is_priced_by_the_model_the_reply_names(lan, admin):
    with ReplayServer(V1) as server:
        azure_chat(lan, admin, server, model="team-prod-chat")
    [row] = usage_rows(lan)
    assert row.model == "team-prod-chat" and row.cost_usd == pytest.approx(2.775e-05, abs=1e-9)


def test_a_dated_api_version_goes_to_the_deployments_address(lan, admin):
    with ReplayServer(V1) as server:
        text, _ = azure_chat(lan, admin, server, model="team/gpt-5-mini", api_version="2024-10-21")
    [(_, path, headers, _)] = server.requests
    assert path == "/openai/deployments/team%2Fgpt-5-mini/chat/completions?api-version=2024-10-21"
    assert headers["api-key"] == KEY and text == "4242"
    [conn] = connections.list_connections(lan, admin, Owner.team())
    assert conn.base_url == server.url + "/openai?api-version=2024-10-21"


def test_a_filtered_prompt_says_so(lan, admin, caplog):
    with ReplayServer(recording("azure/error-400-content-filter-gpt-4o-mini.json")) as server:
        error = azure_error(lan, admin, server, model="gpt-4o-mini")
    message = str(error)
    assert isinstance(error, RequestRejected)
    assert message.startswith("Azure OpenAI's content filter blocked this prompt")
    assert "Rephrase the request and try again." in message
    [row] = usage_rows(lan)
    assert (row.status, row.cost_usd) == (CallStatus.BAD_REQUEST, 0.0)
    no_leak(lan, caplog, message)


def test_a_reply_filtered_mid_stream_keeps_its_text_and_says_why(lan, admin):
    """No real recording of it was found (MANIFEST not_found): written in the recorded v1 stream's shape."""
    chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1769482793,
             "model": "gpt-5-mini-2025-08-07", "usage": None}
    events = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Here is how"},
                                     "finish_reason": None, "content_filter_results": {}}]},
              {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                                     "content_filter_results": {"violence": {"filtered": True,
                                                                             "severity": "high"}}}]},
              {**chunk, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}}]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    with ReplayServer(written("azure", "gpt-5-mini", body.encode())) as server:
        text, result = azure_chat(lan, admin, server)
    assert text == "Here is how"
    assert result.record.notice == ("Azure OpenAI's safety filter stopped the reply (content_filter); the text before "
                                    "it is kept. Rephrase the request and try again.")
    [row] = usage_rows(lan)
    assert (row.status, row.output_tokens) == (CallStatus.OK, 9) and row.cost_usd > 0


def test_a_missing_deployment_names_it(lan, admin):
    with ReplayServer(recording("azure/error-404-deployment-not-found.json")) as server:
        error = azure_error(lan, admin, server, model="gpt-35-turbo")
    assert isinstance(error, ModelNotFound)
    assert str(error).startswith("Azure OpenAI has no deployment named 'gpt-35-turbo'") and "as the model" in str(error)


def test_a_wrong_key_is_rejected_by_its_mask(lan, admin, caplog):
    body = (b'{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. '
            b'Make sure to provide a valid key for an active subscription and use a correct regional API endpoint '
            b'for your resource."}}')
    wrong = Recording({"provider": "azure", "file": "(written in the test)", "status": 401,
                       "headers": {"content-type": "application/json"}, "request": {"model": "gpt-5-mini"}}, body)
    with ReplayServer(wrong) as server:
        error = azure_error(lan, admin, server)
    assert isinstance(error, KeyRejected) and str(error).startswith("Azure OpenAI rejected the key 012…cdef")
    no_leak(lan, caplog, str(error))


def test_the_endpoint_and_api_version_are_checked():
    assert azure.base_url("https://res.openai.azure.com/") == "https://res.openai.azure.com/openai/v1"
    assert azure.base_url("https://res.openai.azure.com", "V1") == "https://res.openai.azure.com/openai/v1"
    pasted = "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2025-01-01-preview"
    assert azure.base_url(pasted) == "https://res.openai.azure.com/openai?api-version=2025-01-01-preview"
    with pytest.raises(ValidationError, match="dated version such as 2024-10-21"):
        azure.base_url("https://res.openai.azure.com", "latest")
    with pytest.raises(ValidationError, match="endpoint as the Azure portal shows it"):
        azure.base_url("res.openai.azure.com")
    # the one query a base URL may carry is exactly that version; no other query, nowhere else
    for url in ("https://res.openai.azure.com/openai?api-version=2024-10-21&x=1", "https://x.test/v1?a=b",
                "https://res.openai.azure.com/v1?api-version=2024-10-21"):
        with pytest.raises(ValidationError, match="cannot contain '\\?'"):
            netguard.check_url_syntax(url)
    with pytest.raises(ValidationError, match="cannot contain '\\?'"):
        netguard.check_url_syntax("https://hooks.test/openai?api-version=2024-10-21", netguard.WEBHOOK)


def test_only_azure_takes_an_api_version_and_azure_hosts_are_azure(lan, admin):
    with pytest.raises(ValidationError, match="Only an Azure OpenAI connection takes an API version"):
        connections.create(lan, admin, Owner.team(), "Groq", "https://api.groq.com/openai/v1", "groq", "2024-10-21")
    custom = connections.create(lan, admin, Owner.team(), "Mine", "https://res.cognitiveservices.azure.com/openai/v1")
    assert custom.azure and custom.pricing_id == "azure"
    made = connections.create(lan, admin, Owner.team(), "Azure", "https://res.openai.azure.com", connections.AZURE)
    assert (made.base_url, made.azure, made.pricing_id) == ("https://res.openai.azure.com/openai/v1", True, "azure")
    assert not connections.create(lan, admin, Owner.team(), "Groq", "https://api.groq.com/openai/v1", "groq").azure


def test_a_bedrock_connection_is_priced_as_aws_as_the_readme_says():
    """The README's way to Bedrock: a custom connection at bedrock-runtime's OpenAI-compatible address."""
    assert connections.pricing_id("", "https://bedrock-runtime.us-west-2.amazonaws.com/openai/v1") == "aws"
    assert not connections.ConnectionInfo("x", Owner.team(), "Bedrock", "https://bedrock-runtime.us-west-2"
                                          ".amazonaws.com/openai/v1", "", None).azure  # type: ignore[arg-type]


def test_the_azure_recordings_are_the_bytes_the_manifest_describes():
    entries = [e for e in MANIFEST["files"] if e["provider"] == "azure"]
    assert len(entries) == 3
    for entry in entries:
        body = (RECORDINGS / entry["file"]).read_bytes()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["body_bytes"], entry["body_sha256"])
        assert entry["provenance"]["repository"] and entry["provenance"]["path"]

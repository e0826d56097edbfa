"""End to end in a real Chromium: a member adds an Azure OpenAI connection on the Keys page (the
preset asks for the resource's endpoint, here a loopback Azure resource, and an API version left as
v1), chats on it, and the reply's line shows its price from genai-prices' Azure table. The request
carries the key in the ``api-key`` header and the deployment as the model; no key reaches the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from appserver import RunningApp, running_app
from browser import idle, need_chromium, no_errors, open_signed_in
from fakeproviders import FakeProvider
from genai_prices import Usage, calc_price
from playwright.sync_api import expect

from byok_core import accounts
from byok_core.currency import money
from byok_core.identity import Actor
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e
REPLY = "Azure answers from your own resource."
DEPLOYMENT = "gpt-4o-mini"


@pytest.fixture(scope="module")
def resource() -> Iterator[FakeProvider]:
    with FakeProvider(Provider.OPENAI_COMPATIBLE, azure=True, reply=REPLY, input_tokens=14,
                      models=[DEPLOYMENT]) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, resource) -> Iterator[RunningApp]:
    need_chromium()
    with running_app(tmp_path_factory.mktemp("e2e-azure"), BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as app:
        yield app


def test_an_azure_connection_chats_with_its_deployment_priced_as_azure(server, page, rt, resource):
    key = "0123456789abcdefPLAINTEXTazure9f8e"
    user = accounts.create_user(rt, Actor.operator(), "azura", "member password 1")
    open_signed_in(page, server.url, rt, user, "/keys")
    page.get_by_text("Add a connection").click()
    page.get_by_role("combobox", name="Preset").click()
    page.get_by_role("option", name="Azure OpenAI", exact=True).click()
    idle(page)
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Azure OpenAI")
    page.get_by_role("textbox", name="Endpoint", exact=True).fill(resource.base_url)  # the loopback resource
    expect(page.get_by_role("textbox", name="API version", exact=True)).to_have_value("")  # v1
    page.get_by_role("textbox", name="API key", exact=True).fill(key)
    page.get_by_role("button", name="Add connection").click()
    expect(page.get_by_text("Saved the Azure OpenAI key 012…9f8e and tested it: 1 model visible.")).to_be_visible()
    idle(page)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat", exact=True).click()
    idle(page)
    page.get_by_test_id("stChatInputTextArea").fill("Say hello")
    page.get_by_test_id("stChatInputTextArea").press("Enter")
    reply = page.get_by_test_id("stChatMessage").filter(has_text=REPLY)
    expect(reply).to_be_visible()
    out = len(resource.chunks)
    cost = money(float(calc_price(Usage(input_tokens=14, output_tokens=out), model_ref=DEPLOYMENT,
                                      provider_id="azure").total_price))
    expect(reply).to_contain_text(f"Paid by your key · Azure OpenAI {DEPLOYMENT} · 14 tokens in, {out} out · {cost}")
    chat = resource.requests[-1]
    assert (chat.method, chat.path) == ("POST", "/openai/v1/chat/completions")
    assert chat.headers["api-key"] == key and "authorization" not in chat.headers
    assert chat.body["model"] == DEPLOYMENT
    idle(page)
    assert key not in page.content() and key[-8:] not in page.content()
    no_errors(page)

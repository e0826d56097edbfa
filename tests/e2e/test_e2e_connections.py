"""End to end in a real Chromium: a member adds a Groq connection from its preset on the Keys page
(its base URL pointed at a loopback Groq), picks it by its name in Chat's Provider list, and the
reply's line names the connection and shows its price from genai-prices' Groq table. Another adds an
Azure OpenAI connection (the preset asks for the resource's endpoint, here a loopback Azure resource,
and an API version left as v1) and chats on it, priced from genai-prices' Azure table, the key in the
``api-key`` header and the deployment as the model. No key ever reaches the page."""

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
REPLY = "Groq answers quickly."
MODEL = "llama-3.1-8b-instant"  # the first model the fake Groq lists
AZURE_REPLY = "Azure answers from your own resource."
DEPLOYMENT = "gpt-4o-mini"


@pytest.fixture(scope="module")
def groq() -> Iterator[FakeProvider]:
    with FakeProvider(Provider.OPENAI_COMPATIBLE, reply=REPLY, input_tokens=14) as fake:
        yield fake


@pytest.fixture(scope="module")
def resource() -> Iterator[FakeProvider]:
    with FakeProvider(Provider.OPENAI_COMPATIBLE, azure=True, reply=AZURE_REPLY, input_tokens=14,
                      models=[DEPLOYMENT]) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RunningApp]:
    need_chromium()
    with running_app(tmp_path_factory.mktemp("e2e-connections"), BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as app:
        yield app


def add_connection(page, server, rt, user, preset: str) -> None:
    """Open the Keys page as ``user`` and start a connection from ``preset``."""
    open_signed_in(page, server.url, rt, user, "/keys")
    page.get_by_text("Add a connection").click()
    idle(page)  # opening it reruns the page: a list opened meanwhile would close with the redraw
    page.get_by_role("combobox", name="Preset").click()
    page.get_by_role("option", name=preset, exact=True).click()
    idle(page)


def say_hello_and_see_the_price(page, fake: FakeProvider, reply_text: str, name: str, model: str,
                                price_list: str) -> None:
    """Send "Say hello" from the Chat page; the reply's line names the connection and model and
    gives genai-prices' price of its 14 tokens in and its chunks out (on ``price_list``)."""
    page.get_by_test_id("stChatInputTextArea").fill("Say hello")
    page.get_by_test_id("stChatInputTextArea").press("Enter")
    reply = page.get_by_test_id("stChatMessage").filter(has_text=reply_text)
    expect(reply).to_be_visible()
    out = len(fake.chunks)
    cost = money(float(calc_price(Usage(input_tokens=14, output_tokens=out), model_ref=model,
                                  provider_id=price_list).total_price))
    expect(reply).to_contain_text(f"Paid by your key · {name} {model} · 14 tokens in, {out} out · {cost}")


def test_a_groq_connection_from_its_preset_chats_with_its_price_shown(server, page, rt, groq):
    key = "gsk_e2e-PLAINTEXT-connection-9f8e"
    user = accounts.create_user(rt, Actor.operator(), "connie", "member password 1")
    add_connection(page, server, rt, user, "Groq")
    expect(page.get_by_role("textbox", name="Base URL", exact=True)).to_have_value("https://api.groq.com/openai/v1")
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Groq")
    page.get_by_role("textbox", name="Base URL", exact=True).fill(groq.base_url)  # the loopback Groq
    page.get_by_role("textbox", name="API key", exact=True).fill(key)
    page.get_by_role("button", name="Add connection").click()
    expect(page.get_by_text("Saved the Groq key gsk…9f8e and tested it: 2 models visible.")).to_be_visible()
    expect(page.get_by_role("link", name="Get a key").first).to_be_visible()
    idle(page)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat", exact=True).click()
    idle(page)
    page.get_by_role("button", name=f"Groq · {MODEL}").click()  # the pickers' popover
    page.get_by_role("combobox", name="Provider").click()
    expect(page.get_by_role("option", name="Groq", exact=True)).to_be_visible()  # the connection, by its name
    page.get_by_role("option", name="Groq", exact=True).click()
    idle(page)
    page.keyboard.press("Escape")
    idle(page)
    say_hello_and_see_the_price(page, groq, REPLY, "Groq", MODEL, "groq")
    assert groq.sent_keys()[-1] == key and groq.requests[-1].body["model"] == MODEL
    idle(page)
    assert key not in page.content() and key[-8:] not in page.content()
    no_errors(page)


def test_an_azure_connection_chats_with_its_deployment_priced_as_azure(server, page, rt, resource):
    key = "0123456789abcdefPLAINTEXTazure9f8e"
    user = accounts.create_user(rt, Actor.operator(), "azura", "member password 1")
    add_connection(page, server, rt, user, "Azure OpenAI")
    expect(page.get_by_role("textbox", name="Name", exact=True)).to_have_value("Azure OpenAI")
    page.get_by_role("textbox", name="Endpoint", exact=True).fill(resource.base_url)  # the loopback resource
    expect(page.get_by_role("textbox", name="API version", exact=True)).to_have_value("")  # v1
    page.get_by_role("textbox", name="API key", exact=True).fill(key)
    page.get_by_role("button", name="Add connection").click()
    expect(page.get_by_text("Saved the Azure OpenAI key 012…9f8e and tested it: 1 model visible.")).to_be_visible()
    idle(page)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat", exact=True).click()
    idle(page)
    say_hello_and_see_the_price(page, resource, AZURE_REPLY, "Azure OpenAI", DEPLOYMENT, "azure")
    chat = resource.requests[-1]
    assert (chat.method, chat.path) == ("POST", "/openai/v1/chat/completions")
    assert chat.headers["api-key"] == key and "authorization" not in chat.headers
    assert chat.body["model"] == DEPLOYMENT
    idle(page)
    assert key not in page.content() and key[-8:] not in page.content()
    no_errors(page)

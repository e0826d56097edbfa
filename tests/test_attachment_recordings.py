"""Real recorded responses to calls with an image or a PDF (tests/recordings/attachments, with their
provenance in MANIFEST.json's "attachments"): the billed tokens read from each recorded usage object
by the adapter, the cost to 1e-9 USD at the published rates, the native part the app builds for the
same file, and a budget's worst case for the file that is never below what the provider billed."""

from __future__ import annotations

import json

import pytest
from replay import MANIFEST, RECORDINGS

from byok_core import attachments, pricing
from byok_core.adapters import chat_adapter
from byok_core.adapters.base import Reply
from byok_core.adapters.files import Attached, anthropic_content, openai_content
from byok_core.providers import Provider

ENTRIES = MANIFEST["attachments"]["files"]


def attached(entry: dict) -> Attached:
    """The file the recorded request carried: the kept PDF itself, or an image of the recorded size."""
    sent = entry["request"]["attached"]
    if "file" in sent:
        return attachments.check("filename.pdf", (RECORDINGS / sent["file"]).read_bytes())
    return Attached("image.png", sent["media_type"], b"", sent["width"], sent["height"])


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["file"])
def test_billed_tokens_and_cost_come_from_the_recorded_usage(entry):
    provider = Provider.parse(entry["provider"])
    body = json.loads((RECORDINGS / entry["file"]).read_text())
    reply = Reply()
    reply.usage_object = {"usage": body["usage"]}  # as the adapter keeps the usage a stream ends with
    chat_adapter(provider).read_usage(reply)
    assert reply.usage is not None
    billed = entry["billed"]
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (billed["input_tokens"], billed["output_tokens"])
    rates = entry["rates_usd_per_million"]
    by_hand = (billed["input_tokens"] * rates["input"] + billed["output_tokens"] * rates["output"]) / 1e6
    assert by_hand == pytest.approx(entry["cost_usd"], abs=1e-12)
    assert pricing.usage_cost(provider, entry["model"], reply.usage) == pytest.approx(entry["cost_usd"], abs=1e-9)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["file"])
def test_the_app_sends_the_recorded_native_part_and_its_worst_case_covers_what_was_billed(entry):
    provider, f = Provider.parse(entry["provider"]), attached(entry)
    prompt = entry["request"]["prompt"]
    if f.data:  # the very bytes sent: the part the app builds is the recorded one
        built = anthropic_content(prompt, [f])[0] if provider is Provider.ANTHROPIC else openai_content(prompt, [f])[1]
        shown = json.loads(json.dumps(built).replace(f.base64(), "<the PDF>"))
        assert shown == entry["request"]["part"]
    worst = attachments.file_tokens(provider, entry["model"], f) + pricing.prompt_tokens_bound([prompt])
    assert worst >= entry["billed"]["input_tokens"]  # a budget holding the worst case is never overrun


def test_openais_tile_rule_gives_the_recorded_image_tokens():
    [entry] = [e for e in ENTRIES if e["file"] == "attachments/openai-vision-gpt-4o.json"]
    image_tokens = attachments.image_tokens(Provider.OPENAI, "gpt-4o", 3008, 2000)
    assert image_tokens == 85 + 170 * 6
    text = entry["billed"]["input_tokens"] - image_tokens  # the rest is the prompt's text
    assert 0 < text <= pricing.prompt_tokens_bound([entry["request"]["prompt"]])

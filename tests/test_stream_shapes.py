"""Every provider's stream shape, read right (issue 20, item 3), replayed over loopback from real
recordings (tests/recordings, provenance in MANIFEST.json) through the `byok` command and through
the server-side reply worker the chat page uses: the text is always plain text, thinking is never
the reply, a refusal is the reply and says so, usage is read wherever the provider put it, and an
ending the person must know about (the output cap, a safety stop, a tool call) comes with plain words.

Shapes no real recording was found for (MANIFEST "not_found") are replayed from responses written
here, each marked ``written``: they show the words, not that a provider sends exactly these bytes."""

from __future__ import annotations

import json

import pytest
from apptest import make_user
from callhelpers import finished, runtime_with, usage_rows
from replay import KEY, PROVIDER, Recording, ReplayServer, base_env, recording, run_cli, written

from byok_core import conversations as convs
from byok_core import replies
from byok_core.adapters import CHAT_ADAPTERS
from byok_core.models import ReplyStatus
from byok_core.providers import Provider
from byok_core.startup import open_runtime

CAP = f"{CHAT_ADAPTERS[Provider.OPENAI].max_output_tokens:,}"


@pytest.fixture
def cli(environ, monkeypatch, capsys):
    return lambda rec: run_cli(rec, environ, monkeypatch, capsys)


def the_row(environ):
    rt = open_runtime(environ)
    try:
        [row] = usage_rows(rt)
    finally:
        rt.engine.dispose()
    return row


def notice_lines(err: str) -> list[str]:
    return [line.removeprefix("byok: ") for line in err.splitlines() if line.startswith("byok: ")]


def billed(rec: Recording) -> tuple[int, int]:
    return rec.entry["genai_prices"]["input_tokens"], rec.entry["genai_prices"]["output_tokens"]


def through_the_worker(environ, rec: Recording) -> convs.StoredMessage:
    """One reply written by the server-side worker (the chat page's path) from ``rec``, as stored."""
    provider = PROVIDER[rec.entry["provider"]]
    with ReplayServer(rec) as server, runtime_with(base_env(rec, server, environ)) as rt:
        ann = make_user(rt, "ann")
        conv = convs.create(rt, ann.id, "Shapes")
        reply_id = replies.send(rt, ann.id, conv.id, "hello", replies.Request(provider, rec.entry["request"]["model"]))
        stored = finished(rt, ann.id, reply_id)
        [row] = usage_rows(rt)
    assert (stored.record.input_tokens, stored.record.output_tokens) == (row.input_tokens, row.output_tokens)
    return stored


# --- Mistral: delta.content as a list of typed parts --------------------------------------------

MAGISTRAL = recording("mistral/stream-magistral-thinking-list-content.sse")


def magistral_thinking() -> str:
    """The text of the recording's thinking parts, read straight from its chunks."""
    said = []
    for line in MAGISTRAL.body.decode().splitlines():
        if line.startswith("data: {"):
            content = json.loads(line[6:])["choices"][0]["delta"].get("content")
            for part in content if isinstance(content, list) else ():
                said += [t["text"] for t in part["thinking"] if part["type"] == "thinking"]
    return "".join(said)


def test_magistral_list_content_prints_the_answer_not_the_thinking(cli, environ):
    thinking = magistral_thinking()
    assert thinking.startswith("Okay, the user is asking how to cross the street.")
    code, out, err, _ = cli(MAGISTRAL)
    assert code == 0 and "unexpected" not in err.lower() and "TypeError" not in err
    assert out == MAGISTRAL.entry["text"] + "\n" and out.startswith("To cross the street safely")
    assert thinking[:40] not in out and "the user is asking" not in out
    assert notice_lines(err) == []
    row = the_row(environ)
    assert (row.status, row.input_tokens, row.output_tokens) == ("ok", *billed(MAGISTRAL)) == ("ok", 10, 232)


def test_magistral_list_content_through_the_worker(environ):
    stored = through_the_worker(environ, MAGISTRAL)
    assert (stored.status, stored.content, stored.notice) == (ReplyStatus.DONE, MAGISTRAL.entry["text"], None)
    assert (stored.record.input_tokens, stored.record.output_tokens) == (10, 232)


# --- OpenAI: delta.refusal with content null ---------------------------------------------------

REFUSAL = recording("openai/stream-refusal-gpt-4o.sse")


def test_a_refusal_is_the_reply_and_says_so(cli, environ):
    code, out, err, _ = cli(REFUSAL)
    assert code == 0 and out == "I'm sorry, I can't assist with that request.\n"
    assert notice_lines(err) == ["The model refused this request; the reply above is its refusal."]
    row = the_row(environ)
    # the provider billed it, so its cost is kept; the call itself worked
    assert (row.status, row.input_tokens, row.output_tokens) == ("ok", 79, 11)
    assert row.cost_usd == pytest.approx(float(REFUSAL.entry["genai_prices"]["price"]["total_price"]), abs=1e-9)


def test_a_refusal_through_the_worker_is_kept_as_one(environ):
    stored = through_the_worker(environ, REFUSAL)
    assert (stored.status, stored.content) == (ReplyStatus.DONE, "I'm sorry, I can't assist with that request.")
    assert stored.refusal and stored.notice.startswith("The model refused")
    assert stored.record.notice_kind == "refusal" and stored.record.cost_usd is not None


# --- Groq: usage only in x_groq.usage; a tool call and no text ---------------------------------

GROQ = recording("groq/stream-x-groq-usage-gpt-oss-120b.sse")
GROQ_TOOL = recording("groq/stream-tool-call-x-groq-usage-gpt-oss-120b.sse")


def test_groq_usage_only_in_x_groq_is_read(cli, environ):
    assert b'"usage"' not in GROQ.body.replace(b'"x_groq":{"id":"req_01k464zq05fc8a5941vp8bgwtg","usage"', b"")
    code, out, err, _ = cli(GROQ)
    assert code == 0 and out == 'The tool call succeeded with the name "test_name".\n' and notice_lines(err) == []
    row = the_row(environ)
    assert (row.input_tokens, row.output_tokens) == billed(GROQ) == (320, 15)


def test_a_tool_call_instead_of_an_answer_says_so(cli, environ):
    code, out, err, _ = cli(GROQ_TOOL)
    assert (code, out) == (0, "")
    [notice] = notice_lines(err)
    assert "asked to use a tool (get_something_by_name)" in notice and "offers no tools" in notice
    assert "We need" not in out + err  # its reasoning is not shown
    row = the_row(environ)
    assert (row.status, row.input_tokens, row.output_tokens) == ("ok", 283, 43)


def test_the_openai_tool_call_recording_says_so_too(cli, environ):
    code, out, err, _ = cli(recording("openai/stream-tool-call-gpt-4o-mini.sse"))
    assert (code, out) == (0, "") and len(notice_lines(err)) == 1 and "asked to use a tool (" in err


# --- the output cap ----------------------------------------------------------------------------

LENGTH = recording("openai/stream-length-gpt-4o.sse")


def test_text_cut_at_the_output_cap_says_so(cli, environ):
    code, out, err, _ = cli(LENGTH)
    assert (code, out) == (0, '{"\n')
    assert notice_lines(err) == [f"The reply stopped at the output cap of {CAP} tokens (length); "
                                 "ask the model to continue."]
    assert (the_row(environ).input_tokens, the_row(environ).output_tokens) == (79, 1)


def openai_chunks(*chunks: dict) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


# written (no real recording: MANIFEST not_found "openai_reasoning_stream_all_output_thinking_finish_length")
SPENT_THINKING = written("openrouter", "deepseek/deepseek-r1", openai_chunks(
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "reasoning": "Let me think"}}]},
    {"choices": [{"index": 0, "delta": {"content": None, "reasoning": " about it"}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
    {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 8192,
                              "completion_tokens_details": {"reasoning_tokens": 8192}}}))


def test_a_cap_spent_thinking_says_what_happened_and_how_to_fix_it(cli, environ):
    code, out, err, _ = cli(SPENT_THINKING)
    assert (code, out) == (0, "")
    [notice] = notice_lines(err)
    assert f"whole output cap of {CAP} tokens, 8,192 of them thinking" in notice
    assert "Lower its reasoning effort" in notice and "still billed" in notice
    assert "Let me think" not in out + err
    row = the_row(environ)
    assert (row.status, row.input_tokens, row.output_tokens, row.reasoning_tokens) == ("ok", 12, 8192, 8192)


def test_a_cap_spent_thinking_through_the_worker(environ):
    stored = through_the_worker(environ, SPENT_THINKING)
    assert (stored.status, stored.content, stored.record.notice_kind) == (ReplyStatus.DONE, "", "output_cap")
    assert "8,192 of them thinking" in stored.notice and not stored.refusal


# --- Gemini: thought parts, a blocked prompt, safety and the cap -------------------------------

THOUGHTS = recording("google/stream-thought-parts-gemini-2.5-pro.sse")
BLOCKED = recording("google/stream-prompt-blocked-gemini-3.7-flash.sse")


def test_gemini_thought_parts_are_not_the_answer(cli, environ):
    code, out, err, _ = cli(THOUGHTS)
    assert code == 0 and out == THOUGHTS.entry["text"] + "\n" and out.startswith("This is a great question!")
    assert "**Clarifying User Goals**" in THOUGHTS.body.decode() and "Clarifying User Goals" not in out
    assert notice_lines(err) == []
    row = the_row(environ)
    assert (row.input_tokens, row.output_tokens, row.reasoning_tokens) == (34, 1256, 787)


def test_a_blocked_gemini_prompt_says_so_and_keeps_its_usage(cli, environ):
    code, out, err, _ = cli(BLOCKED)
    assert (code, out) == (1, "")
    assert "Google Gemini blocked the prompt (PROHIBITED_CONTENT); rephrase it and try again." in err
    row = the_row(environ)
    assert (row.status, row.input_tokens, row.output_tokens) == ("bad_request", 9, 0)


def gemini_chunks(*chunks: dict) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks)


USAGE = {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 10}
# written (no real recording: MANIFEST not_found "gemini_stream_finish_max_tokens_or_safety")
GEMINI_SAFETY = written("google", "gemini-2.5-flash", gemini_chunks(
    {"candidates": [{"content": {"parts": [{"text": "Here is how"}], "role": "model"}, "index": 0}],
     "usageMetadata": USAGE},
    {"candidates": [{"finishReason": "SAFETY", "index": 0}], "usageMetadata": USAGE}))
GEMINI_THOUGHT_CAP = written("google", "gemini-2.5-flash", gemini_chunks(
    {"candidates": [{"content": {"parts": [{"text": "**Planning**", "thought": True}], "role": "model"},
                     "finishReason": "MAX_TOKENS", "index": 0}],
     "usageMetadata": {"promptTokenCount": 7, "thoughtsTokenCount": 8192, "totalTokenCount": 8199}}))


def test_a_gemini_safety_stop_says_so(cli, environ):
    code, out, err, _ = cli(GEMINI_SAFETY)
    assert (code, out) == (0, "Here is how\n")
    assert notice_lines(err) == ["Google Gemini's safety filter stopped the reply (SAFETY); the text before it is "
                                 "kept. Rephrase the request and try again."]
    assert (the_row(environ).input_tokens, the_row(environ).output_tokens) == (7, 3)


def test_a_gemini_cap_spent_thinking_says_so(cli, environ):
    code, out, err, _ = cli(GEMINI_THOUGHT_CAP)
    assert (code, out) == (0, "")
    [notice] = notice_lines(err)
    gemini_cap = f"{CHAT_ADAPTERS[Provider.GOOGLE].max_output_tokens:,}"
    assert f"whole output cap of {gemini_cap} tokens, 8,192 of them thinking" in notice and "Planning" not in notice
    assert (the_row(environ).output_tokens, the_row(environ).reasoning_tokens) == (8192, 8192)


# --- Anthropic: redacted thinking, citations; refusal and the cap --------------------------------

REDACTED = recording("anthropic/stream-redacted-thinking-claude-sonnet-4-5.sse")


def test_anthropic_redacted_thinking_is_not_the_answer(cli, environ):
    code, out, err, _ = cli(REDACTED)
    assert code == 0 and out == REDACTED.entry["text"] + "\n" and notice_lines(err) == []
    assert b'"type":"redacted_thinking"' in REDACTED.body
    assert (the_row(environ).input_tokens, the_row(environ).output_tokens) == billed(REDACTED)


def test_anthropic_citations_deltas_leave_the_text_whole(cli, environ):
    cited = recording("anthropic/stream-web-search-claude-3-5-sonnet.sse")
    assert b"citations_delta" in cited.body
    code, out, err, _ = cli(cited)
    assert code == 0 and out == cited.entry["text"] + "\n" and notice_lines(err) == []


def anthropic_events(stop_reason: str, text: str) -> bytes:
    events = [("message_start", {"type": "message_start", "message": {
        "id": "msg_written", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
        "usage": {"input_tokens": 20, "output_tokens": 1}}})]
    if text:
        events += [("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}}),
                   ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": text}}),
                   ("content_block_stop", {"type": "content_block_stop", "index": 0})]
    events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason},
                                  "usage": {"output_tokens": 5}}),
               ("message_stop", {"type": "message_stop"})]
    return b"".join(f"event: {name}\ndata: {json.dumps(body)}\n\n".encode() for name, body in events)


# written (no real recording: MANIFEST not_found "anthropic_stream_stop_reason_refusal_or_max_tokens")
@pytest.mark.parametrize(("stop_reason", "text", "words"), [
    ("refusal", "", "The model refused this request and wrote nothing more."),
    ("refusal", "I can't help with that.", "The model refused this request; the reply above is its refusal."),
    ("max_tokens", "Part one", "The reply stopped at the output cap of 4,096 tokens (max_tokens); "
                               "ask the model to continue."),
])
def test_anthropic_stop_reasons_say_so(cli, environ, stop_reason, text, words):
    code, out, err, _ = cli(written("anthropic", "claude-sonnet-4-5", anthropic_events(stop_reason, text)))
    assert (code, out, notice_lines(err)) == (0, text + "\n" if text else "", [words])
    assert (the_row(environ).input_tokens, the_row(environ).output_tokens) == (20, 5)


def test_the_key_never_shows(cli):
    _, out, err, _ = cli(REFUSAL)
    assert KEY not in out + err

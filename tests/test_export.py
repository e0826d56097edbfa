"""The Markdown export of a conversation (conversations.to_markdown), rendered by a CommonMark
parser with raw HTML on, as a viewer that loads images would: nothing in it loads, and no link
comes from text a provider, a search result or a person planted; the text itself stays readable."""

from __future__ import annotations

import re

import sqlalchemy as sa
from apptest import make_user
from markdown_it import MarkdownIt

from byok_core import conversations as convs
from byok_core.adapters.base import ChatParams, SearchResult
from byok_core.identity import KeySource
from byok_core.models import Message, ReplyStatus, table
from byok_core.presets import Settings
from byok_core.providers import Provider
from byok_core.record import CallRecord

IMG = "![e](http://127.0.0.1:9/e1?q=secret)"
HTML = '<img src="http://127.0.0.1:9/e2"> <iframe src="http://127.0.0.1:9/e3"></iframe>'
REPLY = (f"Here is the answer {IMG} and {HTML}, also \\<img src=http://127.0.0.1:9/e4> and "
         "<http://127.0.0.1:9/autolink>. See [the docs](https://docs.example/guide).\n\n"
         "```python\nif a < b and not c:\n    print(a)\n```\n")
PLANTED = [
    SearchResult("![img](http://127.0.0.1:9/s1)", "https://ok.example/one", "", Provider.BRAVE, 1),
    SearchResult("Two](http://evil.example/) [x", "https://ok.example/two)![a](http://127.0.0.1:9/s2", "",
                 Provider.BRAVE, 2),
    SearchResult("t\n\n[r]: http://127.0.0.1:9/s3\n\n![a][r]", "javascript:alert(1)", "", Provider.BRAVE, 3),
    SearchResult("<img src=http://127.0.0.1:9/s4>", "https://ok.example/<img src=http://127.0.0.1:9/s5>", "",
                 Provider.BRAVE, 4),
]


def _export(rt) -> str:
    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id, f"Plans {IMG} <img src=http://127.0.0.1:9/t1>",
                        settings=Settings(f"Answer briefly.\n\nNever {IMG} <img src=http://127.0.0.1:9/p1>",
                                          ChatParams(temperature=0.2)))
    convs.add_message(rt, ann.id, conv.id, "user", f"Show me {IMG}")
    record = CallRecord(Provider.OPENAI, KeySource.USER, f"gpt-x{IMG}", 10, 5)
    convs.add_message(rt, ann.id, conv.id, "assistant", REPLY, convs.reply_meta(record, PLANTED))
    failed = convs.add_message(rt, ann.id, conv.id, "assistant", "", convs.reply_meta(
        None, error=f"OpenAI said: {IMG} <img src=http://127.0.0.1:9/f1>"))
    with rt.engine.begin() as conn:
        conn.execute(sa.update(table(Message)).where(table(Message).c.id == failed.id)
                     .values(status=ReplyStatus.FAILED))
    return convs.to_markdown(rt, ann.id, conv.id)


def test_the_export_loads_nothing_and_links_only_what_the_reply_and_sources_named(rt):
    html = MarkdownIt("commonmark").render(_export(rt))
    assert "<img" not in html and "<iframe" not in html, html
    assert sorted(re.findall(r'href="([^"]*)"', html)) == [
        "https://docs.example/guide",  # the reply's own link: a click, as on the page
        "https://ok.example/one",
        "https://ok.example/two%29!%5Ba%5D%28http://127.0.0.1:9/s2",
    ]  # not the planted autolink, reference, javascript: or the URL with a space in it


def test_the_export_stays_readable(rt):
    exported = _export(rt)
    html = MarkdownIt("commonmark").render(exported)
    assert exported.splitlines()[0].startswith("# Plans ")  # the title is one heading line
    assert html.count("<h1>") == 1 and "<h2>You · " in html and "<h2>OpenAI gpt-x" in html
    # what was planted is shown as the text it is
    # title, system prompt, prompt, model, reply, failure
    assert html.count("![e](http://127.0.0.1:9/e1?q=secret)") == 6
    assert "Settings: system prompt · temperature 0.2." in html and "<blockquote>\n<p>Answer briefly.</p>" in html
    assert "&lt;img src=&quot;http://127.0.0.1:9/e2&quot;&gt;" in html
    assert "<li>![img](http://127.0.0.1:9/s1)</li>" not in html  # a source with a link stays a link
    assert '<a href="https://ok.example/one">![img](http://127.0.0.1:9/s1)</a>' in html
    assert "if a &lt; b and not c:" in html  # code keeps its text
    assert "Failed: OpenAI said:" in html

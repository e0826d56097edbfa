"""Markdown from text that came from outside (providers, people, the database), for the pages and
the Markdown export: shown as text, never read as Markdown, so it cannot make a browser or a viewer
load an image (which sends its URL, conversation content included, with no click)."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from byok_core.adapters.base import SearchResult

_MD_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+!|<>~$:@]|(?<=www)\.", re.IGNORECASE)
# a "<" that could open raw HTML (a tag, a comment, a declaration) and is not escaped already
_HTML_START = re.compile(r"(?<!\\)((?:\\\\)*)<(?=[A-Za-z/!?])")
_URL_SAFE = "/:?#@!$&'*+,;=%~-._"  # URL characters markdown reads as text inside a link; the rest is %-encoded


def md_escape(text: str | None) -> str:
    """``text`` as Markdown that shows exactly that text: every character Markdown could read is
    backslash-escaped (images, links, emphasis, HTML, maths, Streamlit's ``:icon:`` and
    ``:color[...]``), and so are the ``:``, ``@`` and ``www.`` that GitHub-flavoured Markdown turns
    into links by themselves (``http://``, ``a@b.example``)."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text or "")


def md_line(text: str | None) -> str:
    """``md_escape`` on one line: runs of whitespace, line breaks included, become one space, so the
    text cannot start a block of its own (a heading's title, a list item's)."""
    return md_escape(" ".join((text or "").split()))


def no_images(text: str | None) -> str:
    """Markdown with every image (``![alt](url)``, ``![alt][ref]``) turned into plain text.

    A reply steered by a planted web page could otherwise make the browser fetch a URL carrying
    conversation content, with no click. Links stay: they need a click."""
    return (text or "").replace("![", "!\\[")


def inert(text: str | None) -> str:
    """``no_images`` for a Markdown file, whose viewer may also render raw HTML (``<img>``,
    ``<iframe>``, styles): a ``<`` that could open a tag is escaped too. Inside code the escape
    shows as a backslash; the Streamlit pages, which never render raw HTML, need only ``no_images``."""
    return _HTML_START.sub(r"\1\\<", no_images(text))


def _link_target(url: str) -> str | None:
    """``url`` as a Markdown link target: only an http(s) URL without spaces or control characters,
    every character Markdown could read (brackets, parentheses, angle brackets, quotes)
    percent-encoded; None for anything else."""
    url = url.strip()
    if urlsplit(url).scheme.lower() not in {"http", "https"} or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    return quote(url, safe=_URL_SAFE)


def source_line(source: SearchResult) -> str:
    """One source as markdown from provider data that is never read as markdown: the title as
    escaped plain text on one line, linked only to its http(s) URL (``_link_target``), then the
    site's name, so no planted image, reference definition or HTML."""
    title = md_line(source.title or source.url)
    target = _link_target(source.url)
    site = (urlsplit(source.url.strip()).hostname or "").removeprefix("www.")
    return (f"[{title}]({target})" if target else title) + (f" · {md_escape(site)}" if target and site else "")


_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_CITATION = re.compile(r"(?<![\\!\]])\[(\d{1,3})\](?![(\[:])")


def cite(text: str, sources: list[SearchResult]) -> str:
    """A web-search reply's Markdown with each ``[n]`` outside code linked to source n (by its
    rank, the number the model was given), through ``_link_target``; everything else unchanged."""
    targets = {s.rank: _link_target(s.url) for s in sources}
    if not any(targets.values()):
        return text

    def link(found: re.Match[str]) -> str:
        target = targets.get(int(found.group(1)))
        return f"[\\[{found.group(1)}\\]]({target})" if target else found.group(0)

    out, last = [], 0
    for code in _CODE.finditer(text):
        out += [_CITATION.sub(link, text[last:code.start()]), code.group(0)]
        last = code.end()
    return "".join([*out, _CITATION.sub(link, text[last:])])

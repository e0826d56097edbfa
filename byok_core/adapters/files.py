"""Files sent with a prompt, in each provider's native content parts, built here once for all adapters.

OpenAI (and OpenAI-compatible endpoints): ``image_url`` parts holding a data URL, and ``file`` parts
holding a PDF as ``file_data`` (a base64 data URL) with its ``filename``. Anthropic: ``image`` and
``document`` blocks with a base64 ``source``, before the text (as Anthropic advises). Gemini:
``inline_data`` parts (``mime_type`` + base64 ``data``), before the text. A prompt without files
keeps the plain string content every provider also takes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PDF = "application/pdf"


@dataclass(frozen=True)
class Attached:
    """A checked image or PDF (``attachments.check``): what is sent, and what its worst case is made of."""

    name: str
    media_type: str
    data: bytes = field(repr=False)  # never in a repr, so never in a log or an error
    width: int = 0
    height: int = 0
    pages: int = 0
    text_bytes: int = 0

    @property
    def is_pdf(self) -> bool:
        return self.media_type == PDF

    @property
    def kind(self) -> str:
        """"PDF" or "image", for messages."""
        return "PDF" if self.is_pdf else "image"

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.base64()}"


def kinds(files: Sequence[Attached]) -> str:
    """What ``files`` are, in words: "images", "a PDF", "images and PDFs" ("" for none)."""
    pdfs, images = sum(f.is_pdf for f in files), sum(not f.is_pdf for f in files)
    said = [word for count, one, many in ((images, "an image", "images"), (pdfs, "a PDF", "PDFs")) if count
            for word in [one if count == 1 else many]]
    return " and ".join(said)


def openai_content(text: str, files: Sequence[Attached]) -> str | list[dict[str, Any]]:
    """A Chat Completions message's content: the text, then an ``image_url`` or ``file`` part per file."""
    if not files:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for f in files:
        parts.append({"type": "file", "file": {"filename": f.name, "file_data": f.data_url()}} if f.is_pdf
                     else {"type": "image_url", "image_url": {"url": f.data_url()}})
    return parts


def anthropic_content(text: str, files: Sequence[Attached]) -> str | list[dict[str, Any]]:
    """A Messages API message's content: an ``image`` or ``document`` block per file, then the text."""
    if not files:
        return text
    blocks: list[dict[str, Any]] = [
        {"type": "document" if f.is_pdf else "image",
         "source": {"type": "base64", "media_type": f.media_type, "data": f.base64()}} for f in files]
    return [*blocks, {"type": "text", "text": text}] if text else blocks


def gemini_parts(text: str, files: Sequence[Attached]) -> list[dict[str, Any]]:
    """A Gemini content's parts: an ``inline_data`` part per file, then the text."""
    parts: list[dict[str, Any]] = [{"inline_data": {"mime_type": f.media_type, "data": f.base64()}} for f in files]
    return [*parts, {"text": text}] if text or not parts else parts

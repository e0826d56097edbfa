"""Images and PDFs sent with a prompt: checked, limited, counted in a budget's worst case, and kept
per user with their message.

Checks read the file itself, never its name: an image must open as PNG, JPEG, WebP or GIF (Pillow),
a PDF must open, unlocked, with at most MAX_PAGES pages (pypdf). Limits: MAX_FILE_MB per file,
MAX_MESSAGE_MB and MAX_FILES per message.

Worst case (``worst_tokens``), by each provider's documented rule, rounded up; a budgeted shared
key reserves it before the call, so attachments cannot overrun a budget:

* OpenAI: an image is scaled to fit 2048 x 2048, then its short side to 768 (scaled up too, to be
  safe), and costs 85 + 170 per 512-pixel tile (gpt-4o-mini: 2,833 + 5,667 per tile); the models
  billed by 32-pixel patches (gpt-4.1-mini/nano, gpt-5-mini/nano, o4-mini) cost at most 1,536
  patches times the model's multiplier. A PDF sends each page's text and an image of it.
* Anthropic: width x height / 750 tokens, after scaling the long side to 1,568. A PDF page is its
  text plus an image of the page.
* Gemini: 258 tokens per image up to 384 x 384, else 258 per 768 x 768 tile; 258 per PDF page
  (Gemini 3: 1,120 per image, 560 per page), plus the page's text.
* OpenAI-compatible: the larger of OpenAI's and Anthropic's rule (the endpoint's is not known).

A PDF page's image is counted as a 2,048 x 2,048 square at the provider's image rule, and its text
as one token per UTF-8 byte (``pricing.prompt_tokens_bound``'s rule).

Storage: ``add`` and ``copy`` run in the caller's transaction (the prompt's); every read takes the
acting user and checks the owner in the query: someone else's attachment looks missing."""

from __future__ import annotations

import io
import logging
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from byok_core.adapters.files import PDF, Attached
from byok_core.clock import utcnow
from byok_core.errors import NotFoundError, ValidationError
from byok_core.models import Attachment, table
from byok_core.providers import Provider
from byok_core.runtime import Runtime

log = logging.getLogger(__name__)

MAX_FILE_MB = 5
MAX_MESSAGE_MB = 10
MAX_FILES = 5
MAX_PAGES = 30
MAX_SIDE = 8000  # pixels: Anthropic refuses larger images
MB = 1024 * 1024
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
FILE_TYPES = ("png", "jpg", "jpeg", "webp", "gif", "pdf")  # what the message box offers to attach
LIMITS = (f"Attach up to {MAX_FILES} images (PNG, JPEG, WebP, GIF) or PDFs per message: at most {MAX_FILE_MB} MB "
          f"each and {MAX_MESSAGE_MB} MB together, a PDF at most {MAX_PAGES} pages.")
FILE_OVERHEAD_TOKENS = 16  # the markers around each file part, generously
_A = table(Attachment)


@dataclass(frozen=True)
class AttachmentInfo:
    """What is shown of a kept attachment (its bytes are read only when needed)."""

    id: int
    name: str
    media_type: str
    size_bytes: int
    width: int = 0
    height: int = 0
    pages: int = 0

    @property
    def is_pdf(self) -> bool:
        return self.media_type == PDF

    def describe(self) -> str:
        """"report.pdf (PDF, 3 pages, 1.2 MB)", "photo.png (image, 800 x 600, 95 KB)"."""
        size = f"{self.size_bytes / MB:.1f} MB" if self.size_bytes >= MB else f"{math.ceil(self.size_bytes / 1024)} KB"
        what = (f"PDF, {self.pages} page{'s' * (self.pages != 1)}" if self.is_pdf
                else f"image, {self.width} x {self.height}")
        return f"{self.name} ({what}, {size})"


# --- checking what was uploaded -----------------------------------------------------------------


def _name(name: str) -> str:
    """A file name safe to keep and show: its last path part, printable, at most 200 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip() or "file"
    return base if len(base) <= 200 else base[:199] + "…"


def check(name: str, data: bytes) -> Attached:
    """The file as it will be sent, or ValidationError saying what is wrong with it."""
    name = _name(name)
    if len(data) > MAX_FILE_MB * MB:
        raise ValidationError(f"{name} is {len(data) / MB:.1f} MB; files can be at most {MAX_FILE_MB} MB each. "
                              "Attach a smaller file (or a few pages of it).")
    if not data:
        raise ValidationError(f"{name} is empty; attach the file again.")
    if data.startswith(b"%PDF-"):
        return _pdf(name, data)
    return _image(name, data)


def _image(name: str, data: bytes) -> Attached:
    from PIL import Image, UnidentifiedImageError  # loaded only when a file is attached

    not_image = (f"{name} is not an image or a PDF this app can send; attach a PNG, JPEG, WebP or GIF image, "
                 "or a PDF.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
                image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError, OSError,
            SyntaxError, ValueError):
        raise ValidationError(not_image) from None
    if fmt not in IMAGE_FORMATS:
        raise ValidationError(not_image)
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValidationError(f"{name} is {width} x {height} pixels; images can be at most {MAX_SIDE} pixels on "
                              "each side. Attach a smaller copy.")
    return Attached(name, IMAGE_FORMATS[fmt], data, width=width, height=height)


def _pdf(name: str, data: bytes) -> Attached:
    from pypdf import PdfReader  # loaded only when a PDF is attached
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd files never reach the log
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ValidationError(f"{name} is locked with a password; attach a copy without one.")
        pages = len(reader.pages)
        if pages > MAX_PAGES:
            raise ValidationError(f"{name} has {pages} pages; a PDF can have at most {MAX_PAGES}. Attach the pages "
                                  "that matter.")
        text_bytes = sum(len((page.extract_text() or "").encode()) for page in reader.pages)
    except ValidationError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError):
        raise ValidationError(f"{name} could not be read as a PDF (it may be damaged); open it and save or "
                              "export it again, then attach the copy.") from None
    if pages == 0:
        raise ValidationError(f"{name} has no pages; attach another PDF.")
    return Attached(name, PDF, data, pages=pages, text_bytes=text_bytes)


def check_all(files: Iterable[tuple[str, bytes]]) -> tuple[Attached, ...]:
    """Each (name, bytes) checked, and the message's limits: ValidationError says which is wrong."""
    files = list(files)
    if len(files) > MAX_FILES:
        raise ValidationError(f"That is {len(files)} files; a message can have at most {MAX_FILES}. Send the rest in "
                              "another message.")
    checked = tuple(check(name, data) for name, data in files)
    return check_message(checked)


def usable(files: Iterable[tuple[str, bytes]]) -> list[str]:
    """The names of the files that pass ``check`` (the ones worth attaching again)."""
    names = []
    for name, data in files:
        try:
            names.append(check(name, data).name)
        except ValidationError:
            continue
    return names


def check_message(files: Sequence[Attached]) -> tuple[Attached, ...]:
    """``files`` if one message may carry them (count and total size)."""
    total = sum(len(f.data) for f in files)
    if len(files) > MAX_FILES:
        raise ValidationError(f"A message can have at most {MAX_FILES} files.")
    if total > MAX_MESSAGE_MB * MB:
        raise ValidationError(f"These files are {total / MB:.1f} MB together; a message can carry at most "
                              f"{MAX_MESSAGE_MB} MB. Send some of them in another message.")
    return tuple(files)


# --- the worst case of sending them ------------------------------------------------------------

_OPENAI_PATCHES = ((re.compile(r"gpt-4\.1-nano|gpt-5[.\d]*-nano"), 2.46),
                   (re.compile(r"gpt-4\.1-mini|gpt-5[.\d]*-mini"), 1.62), (re.compile(r"o4-mini"), 1.72))
_PAGE_SIDE = 2048  # a PDF page's image is counted as this square


def _fit(width: int, height: int, longest: int) -> tuple[float, float]:
    scale = min(1.0, longest / max(width, height, 1))
    return width * scale, height * scale


def _openai_image(model: str, width: int, height: int) -> int:
    for pattern, multiplier in _OPENAI_PATCHES:
        if pattern.search(model):
            return math.ceil(min(math.ceil(width / 32) * math.ceil(height / 32), 1536) * multiplier)
    w, h = _fit(width, height, 2048)
    short = min(w, h) or 1
    w, h = w * 768 / short, h * 768 / short
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    base, per_tile = (2833, 5667) if re.search(r"gpt-4o-mini", model) else (85, 170)
    return base + per_tile * tiles


def _anthropic_image(width: int, height: int) -> int:
    w, h = _fit(width, height, 1568)
    return math.ceil(math.ceil(w) * math.ceil(h) / 750)


def _gemini_3(model: str) -> bool:
    return bool(re.search(r"gemini-3", model))


def _gemini_image(model: str, width: int, height: int) -> int:
    if _gemini_3(model):
        return 1120
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def image_tokens(provider: Provider, model: str, width: int, height: int) -> int:
    """At most how many input tokens an image of this size costs on ``provider``'s ``model``."""
    if provider is Provider.OPENAI:
        return _openai_image(model, width, height)
    if provider is Provider.ANTHROPIC:
        return _anthropic_image(width, height)
    if provider is Provider.GOOGLE:
        return _gemini_image(model, width, height)
    return max(_openai_image("", width, height), _anthropic_image(width, height))


def page_tokens(provider: Provider, model: str) -> int:
    """At most how many input tokens a PDF page costs besides its text: the image of the page."""
    if provider is Provider.GOOGLE:
        return 560 if _gemini_3(model) else 258
    return image_tokens(provider, model, _PAGE_SIDE, _PAGE_SIDE)


def file_tokens(provider: Provider, model: str, f: Attached) -> int:
    """At most how many input tokens one file costs."""
    if f.is_pdf:
        return f.pages * page_tokens(provider, model) + f.text_bytes + FILE_OVERHEAD_TOKENS
    return image_tokens(provider, model, f.width, f.height) + FILE_OVERHEAD_TOKENS


def worst_tokens(provider: Provider, model: str, files: Iterable[Attached]) -> int:
    """At most how many input tokens ``files`` add to a prompt."""
    return sum(file_tokens(provider, model, f) for f in files)


# --- kept with their message ---------------------------------------------------------------------

_INFO = (_A.c.id, _A.c.name, _A.c.media_type, _A.c.size_bytes, _A.c.width, _A.c.height, _A.c.pages)


def info_columns() -> tuple[sa.Column[object], ...]:
    """The columns an ``AttachmentInfo`` is made of, in its order (for a query that joins messages)."""
    return _INFO


def info_of(row: Sequence[object]) -> AttachmentInfo:
    return AttachmentInfo(*row)  # type: ignore[arg-type]


def add(conn: sa.Connection, user_id: int, conversation_id: int, message_id: int, files: Sequence[Attached]) -> None:
    """In ``conn``'s transaction: keep ``files`` with the prompt ``message_id``."""
    if files:
        now = utcnow()
        conn.execute(sa.insert(_A), [
            {"user_id": user_id, "conversation_id": conversation_id, "message_id": message_id, "name": f.name,
             "media_type": f.media_type, "size_bytes": len(f.data), "width": f.width, "height": f.height,
             "pages": f.pages, "text_bytes": f.text_bytes, "data": f.data, "created_at": now} for f in files])


def copy(conn: sa.Connection, user_id: int, from_message_id: int, to_message_id: int) -> None:
    """In ``conn``'s transaction: the user's files of one prompt kept with another too (an edit keeps them)."""
    columns = ("user_id", "conversation_id", "name", "media_type", "size_bytes", "width", "height", "pages",
               "text_bytes", "data", "created_at")
    chosen = sa.select(*(_A.c[c] for c in columns), sa.literal(to_message_id)).where(
        _A.c.message_id == from_message_id, _A.c.user_id == user_id).order_by(_A.c.id)
    conn.execute(sa.insert(_A).from_select([*columns, "message_id"], chosen))


def contents(rt: Runtime, user_id: int, ids: Iterable[int]) -> dict[int, Attached]:
    """The user's attachments ``ids`` as they are sent (one statement; none when there are no ids)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(_A.c.id, _A.c.name, _A.c.media_type, _A.c.data, _A.c.width, _A.c.height,
                                      _A.c.pages, _A.c.text_bytes)
                            .where(_A.c.id.in_(ids), _A.c.user_id == user_id)).all()
    return {row.id: Attached(row.name, row.media_type, bytes(row.data), row.width, row.height, row.pages,
                             row.text_bytes) for row in rows}


def get(rt: Runtime, user_id: int, attachment_id: int) -> tuple[AttachmentInfo, bytes]:
    """One of the user's attachments and its bytes; someone else's looks missing (NotFoundError)."""
    with rt.engine.connect() as conn:
        row = conn.execute(sa.select(*_INFO, _A.c.data).where(_A.c.id == attachment_id, _A.c.user_id == user_id)
                           ).first()
    if row is None:
        raise NotFoundError("No such attachment.")
    return info_of(tuple(row)[:-1]), bytes(row.data)


def delete_for(conn: sa.Connection, conversation_id: int) -> None:
    """In ``conn``'s transaction: every file kept with the conversation."""
    conn.execute(sa.delete(_A).where(_A.c.conversation_id == conversation_id))

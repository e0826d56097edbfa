"""CSV cells a spreadsheet shows as written: the usage and audit exports share them."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: empty for unknown, and text that could start a formula
    (``=``, ``+``, ``-``, ``@``, tab, CR; OWASP's CSV injection) behind a quote. Numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value

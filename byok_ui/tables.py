"""Tables whose money columns sort by amount: each such column holds numbers (in the display
currency, MISSING where there is no amount), and a pandas Styler writes them as every other figure
on the page is written (``currency.money``), so the browser sorts by the numbers underneath."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from byok_core import currency

MISSING = -math.inf  # no amount (not priced, no budget): a number, so it sorts lowest, written in words


def amounts(usd: Iterable[float | None], cur: currency.Currency) -> list[float]:
    """USD amounts as a money column holds them: in ``cur`` to six significant digits (what the grid's
    accessible cells read: 2.3, not 2.3000000000000003), MISSING for None (or NaN)."""
    return [MISSING if v is None or v != v else float(f"{v * cur.per_usd:.6g}") for v in usd]


def written(frame: pd.DataFrame, cur: currency.Currency, columns: dict[str, tuple[bool, str]]) -> pd.DataFrame | Styler:
    """``frame`` with its money ``columns`` (heading → (whole, the word for MISSING)) written in ``cur``."""
    present = {heading: how for heading, how in columns.items() if heading in frame}
    if not present:
        return frame

    def writer(whole: bool, unknown: str) -> Any:
        def write(amount: Any) -> str:  # a float of the column (pandas types a formatter's value as object)
            usd = None if amount == MISSING else amount / cur.per_usd
            return currency.money(usd, whole=whole, unknown=unknown, currency=cur)
        return write

    return frame.style.format({heading: writer(*how) for heading, how in present.items()})

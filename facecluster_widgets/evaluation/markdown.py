"""One Markdown table writer for every report (``facecluster evaluate``, the benchmarks), without ``tabulate``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]],
                   cell: Callable[[object], str] = str) -> str:
    """A pipe table: ``header`` then one line per row, each value written by ``cell``."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def number_cell(value: object, digits: int = 3) -> str:
    """Floats to ``digits`` decimals and NaN as "—" (a score that does not exist); anything else as ``str``."""
    if isinstance(value, float | np.floating):
        return "—" if np.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def frame_table(frame: pd.DataFrame, digits: int = 3, index: bool = True) -> str:
    """:func:`markdown_table` of a DataFrame (its index as the first column unless ``index=False``)."""
    frame = frame.reset_index() if index else frame
    return markdown_table(list(frame.columns), frame.itertuples(index=False), lambda v: number_cell(v, digits))

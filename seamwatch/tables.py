"""Plain-text tables of the CLI listings (alerts, silences, deliveries)."""

from __future__ import annotations


def text_table(header: tuple[str, ...], rows: list[list[str]]) -> str:
    """``rows`` under ``header``, each column as wide as its widest cell, two spaces apart.

    >>> print(text_table(("id", "state"), [["a1", "open"], ["b22", "resolved"]]))
    id   state
    a1   open
    b22  resolved
    """
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [list(header), *rows]
    ]
    return "\n".join(lines)


def cut(text: str, width: int) -> str:
    """``text`` in ``width`` characters, ending with an ellipsis when it had to be cut.

    >>> cut("billing.invoice-post", 10)
    'billing.i…'
    """
    return text if len(text) <= width else text[: width - 1] + "…"

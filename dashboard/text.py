"""Text from outside (URL parameters, span attributes) shown in Streamlit's markdown."""

from __future__ import annotations

import re

# Characters that Streamlit's markdown gives a meaning inside a line: emphasis, code, links
# and colours (:red[...]), maths, strike-through, tables. The text is never put at the start
# of a line, where "#", "-" or "1." would matter too.
_MARKDOWN = re.compile(r"([\\`*_\[\]$~|<>])")
SHOWN_CHARACTERS = 120


def literal(text: object, limit: int = SHOWN_CHARACTERS) -> str:
    """``text`` as it was written, escaped for markdown and cut to ``limit`` characters.

    A link such as ``alerts?alert_id=**x** [y](http://...)`` must show those characters, not
    bold text and a clickable link that the page never meant to offer.

    >>> print(literal("**x** [y](http://a) billing.invoice-post"))
    \\*\\*x\\*\\* \\[y\\](http:\\/\\/a) billing.invoice-post
    >>> len(literal("A" * 5000))
    120
    """
    shown = " ".join(str(text).split())
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    shown = _MARKDOWN.sub(r"\\\1", shown)
    # bare addresses are made links too ("http://...", "www...")
    return shown.replace("://", ":\\/\\/").replace("www.", "www\\.")

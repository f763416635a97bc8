"""Amounts of money as people read them: each currency with its own number of decimals.

Most currencies have two minor units, but ISO 4217 gives JPY, KRW and CLP none and BHD, KWD
and TND three, so ``120000 JPY`` reads ``120,000 JPY`` and ``1.235 KWD`` keeps its third
decimal. The minor units come from Babel's copy of the Unicode CLDR currency data, which
follows ISO 4217 except for a few currencies whose minor unit is out of use in practice (HUF,
IDR, IQD and others are written without decimals there). An amount whose currency is not
known, or a code CLDR does not know, is written with two decimals.
"""

from __future__ import annotations

from functools import lru_cache

from babel.numbers import get_currency_precision

# Decimals of an amount whose currency is not known (and of codes CLDR does not list).
DEFAULT_MINOR_UNITS = 2


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """How many decimals an amount in ``currency`` (an ISO 4217 code) is written with.

    >>> minor_units("EUR"), minor_units("JPY"), minor_units("KWD"), minor_units("")
    (2, 0, 3, 2)
    """
    code = currency.strip().upper()
    if not code:
        return DEFAULT_MINOR_UNITS
    # spans carry whatever their senders wrote: a code in lower case is the same currency
    return get_currency_precision(code)


def round_amount(amount: float, currency: str) -> float:
    """``amount`` rounded to the minor units of ``currency`` (cents for most)."""
    return round(float(amount), minor_units(currency))


def amount_text(amount: float, currency: str | None = "") -> str:
    """``amount`` with thousands separators and its currency's decimals, followed by the code.

    >>> amount_text(4321, "EUR"), amount_text(120000, "JPY"), amount_text(1.235, "KWD")
    ('4,321.00 EUR', '120,000 JPY', '1.235 KWD')
    >>> amount_text(4321)
    '4,321.00'
    """
    currency = currency or ""
    number = f"{float(amount):,.{minor_units(currency)}f}"
    return f"{number} {currency}" if currency else number

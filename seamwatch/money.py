"""Amounts of money as people read them: each currency with its own number of decimals.

Most currencies have two minor units, but ISO 4217 gives JPY, KRW and CLP none and BHD, KWD
and TND three, so ``120000 JPY`` reads ``120,000 JPY`` and ``1.235 KWD`` keeps its third
decimal. The minor units come from Babel's copy of the Unicode CLDR currency data, which
follows ISO 4217 except for a few currencies whose minor unit is out of use in practice (HUF,
IDR, IQD and others are written without decimals there). An amount whose currency is not
known, or a code CLDR does not know, is written with two decimals.

Amounts of different currencies are never added up as they are: wherever several meet (an
alert, a flow's revenue at risk, a group of failures) they are kept side by side, one per
currency, as :func:`currency_split` gives them and :func:`amounts_text` writes them. Only
:func:`convert` brings them into one currency, with exchange rates that someone has given
(the severity file's ``money`` section), and it names what it could not convert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from babel.numbers import get_currency_precision

# Decimals of an amount whose currency is not known (and of codes CLDR does not list).
DEFAULT_MINOR_UNITS = 2
# The currency of an amount whose spans named none (``business.currency`` missing).
UNKNOWN_CURRENCY = ""
# Less than a cent is a rounding remainder, not money of an unknown currency.
_CENT = 0.005


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


def currency_amount_text(amount: float, currency: str | None) -> str:
    """One amount with its currency, or saying that its currency is not known.

    >>> currency_amount_text(120000, "JPY"), currency_amount_text(812.4, "")
    ('120,000 JPY', '812.40 (currency unknown)')
    """
    if currency:
        return amount_text(amount, currency)
    return f"{amount_text(amount)} (currency unknown)"


def currency_split(total: float, by_currency: Mapping[str, float]) -> list[tuple[str, float]]:
    """``total`` by currency, each rounded to its currency's minor units (cents for most): the
    known currencies in order, then the rest of the total, whose currency is not known, as
    ``UNKNOWN_CURRENCY`` (when there is any). Amounts that round to nothing are left out.

    >>> currency_split(150.0, {"USD": 50.0, "EUR": 60.0})
    [('EUR', 60.0), ('USD', 50.0), ('', 40.0)]
    >>> currency_split(12000.4, {"JPY": 12000.4})
    [('JPY', 12000.0)]
    """
    known = {
        code: amount
        for code, amount in by_currency.items()
        if code and round_amount(amount, code) != 0
    }
    split = [(code, round_amount(known[code], code)) for code in sorted(known)]
    # what is left once every named currency is taken out: less than half a yen is still yen
    rest = total - sum(amount for code, amount in by_currency.items() if code)
    if abs(rest) >= _CENT:
        split.append((UNKNOWN_CURRENCY, round_amount(rest, UNKNOWN_CURRENCY)))
    return split


def amounts_text(split: Sequence[tuple[str, float]]) -> str:
    """Amounts of one currency each, as :func:`currency_split` gives them, side by side and
    never added up, saying so when they mix currencies or name none.

    >>> amounts_text([("EUR", 3000.0), ("JPY", 120000.0)])
    '3,000.00 EUR + 120,000 JPY (mixed currencies)'
    >>> amounts_text([("USD", 5.0), ("", 12.5)])
    '5.00 USD + 12.50 in an unknown currency (mixed currencies)'
    >>> amounts_text([("", 80.5)]), amounts_text([])
    ('80.50 (currency unknown)', '0.00')
    """
    if not split:
        return amount_text(0)
    if len(split) == 1:
        return currency_amount_text(split[0][1], split[0][0])
    parts = [
        amount_text(amount, code) if code else f"{amount_text(amount)} in an unknown currency"
        for code, amount in split
    ]
    return " + ".join(parts) + " (mixed currencies)"


def currency_records(split: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    """A split as JSON gives it: ``[{"currency": "EUR", "amount": 3000.0}]``, with
    ``"currency": None`` for the part whose currency is not known."""
    return [{"currency": code or None, "amount": amount} for code, amount in split]


@dataclass(frozen=True)
class Converted:
    """Amounts of several currencies brought into one reporting ``currency`` (None when there
    is none to convert into): their ``amount`` there, rounded to its minor units, counts only
    the currencies with a rate; ``not_converted`` names the others, sorted (last,
    ``UNKNOWN_CURRENCY`` for money whose currency is not known)."""

    currency: str | None = None
    amount: float = 0.0
    not_converted: tuple[str, ...] = ()


def convert(
    split: Sequence[tuple[str, float]], currency: str | None, rates: Mapping[str, float]
) -> Converted:
    """The amounts of ``split`` in ``currency``, where ``rates`` gives how many units of
    ``currency`` one unit of each other currency is worth. Money of a currency without a
    rate, or of no known currency, is left out and named, never taken as ``currency``.

    >>> convert([("EUR", 3000.0), ("JPY", 120000.0)], "EUR", {"JPY": 0.0062})
    Converted(currency='EUR', amount=3744.0, not_converted=())
    >>> convert([("EUR", 3000.0), ("CHF", 500.0), ("", 12.5)], "EUR", {})
    Converted(currency='EUR', amount=3000.0, not_converted=('CHF', ''))
    """
    if currency is None:
        return Converted(None, 0.0, _named_order({code for code, _ in split}))
    total, not_converted = 0.0, set()
    for code, amount in split:
        # spans carry whatever their senders wrote: "eur" is the reporting currency EUR
        rate = 1.0 if code.strip().upper() == currency else rates.get(code.strip().upper())
        if rate is None:
            not_converted.add(code)
        else:
            total += amount * rate
    return Converted(currency, round_amount(total, currency), _named_order(not_converted))


def _named_order(codes: set[str]) -> tuple[str, ...]:
    """Currency codes sorted, with money of no known currency last."""
    return tuple(sorted(codes, key=lambda code: (code == UNKNOWN_CURRENCY, code)))


def converted_text(split: Sequence[tuple[str, float]], converted: Converted) -> str:
    """What :func:`convert` made of ``split``, to follow the amounts written side by side:
    nothing when all of it is in the reporting currency already.

    >>> converted_text([("JPY", 120000.0)], Converted("EUR", 744.0))
    '≈ 744.00 EUR'
    >>> converted_text([("EUR", 3000.0), ("CHF", 5.0)], Converted("EUR", 3000.0, ("CHF",)))
    '≈ 3,000.00 EUR (not converted: CHF)'
    >>> converted_text([("", 80.5)], Converted("EUR", 0.0, ("",)))
    '(not converted to EUR)'
    >>> converted_text([("", 80.5)], Converted(None, 0.0, ("",)))
    '(not converted: no reporting currency)'
    """
    codes = [code for code, _ in split]
    if not split or codes == [converted.currency]:
        return ""
    if converted.currency is None:
        return "(not converted: no reporting currency)"
    if set(converted.not_converted) >= set(codes):
        return f"(not converted to {converted.currency})"
    text = f"≈ {amount_text(converted.amount, converted.currency)}"
    if converted.not_converted:
        names = ", ".join(code or "currency unknown" for code in converted.not_converted)
        text += f" (not converted: {names})"
    return text

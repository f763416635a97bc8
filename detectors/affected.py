"""What an open alert counts as affected: each business transaction once over its life.

The minutes and the posting checks both name business transactions: the transactions that
failed in a minute, the keys posted twice or never consumed. A retried transaction fails
again a minute later, and a key can fail in one minute and be found posted twice in another,
so adding up each minute's counts would count it again. An alert's ledger remembers every
transaction it has counted, by business key, with the amount it counted, so the alert's
affected transactions and money at risk count each once, and its text names what it counted
over its whole life rather than the latest minute's finding. It remembers the transactions
that failed apart: the alert's failures count each transaction that failed once, whether or
not a finding counted it first, and its text says how many of the named ones failed too.
"""

from __future__ import annotations

from collections.abc import Mapping

from detectors.alert_text import money_text
from detectors.posting_watch import CONSUME_WITHIN, DUPLICATE_POSTING, Finding, add_by_currency

# Business keys named in an alert's text; the count says how many more there are.
SHOWN_KEYS = 5


class AlertLedger:
    """The transactions one alert has counted, and every finding over its life by kind."""

    def __init__(self) -> None:
        self.amounts: dict[str, float] = {}
        self.currencies: dict[str, str] = {}
        self.found: dict[str, Finding] = {}
        self.failed: set[str] = set()

    def fail(
        self, amounts: Mapping[str, float], currencies: Mapping[str, str] | None = None
    ) -> tuple[int, int, float]:
        """Count the failed transactions of ``amounts`` (as :meth:`count` takes them); return
        how many had not failed before, and how many were not counted before and their money.

        A transaction found posted twice and failing later failed all the same: the failures
        are kept apart from what is counted, so the alert's failures do not depend on which
        came first."""
        new_failures = len(amounts.keys() - self.failed)
        self.failed.update(amounts)
        return new_failures, *self.count(amounts, currencies)

    def count(
        self, amounts: Mapping[str, float], currencies: Mapping[str, str] | None = None
    ) -> tuple[int, float]:
        """Count the transactions of ``amounts`` (business key to amount, in the currency
        ``currencies`` gives the key, if any) that were not counted yet; return how many that
        is and their money."""
        new = {key: amount for key, amount in amounts.items() if key not in self.amounts}
        self.amounts.update(new)
        currencies = currencies or {}
        self.currencies.update({key: currencies[key] for key in new if currencies.get(key)})
        return len(new), sum(new.values())

    def record(self, finding: Finding) -> tuple[int, float]:
        """Add one minute's finding to its kind's tally and count its transactions not
        counted yet; return how many that is and their money."""
        counted = self.count(finding.amounts, finding.currencies)
        tally = self.found.setdefault(
            finding.kind, Finding(finding.kind, finding.flow, finding.target)
        )
        tally.source = tally.source or finding.source
        for key in finding.keys:
            tally.add(key, self.amounts[key], self.currencies.get(key, ""))
        return counted

    def money_by_currency(self) -> dict[str, float]:
        """The money counted, added up by currency (an amount without one under ``""``)."""
        return add_by_currency(self.amounts, self.currencies)

    def text(self, first_kind: str) -> str:
        """Every finding over the alert's life, ``first_kind`` first, then the transactions
        counted besides (failures), so the sentence adds up to the alert's numbers: the
        failures of transactions already named are said apart, as is the total when one
        transaction is in more than one finding."""
        kinds = sorted(self.found, key=lambda kind: kind != first_kind)
        parts = [finding_text(self.found[kind], over_life=True) for kind in kinds]
        named = {key for finding in self.found.values() for key in finding.amounts}
        others = {key: amount for key, amount in self.amounts.items() if key not in named}
        if others:
            parts.append(
                f"also {len(others)} failed transaction(s)"
                f"{_amount_text(sum(others.values()), add_by_currency(others, self.currencies))}"
            )
        failed_named = len(self.failed & named)
        if failed_named:
            parts.append(
                f"{failed_named} of the transactions above failed too "
                f"({len(self.failed)} failed in all)"
            )
        if sum(len(finding.keys) for finding in self.found.values()) > len(named):
            parts.append(f"{len(self.amounts)} transaction(s) in all")
        return "; ".join(parts)


def finding_text(finding: Finding, over_life: bool = False) -> str:
    """What a finding says to on-call: what happened, how much money, to which business keys
    (the numbers first, so a line cut to a terminal's width keeps them).

    ``over_life``: the finding is an alert's tally, its keys named latest first."""
    keys = list(reversed(finding.keys)) if over_life else finding.keys
    if finding.kind == DUPLICATE_POSTING:
        what = f"posted twice to {finding.target}"
    else:
        minutes = int(CONSUME_WITHIN.total_seconds() // 60)
        what = (
            f"published by {finding.source or 'the source'} but not consumed within {minutes} min"
        )
    since = " since the alert opened" if over_life else ""
    amount = _amount_text(finding.amount, finding.money_by_currency())
    order = "latest first: " if over_life and len(keys) > 1 else ""
    shown = ", ".join(keys[:SHOWN_KEYS])
    more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return f"{len(keys)} {finding.flow} transaction(s) {what}{since}{amount}; {order}{shown}{more}"


def _amount_text(total: float, by_currency: dict[str, float]) -> str:
    """``, amount 1,250.50 EUR``, or nothing when no amount is known."""
    return f", amount {money_text(total, by_currency)}" if total else ""

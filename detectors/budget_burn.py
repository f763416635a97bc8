"""Error-budget burn: a flow failing, or slow, far more often than its tier's budget allows.

The other detectors judge a flow against its own past. A flow that fails from its first call
(a new flow and target, a release that broke it before a success was seen) has no past in which
it worked, and a flow that worsened slowly has learned its bad rate as usual; to them neither is
an anomaly. The severity file gives each tier an ``error_budget``, the share of transactions
allowed to fail, and this detector judges every flow against its tier's budget.

It pages on a fast burn, as the multiwindow alerts of the SRE workbook do: the failure rate of
the last hour must exceed ``BURN_RATE`` (14.4) times the budget, the rate that spends 2 % of a
30-day budget in one hour, and the last five minutes with transactions must still show it. The
budget is judged on counts, so two failures among a night's three transactions are not an
outage::

    r = min(BURN_RATE * budget, max(MAX_BURN_SHARE, budget))
    score = -log10 P(Binomial(n, r) >= k)      n, k: transactions and failed ones, last hour

The score is 0 while the hour holds fewer than ``MIN_FAILURES`` failures, and while the last
``SHORT_WINDOW`` minutes that held transactions failed at under ``r``: the flow has recovered.
Empty minutes are skipped, so a quiet flow that fails each transaction that comes is still
burning, and one that recovered and then went quiet for a few minutes is not judged again on
the failures its hour still holds. Minutes without a failure are a recovery whatever the
budget: a budget of 0 allows none, and would otherwise keep the alarm open for the hour.

The rate judged is at most ``MAX_BURN_SHARE``: a budget of 5 % times 14.4 would allow 72 % to
fail before anything were judged, and a flow failing most of its transactions is burning any
budget, unless its budget allows even more (a budget of 1 lets every transaction fail, and
nothing is judged).

A tier without an ``error_budget`` is not judged. Failures of the ``duplicate`` category (the
target rejecting a redelivered document, HTTP 409) do not spend the budget, as they are not
failed transactions (:mod:`detectors.category_drift`).

A tier's ``latency_objective_ms`` is judged the same way, as the workbook's latency objectives
are: a posting call slower than the objective is a bad call, and the posting calls of the last
hour spend the same budget (``n`` and ``k`` are then the calls and the slow ones). A slowdown
that a flow has had long enough to learn as usual is still one its tier does not allow.

Reference: Beyer, B., Murphy, N. R., Rensin, D. K., Kawahara, K. and Thorne, S. (2018). The Site
Reliability Workbook, ch. 5, "Alerting on SLOs" (burn rates and multiple windows).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from scipy import stats

from detectors.category_drift import IGNORED

# the burn rate that spends 2 % of a 30-day budget in one hour
BURN_RATE = 14.4
# the largest failure rate judged, whatever the budget: a majority of transactions failing
MAX_BURN_SHARE = 0.5
LONG_WINDOW = 60
SHORT_WINDOW = 5
MIN_FAILURES = 3
MAX_SCORE = 40.0


@dataclass(frozen=True)
class BurnScore:
    """The last hour of one flow against its tier's budget."""

    score: float
    budget: float
    # the failure rate judged against: the burn rate times the budget, at most MAX_BURN_SHARE
    burn_rate: float
    failures: int
    transactions: int
    minutes: int

    @property
    def observed(self) -> float:
        """The hour's failure rate (NaN without transactions)."""
        return self.failures / self.transactions if self.transactions else math.nan


class BudgetBurn:
    """Failed and all transactions of one flow's last hour, judged against an error budget.

    Examples
    --------
    >>> burn = BudgetBurn()
    >>> burn.step(2, 2, budget=0.001).score  # two failures are not yet enough
    0.0
    >>> round(burn.step(2, 2, budget=0.001).score, 1)  # four of four, at 1.44 % allowed
    7.4
    >>> burn.step(2, 2, budget=None).score  # a tier without a budget is not judged
    0.0
    """

    def __init__(
        self,
        long_window: int = LONG_WINDOW,
        short_window: int = SHORT_WINDOW,
        min_failures: int = MIN_FAILURES,
    ) -> None:
        self.short_window = short_window
        self.min_failures = min_failures
        self._minutes: deque[tuple[float, float]] = deque(maxlen=long_window)

    def learn(self, transactions: float, failed: float) -> None:
        """Add one minute's transactions and failed transactions (warm-up, or after scoring)."""
        self._minutes.append((transactions, failed))

    def step(self, transactions: float, failed: float, budget: float | None) -> BurnScore:
        """Add this minute, then judge the hour ending with it against ``budget``."""
        self.learn(transactions, failed)
        return self.score(budget)

    def score(self, budget: float | None) -> BurnScore:
        """The hour ending with the last minute added, against ``budget``."""
        n = round(sum(count for count, _ in self._minutes))
        k = round(sum(failed for _, failed in self._minutes))
        allowed = burn_rate(budget) if budget is not None else math.nan
        judged = BurnScore(0.0, budget or 0.0, allowed, k, n, len(self._minutes))
        if budget is None or k < self.min_failures or self._recovered(allowed):
            return judged
        return BurnScore(_tail_score(k, n, allowed), budget, allowed, k, n, len(self._minutes))

    def _recovered(self, allowed: float) -> bool:
        """Whether the last ``short_window`` minutes with transactions failed at under
        ``allowed``."""
        busy = [minute for minute in self._minutes if minute[0] > 0][-self.short_window :]
        n = sum(count for count, _ in busy)
        failed = sum(failed for _, failed in busy)
        return n > 0 and (failed == 0 or failed < allowed * n)


def burn_rate(budget: float) -> float:
    """The failure rate a tier with ``budget`` is judged against: ``BURN_RATE`` times the
    budget, at most ``MAX_BURN_SHARE`` unless the budget itself allows more."""
    return min(BURN_RATE * budget, max(MAX_BURN_SHARE, budget))


def _tail_score(failures: int, transactions: int, rate: float) -> float:
    """``-log10 P(Binomial(transactions, rate) >= failures)``, at most ``MAX_SCORE``."""
    if rate <= 0.0:
        return MAX_SCORE
    if rate >= 1.0:
        return 0.0
    log_tail = float(stats.binom.logsf(failures - 1, max(transactions, failures), rate))
    return min(MAX_SCORE, max(0.0, -log_tail / math.log(10)))


def spent_failures(failed: float, categories: Mapping[str, Collection[str]]) -> float:
    """The minute's failed transactions that spend an error budget: all but those whose only
    failures are of an ignored category (a target rejecting a redelivered document)."""
    ignored = {key for category in IGNORED for key in categories.get(category, ())}
    if not ignored:
        return failed
    others = {
        key for category, keys in categories.items() if category not in IGNORED for key in keys
    }
    return max(0.0, failed - len(ignored - others))


def slow_calls(durations_ms: Iterable[float], objective_ms: float | None) -> int:
    """How many of a minute's posting calls took longer than ``objective_ms`` (none without
    an objective)."""
    if objective_ms is None:
        return 0
    return sum(1 for duration in durations_ms if duration > objective_ms)


def burn_text(found: BurnScore, tier: str) -> str:
    """What a burn of failed transactions says, as an alert's event records it."""
    return (
        f"{found.failures} of {found.transactions} transactions failed in the last "
        f"{found.minutes} min ({found.observed:.2%}), against the {tier} tier's error budget "
        f"of {found.budget:.2%} (alerting from {found.burn_rate:.2%})"
    )


def slow_burn_text(found: BurnScore, tier: str, objective_ms: float) -> str:
    """What a burn of slow posting calls says, as an alert's event records it."""
    return (
        f"{found.failures} of {found.transactions} posting calls in the last {found.minutes} min "
        f"({found.observed:.2%}) took longer than the {tier} tier's latency objective of "
        f"{objective_ms:,.0f} ms, against its error budget of {found.budget:.2%} (alerting "
        f"from {found.burn_rate:.2%})"
    )

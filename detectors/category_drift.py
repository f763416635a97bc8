"""Exception-category drift: a failure category that a flow rarely or never shows.

A mapping change or missing master data shows first as failures of a *category* the flow seldom
has, long before the flow's total error rate moves at one or two transactions a minute. Per
category, the failed transactions of the last minutes are compared with the flow's rate of that
category over the last week (hourly buckets), by a Poisson upper tail on the recent
transactions::

    p_hat = (K + prior) / (N + 1)              K, N: the category's failures and all
                                               transactions of the past week
    tail_w = P(Poisson(max(n_w, 1) * p_hat) >= k_w)
                                               n_w, k_w: transactions and the category's failed
                                               transactions in the last w minutes
    score = max over w of  -log10(tail_w) - log10(W / w)

The windows ``w`` are 3, 5 and 15 minutes (``W`` = 15, the longest). A short window sees a burst
before the quarter hour dilutes it with clean traffic: three mapping failures among the last
thirty usage postings, of a category they show once in a thousand. The term ``log10(W / w)``
keeps the false alarms of every window length at those of the longest: a week holds ``W / w``
times as many separate short windows, so a short one must be that much more surprising. The
Poisson tail is a little heavier than the binomial one at a handful of transactions, which
keeps two failures among a night's three or four transactions (429s and validation errors come
in clusters, not independently) under the threshold.

So two failures of a category the flow never had in a week of thousands of transactions are
strong evidence (one alone never alerts: ``min_failures``), a category that shows up daily
(``master_data_missing`` for customers not yet in the ERP) needs several failures among few
transactions, and a quiet night (small ``n``) makes the same count more surprising, as it
should. ``n`` counts the larger of transactions and posting calls, so a batch of postings
(hourly accruals) brings its own exposure with it. Before the flow has ``min_history``
transactions of history, nothing scores (warm-up).

Categories in ``ignored`` are not judged: by default ``duplicate``, the receiving system's
idempotency check rejecting a redelivered document (HTTP 409). That rejection is the
safeguard working, not a failed transaction; redeliveries cluster (a consumer rebalance
redelivers a batch), and a duplicate that got through is judged where it is visible, as a
business key posted twice (:mod:`detectors.posting_watch`).

References: Johnson, N. L., Kemp, A. W. and Kotz, S. (2005). Univariate Discrete
Distributions, 3rd ed., ch. 4 (the Poisson approximation of a binomial count); Glaz, J.,
Naus, J. and Wallenstein, S. (2001). Scan Statistics, ch. 1 (windows of several lengths).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from scipy import stats

HOURS_OF_HISTORY = 7 * 24
MAX_SCORE = 40.0
# window lengths in minutes, the longest last
WINDOWS = (3, 5, 15)
# categories that are not failures of the transaction (see the module docstring)
IGNORED = frozenset({"duplicate"})


@dataclass(frozen=True)
class CategoryScore:
    """The evidence about one category in the current window."""

    category: str
    score: float
    baseline_rate: float
    failures: int
    transactions: int
    minutes: int


class CategoryDrift:
    """Per-category failure counts of one flow against its past week.

    Examples
    --------
    >>> drift = CategoryDrift(min_history=100)
    >>> for _ in range(600):
    ...     _ = drift.step(5, {})
    >>> drift.step(5, {"master_data_missing": ["SO-1"]})  # one failure is never enough
    []
    >>> drift.step(5, {"master_data_missing": ["SO-1"]})  # nor the same one failing again
    []
    >>> [(round(s.score, 1), s.minutes) for s in drift.step(5, {"master_data_missing": ["SO-2"]})]
    [(4.8, 3)]
    """

    def __init__(
        self,
        windows: tuple[int, ...] = WINDOWS,
        min_history: int = 200,
        prior: float = 0.5,
        min_failures: int = 2,
        ignored: frozenset[str] = IGNORED,
    ) -> None:
        self.windows = tuple(sorted(windows))
        self.ignored = ignored
        self.window = self.windows[-1]
        self.min_failures = min_failures
        self.min_history = min_history
        self.prior = prior
        self._hours: deque[tuple[float, Counter[str]]] = deque()
        self._week_transactions = 0.0
        self._week_failures: Counter[str] = Counter()
        self._hour_transactions = 0.0
        self._hour_failures: Counter[str] = Counter()
        self._minutes_in_hour = 0
        self._recent: deque[tuple[float, Mapping[str, Collection[str]]]] = deque(maxlen=self.window)

    def learn(self, transactions: float, failures: Mapping[str, Collection[str]]) -> None:
        """Add one minute to the history without scoring it (warm-up).

        ``failures`` maps each category to the minute's failed transactions of it."""
        failures = self._judged(failures)
        self._recent.append((transactions, failures))
        self._add_to_history(transactions, failures)

    def step(
        self,
        transactions: float,
        failures: Mapping[str, Collection[str]],
        unlearned: frozenset[str] = frozenset(),
    ) -> list[CategoryScore]:
        """Score the window ending with this minute, then learn the minute, leaving out the
        failures of the ``unlearned`` categories (those in alarm), so an incident does not
        teach itself as the usual rate."""
        failures = self._judged(failures)
        self._recent.append((transactions, failures))
        scores = self._score()
        kept = {c: keys for c, keys in failures.items() if c not in unlearned}
        self._add_to_history(transactions, kept)
        return scores

    def _judged(self, failures: Mapping[str, Collection[str]]) -> Mapping[str, Collection[str]]:
        if not self.ignored.intersection(failures):
            return failures
        return {c: keys for c, keys in failures.items() if c not in self.ignored}

    def _score(self) -> list[CategoryScore]:
        if self._week_transactions < self.min_history:
            return []
        minutes = list(self._recent)
        scores = []
        for category in {c for _, failures in minutes for c, keys in failures.items() if keys}:
            rate = (self._week_failures[category] + self.prior) / (self._week_transactions + 1.0)
            best: CategoryScore | None = None
            for window in self.windows:
                found = self._window_score(category, rate, minutes[-window:], window)
                if found is not None and (best is None or found.score > best.score):
                    best = found
            if best is not None:
                scores.append(best)
        return scores

    def _window_score(
        self,
        category: str,
        rate: float,
        minutes: list[tuple[float, Mapping[str, Collection[str]]]],
        window: int,
    ) -> CategoryScore | None:
        n = sum(minute[0] for minute in minutes)
        # a transaction that fails again on a replay inside the window counts once
        keys: set[str] = set()
        for _, failures in minutes:
            keys.update(failures.get(category, ()))
        k = len(keys)
        if k < self.min_failures:
            return None
        tail = float(stats.poisson.sf(k - 1, max(n, 1.0) * rate))
        surprise = MAX_SCORE if tail <= 0 else min(MAX_SCORE, -math.log10(tail))
        score = max(0.0, surprise - math.log10(self.window / window))
        return CategoryScore(category, score, rate, k, int(n), window)

    def _add_to_history(self, transactions: float, failures: Mapping[str, Collection[str]]) -> None:
        self._hour_transactions += transactions
        self._hour_failures.update({c: len(keys) for c, keys in failures.items() if keys})
        self._minutes_in_hour += 1
        if self._minutes_in_hour < 60:
            return
        self._hours.append((self._hour_transactions, self._hour_failures))
        self._week_transactions += self._hour_transactions
        self._week_failures.update(self._hour_failures)
        if len(self._hours) > HOURS_OF_HISTORY:
            old_transactions, old_failures = self._hours.popleft()
            self._week_transactions -= old_transactions
            self._week_failures.subtract(old_failures)
        self._hour_transactions = 0.0
        self._hour_failures = Counter()
        self._minutes_in_hour = 0

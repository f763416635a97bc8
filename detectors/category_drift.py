"""Exception-category drift: a failure category that a flow rarely or never shows.

A mapping change or missing master data shows first as failures of a *category* the flow seldom
has, long before the flow's total error rate moves at one or two transactions a minute. Per
category, the failed transactions of the last minutes are compared with the flow's rate of that
category over the last week (hourly buckets), by a Poisson upper tail on the recent
transactions::

    p_hat = (K + prior) / (N + 1)              K, N: the category's failures and all
                                               transactions of the past week
    q_hat = (K + prior) / (C + 1)              C: the posting calls of the past week
    lambda_w = max(max(n_w, 1) * p_hat, c_w * q_hat)
    tail_w = P(Poisson(lambda_w) >= k_w)       n_w, c_w, k_w: transactions, posting calls and
                                               the category's failed transactions in the
                                               last w minutes
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
should. A category is exposed either per transaction (a mapping failure, before anything is
posted) or per posting call (a 429 or a gateway timeout from the ERP), and the detector does
not assume which: the expected count is the larger of the two rates times their exposure in
the window. On most flows the two agree (one posting per transaction); on a flow whose
postings come in batches (hourly accruals, 250 calls in four minutes among events that are
never posted one by one) the per-call rate is the one that holds in a batch minute, and the
per-transaction one, averaged over an hour mostly without postings, would make every batch
look like a burst of rate limits. Before the flow has ``min_history`` transactions of
history, nothing scores, except in the flow's first day: then each category's usual rate is
taken as at least ``WARM_UP_RATE`` (1 %), so an incident on the first morning of a quiet flow
is still seen, and a flow that stays that quiet after its first day is left to the error rate;
the per-call rate counts from ``min_history`` calls.

Failures of a category in alarm are not learned, and when an alarm opens, the failures of
that category in the last ``W`` minutes, the evidence it opened on, are taken back out of the
history (:meth:`CategoryDrift.forget`): otherwise the first failures of every burst would
raise the usual rate, and each later burst of the same category would need more failures.

Reference-data categories (below) are also judged over the last ``REFERENCE_WINDOW`` (60)
minutes, against the flow's rate without the failures those minutes taught it. A missing code
mapping fails every document that carries the code until someone adds it, so on a quiet flow
its failures accumulate at one every several minutes, never a burst in a quarter hour: six
failed orders in an hour, of a category the flow shows a few times a day, is a finding. A week
holds a quarter as many separate hours as quarter hours, so the hour takes no penalty of its
own. Timeouts, rate limits and validation errors come and go in clusters and are not judged
over the hour. An alarm opened on the hour takes back only the last quarter hour's failures
(:meth:`CategoryDrift.forget`).

Reference data is the exception to "one alone never alerts". A ``mapping`` or
``master_data_missing`` failure says that a shared record is missing (a code mapping, a customer,
an item), and every document referring to it fails until someone adds it. With
``new_category_score`` set, the first failure of such a category on a flow that has not shown it
in its history (at least ``NEW_CATEGORY_HOURS``, at most the week) scores at least that much:
the runner passes its threshold, so the alarm opens at once. Within six hours of an alarm on
the category, a failure is the incident's tail, not news. The failure stays learned unless
another transaction fails the same way while the alarm is open (then all belong to the
incident, as they do at once when two failed in the opening window); otherwise every one-off
would leave the category new and alert again. Names are compared as :func:`reference_name`
writes them.

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

import dataclasses
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
# failures of shared reference data: a code mapping, a customer or item master record
REFERENCE_DATA = frozenset({"mapping", "master_data_missing"})
# a category is new to a flow only once the flow has this much history without it
NEW_CATEGORY_HOURS = 24
# in its first day, a flow's first two failures of a reference category within the window are
# news once it has this much history without one, if they score this much at the first day's
# default rate (``WARM_UP_RATE``): two among a quiet morning's few transactions, not among a
# busy flow's hundred
NEW_CATEGORY_EARLY_HOURS = 3
NEW_CATEGORY_EARLY_SCORE = 2.0
# nor within this many minutes of an alarm on it: late failures are the incident's tail
NEW_CATEGORY_QUIET_MINUTES = 6 * 60
# the usual rate of a category assumed at least, while a flow's history is too short to tell
WARM_UP_RATE = 0.01
# reference-data failures accumulate (every document referring to the missing record fails
# until it is added), so they are also judged over this many minutes
REFERENCE_WINDOW = 60


def reference_name(category: str) -> str:
    """``category`` as the vocabulary writes it: senders write ``Mapping`` or
    ``master-data-missing`` too."""
    return category.strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class CategoryScore:
    """The evidence about one category in the current window."""

    category: str
    score: float
    # the usual rate the score was taken at; 0 for a category new to the flow
    baseline_rate: float
    failures: int
    transactions: int
    minutes: int
    # a reference-data category the flow had not shown in its last ``history_hours``
    new_to_flow: bool = False
    history_hours: int = 0
    # transactions in the flow's history: with none, ``baseline_rate`` is the prior alone
    history_transactions: float = math.inf


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
        new_category_score: float | None = None,
        reference_data: frozenset[str] = REFERENCE_DATA,
    ) -> None:
        self.windows = tuple(sorted(windows))
        self.ignored = ignored
        self.window = self.windows[-1]
        self.min_failures = min_failures
        self.min_history = min_history
        self.prior = prior
        self.new_category_score = new_category_score
        self.reference_data = reference_data
        self._hours: deque[tuple[float, float, Counter[str]]] = deque()
        self._week_transactions = 0.0
        self._week_calls = 0.0
        self._week_failures: Counter[str] = Counter()
        self._hour_transactions = 0.0
        self._hour_calls = 0.0
        self._hour_failures: Counter[str] = Counter()
        self._minutes_in_hour = 0
        self._recent: deque[tuple[float, float, Mapping[str, Collection[str]]]] = deque(
            maxlen=max(self.window, REFERENCE_WINDOW)
        )
        # per recent minute: the hour it was learned into and the failures it added per category
        self._learned: deque[tuple[int, Counter[str]]] = deque(
            maxlen=max(self.window, REFERENCE_WINDOW)
        )
        self._hour_index = 0
        # categories new to the flow in the latest window, with their failed transactions
        self._new_in_window: dict[str, set[str]] = {}
        # minutes learned or scored, and the last of them on which each category was in alarm
        self._minutes_seen = 0
        self._last_in_alarm: dict[str, int] = {}
        # per new category in alarm, the hours its first failure was learned into
        self._unconfirmed: dict[str, tuple[list[tuple[int, int]], set[str]]] = {}

    def learn(
        self,
        transactions: float,
        failures: Mapping[str, Collection[str]],
        calls: float = 0.0,
        in_alarm: frozenset[str] = frozenset(),
        opening: frozenset[str] = frozenset(),
    ) -> None:
        """Add one minute to the history without scoring it (warm-up).

        ``failures`` maps each category to the minute's failed transactions of it; ``calls``
        is the minute's posting calls. After a restart, the stored alerts tell which
        categories were in alarm in this minute (``in_alarm``, from the minute after the
        opening) and which alarms opened in it (``opening``): the history then leaves out the
        failures those alarms left out, and keeps their times for the quiet hours after an
        alarm, as in a run that never stopped (:meth:`step`)."""
        failures = self._judged(failures)
        self._recent.append((transactions, calls, failures))
        self._minutes_seen += 1
        for category in in_alarm:
            self._last_in_alarm[category] = self._minutes_seen
        new = {category for category in opening if self._is_new(category, NEW_CATEGORY_HOURS)}
        self._confirm_new_categories(failures, in_alarm)
        kept = {c: keys for c, keys in failures.items() if c not in in_alarm}
        self._add_to_history(transactions, calls, kept)
        for category in opening:
            self._relive_onset(category, category in new)

    def _relive_onset(self, category: str, new_to_flow: bool) -> None:
        """Take back the failures an alarm opened on, as :meth:`forget` did when it opened."""
        self._new_in_window = {}
        if new_to_flow:
            self._new_in_window[category] = {
                key
                for _, _, failed in list(self._recent)[-self.window :]
                for key in failed.get(category, ())
            }
        self.forget(category)

    def step(
        self,
        transactions: float,
        failures: Mapping[str, Collection[str]],
        unlearned: frozenset[str] = frozenset(),
        calls: float = 0.0,
    ) -> list[CategoryScore]:
        """Score the window ending with this minute, then learn the minute, leaving out the
        failures of the ``unlearned`` categories (those in alarm), so an incident does not
        teach itself as the usual rate."""
        failures = self._judged(failures)
        self._recent.append((transactions, calls, failures))
        self._minutes_seen += 1
        for category in unlearned:
            self._last_in_alarm[category] = self._minutes_seen
        scores = self._score()
        self._confirm_new_categories(failures, unlearned)
        kept = {c: keys for c, keys in failures.items() if c not in unlearned}
        self._add_to_history(transactions, calls, kept)
        return scores

    def _judged(self, failures: Mapping[str, Collection[str]]) -> Mapping[str, Collection[str]]:
        if not self.ignored.intersection(failures):
            return failures
        return {c: keys for c, keys in failures.items() if c not in self.ignored}

    def _score(self) -> list[CategoryScore]:
        if self._week_transactions < self.min_history and not self._in_first_day():
            return []  # a flow this quiet is judged by its error rate, not per category
        every_minute = list(self._recent)
        minutes = every_minute[-self.window :]
        scores = []
        self._new_in_window = {}
        for category in {c for _, _, failures in minutes for c, keys in failures.items() if keys}:
            rate, call_rate = self._usual_rates(self._week_failures[category])
            best = self._best_window(category, rate, call_rate, minutes)
            if reference_name(category) in self.reference_data:
                found = self._reference_score(category, every_minute)
                if found is not None and (best is None or found.score > best.score):
                    best = found
            if self._is_new(category, NEW_CATEGORY_HOURS):
                best = self._as_new(category, best, rate, call_rate, minutes)
            elif self._in_first_day() and self._is_new(category, NEW_CATEGORY_EARLY_HOURS, True):
                best = self._as_new_early(category, best, rate, call_rate, minutes)
            if best is not None:
                scores.append(best)
        return scores

    def _best_window(
        self,
        category: str,
        rate: float,
        call_rate: float,
        minutes: list[tuple[float, float, Mapping[str, Collection[str]]]],
    ) -> CategoryScore | None:
        """The highest score of ``category`` over the windows ending with the last minute."""
        best: CategoryScore | None = None
        for window in self.windows:
            found = self._window_score(category, rate, call_rate, minutes[-window:], window)
            if found is not None and (best is None or found.score > best.score):
                best = found
        return best

    def _usual_rates(self, failures: float) -> tuple[float, float]:
        """The category's usual rate per transaction and per posting call, from ``failures``
        in the history; in a first day with under ``min_history`` transactions, at least
        ``WARM_UP_RATE`` per transaction (the per-call rate counts from ``min_history``
        calls)."""
        failures += self.prior
        rate = failures / (self._week_transactions + 1.0)
        if self._week_transactions < self.min_history and self._in_first_day():
            rate = max(rate, WARM_UP_RATE)
        calls = self._week_calls
        return rate, failures / (calls + 1.0) if calls >= self.min_history else 0.0

    def _in_first_day(self) -> bool:
        """Whether the history holds less than a day: too short to know the flow's volume."""
        return len(self._hours) < NEW_CATEGORY_HOURS

    def _reference_score(
        self, category: str, every_minute: list[tuple[float, float, Mapping[str, Collection[str]]]]
    ) -> CategoryScore | None:
        """The last ``REFERENCE_WINDOW`` minutes, against the flow's rate without the failures
        those minutes taught it (they are the incident's own, if it is one)."""
        if len(every_minute) < REFERENCE_WINDOW:
            return None
        oldest_kept = self._hour_index - len(self._hours)
        own = sum(
            added.get(category, 0)
            for hour, added in list(self._learned)[-REFERENCE_WINDOW:]
            if oldest_kept <= hour < self._hour_index
        )
        rate, call_rate = self._usual_rates(max(0.0, self._week_failures[category] - own))
        return self._window_score(category, rate, call_rate, every_minute, REFERENCE_WINDOW)

    def _as_new(
        self,
        category: str,
        best: CategoryScore | None,
        rate: float,
        call_rate: float,
        minutes: list[tuple[float, float, Mapping[str, Collection[str]]]],
    ) -> CategoryScore | None:
        """The window's evidence about a category new to the flow (one failure is enough),
        scored at least ``new_category_score``; its failed transactions are remembered."""
        found = best or self._window_score(category, rate, call_rate, minutes, self.window, 1)
        return self._scored_as_new(category, found, minutes)

    def _as_new_early(
        self,
        category: str,
        best: CategoryScore | None,
        rate: float,
        call_rate: float,
        minutes: list[tuple[float, float, Mapping[str, Collection[str]]]],
    ) -> CategoryScore | None:
        """In the flow's first day, two or more failures of a reference category it has not
        shown, within the window: news, as one failure is after a day without any, if they
        would be surprising even at the first day's default rate. A few hours of history
        cannot say how rare the category is: a busy flow's first two of the day may simply
        come together. A lone failure is never news this early."""
        rate, call_rate = max(rate, WARM_UP_RATE), max(call_rate, WARM_UP_RATE)
        found = self._best_window(category, rate, call_rate, minutes)
        if found is None or found.score < NEW_CATEGORY_EARLY_SCORE:
            return best
        return self._scored_as_new(category, found, minutes)

    def _scored_as_new(
        self,
        category: str,
        found: CategoryScore | None,
        minutes: list[tuple[float, float, Mapping[str, Collection[str]]]],
    ) -> CategoryScore | None:
        if found is None or self.new_category_score is None:
            return found
        self._new_in_window[category] = {
            key for _, _, failed in minutes for key in failed.get(category, ())
        }
        return dataclasses.replace(
            found,
            score=max(found.score, self.new_category_score),
            # the history holds none: the smoothed rate the score was taken at (the prior, or
            # the first day's default) is not a rate the flow showed, and an alert that read
            # "new to this flow" beside "usual 0.20%" contradicted itself
            baseline_rate=0.0,
            new_to_flow=True,
            history_hours=len(self._hours),
        )

    def _is_new(self, category: str, hours: int, before_window: bool = False) -> bool:
        """A reference-data category the flow has not shown in ``hours`` or more of history
        (``before_window``: before the window's earlier minutes, whose failures are learned),
        nor in alarm for ``NEW_CATEGORY_QUIET_MINUTES``."""
        shown = self._week_failures[category] + self._hour_failures[category]
        if before_window:
            earlier = list(self._learned)[-(self.window - 1) :]
            shown -= sum(added.get(category, 0) for _, added in earlier)
        return (
            self.new_category_score is not None
            and reference_name(category) in self.reference_data
            and len(self._hours) >= hours
            and shown <= 0
            and self._minutes_seen - self._last_in_alarm.get(category, -math.inf)
            > NEW_CATEGORY_QUIET_MINUTES
        )

    def _window_score(
        self,
        category: str,
        rate: float,
        call_rate: float,
        minutes: list[tuple[float, float, Mapping[str, Collection[str]]]],
        window: int,
        min_failures: int | None = None,
    ) -> CategoryScore | None:
        n = sum(minute[0] for minute in minutes)
        calls = sum(minute[1] for minute in minutes)
        # a transaction that fails again on a replay inside the window counts once
        keys: set[str] = set()
        for _, _, failures in minutes:
            keys.update(failures.get(category, ()))
        k = len(keys)
        if k < (self.min_failures if min_failures is None else min_failures):
            return None
        expected = max(max(n, 1.0) * rate, calls * call_rate)
        tail = float(stats.poisson.sf(k - 1, expected))
        surprise = MAX_SCORE if tail <= 0 else min(MAX_SCORE, -math.log10(tail))
        score = max(0.0, surprise - max(0.0, math.log10(self.window / window)))
        return CategoryScore(
            category, score, rate, k, int(n), window, history_transactions=self._week_transactions
        )

    def forget(self, category: str) -> None:
        """Take the failures of ``category`` in the last ``window`` minutes back out of the
        history: an alarm just opened on them, so they are the incident's first failures,
        not the flow's usual rate (the minutes that follow are not learned while it is open).
        An alarm opened on the hour (reference data) leaves the hour's earlier failures
        learned: a slow incident's late documents, a day later, are then no new burst.

        An alarm on a category new to the flow may have opened on one failed transaction,
        which may be a one-off: it stays learned until another transaction fails the same way
        while the alarm is open and shows an incident (:meth:`step`); the same document failing
        again on a retry shows nothing new. Otherwise each one-off would be new again, and
        alert, for ever.
        """
        evidence = []
        for hour, added in list(self._learned)[-self.window :]:
            count = added.pop(category, 0)
            if count:
                evidence.append((hour, count))
        keys = self._new_in_window.get(category)
        if keys is not None and len(keys) < 2:
            self._unconfirmed[category] = (evidence, keys)
            return
        self._take_back(category, evidence)

    def _take_back(self, category: str, evidence: list[tuple[int, int]]) -> None:
        """Remove failures of ``category`` learned into the given hours (those still held)."""
        oldest_kept = self._hour_index - len(self._hours)
        for hour, count in evidence:
            if hour == self._hour_index:
                self._hour_failures[category] -= count
            elif hour >= oldest_kept:
                self._hours[hour - oldest_kept][2][category] -= count
                self._week_failures[category] -= count

    def _confirm_new_categories(
        self, failures: Mapping[str, Collection[str]], in_alarm: frozenset[str]
    ) -> None:
        """Another transaction failing in a new category while its alarm is open shows an
        incident: the first failure is taken back out of the history. An alarm that closed
        without one leaves it learned."""
        for category, (evidence, keys) in list(self._unconfirmed.items()):
            if category not in in_alarm:
                del self._unconfirmed[category]
            elif set(failures.get(category, ())) - keys:
                del self._unconfirmed[category]
                self._take_back(category, evidence)

    def _add_to_history(
        self, transactions: float, calls: float, failures: Mapping[str, Collection[str]]
    ) -> None:
        added = Counter({c: len(keys) for c, keys in failures.items() if keys})
        self._learned.append((self._hour_index, added))
        self._hour_transactions += transactions
        self._hour_calls += calls
        self._hour_failures.update(added)
        self._minutes_in_hour += 1
        if self._minutes_in_hour < 60:
            return
        self._hours.append((self._hour_transactions, self._hour_calls, self._hour_failures))
        self._week_transactions += self._hour_transactions
        self._week_calls += self._hour_calls
        self._week_failures.update(self._hour_failures)
        if len(self._hours) > HOURS_OF_HISTORY:
            old_transactions, old_calls, old_failures = self._hours.popleft()
            self._week_transactions -= old_transactions
            self._week_calls -= old_calls
            self._week_failures.subtract(old_failures)
        self._hour_transactions = 0.0
        self._hour_calls = 0.0
        self._hour_failures = Counter()
        self._minutes_in_hour = 0
        self._hour_index += 1

"""The detector runner: every minute, every flow and target, every signal, into alerts.

Per (flow, target) series the runner judges, each evaluated minute:

* ``latency``: the posting calls of the last five minutes against the flow's usual calls, and
  on a quiet flow a CUSUM over its calls however far apart (:mod:`detectors.latency_shift`);
* ``error_rate``: the transaction error rate judged on counts, and ``volume``: the transaction
  volume (the product configuration of :mod:`detectors.product`);
* ``exception_category``: failures of a category the flow rarely shows
  (:mod:`detectors.category_drift`), e.g. ``mapping`` or ``master_data_missing``;
* ``error_budget`` and ``latency_objective``: the last hour's failures, and its posting calls
  slower than the tier's latency objective, against the error budget of the flow's tier in the
  severity file (:mod:`detectors.budget_burn`), which a flow failing from its first call, with
  no past in which it worked, still spends;
* ``duplicate_posting`` and ``dropped``: a business key posted twice, a published event that no
  consumer picked up in time, read from the lineage index (:mod:`detectors.posting_watch`).

A minute's onsets open the flow's alert together or join it, and the alert resolves once every
alarm of the series has settled (:mod:`detectors.lifecycle`); an alarm that settles before
that is an ``eased`` event, and its return on the same alert a ``recurred`` one.

How far the runner got is stored in ``detector_state``. After a restart it learns the week
before that point from the store (without alerting), with the failure-category alarms the
stored alerts record (:mod:`detectors.past_alarms`), marks the alarms of open alerts as open
(but those whose ``eased`` event says they settled while the alert stayed open), and evaluates
every minute since, so downtime delays alerts but neither loses nor repeats them.
A stop ends a catch-up between two minutes: the minutes evaluated so far are written and
recorded, and the next one is evaluated at the next start, as after any downtime.
A minute is evaluated ``delay`` after it ends (``SEAMWATCH_EVALUATION_DELAY_SECONDS``, 30 s by
default), giving late spans time to arrive: live, each evaluation starts at that moment rather
than on a free-running timer, so an alert is raised ``delay`` plus the evaluation's own time
after the minute that shows it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from detectors.affected import AlertLedger, finding_text
from detectors.alarm import HysteresisAlarm
from detectors.alert_text import CATEGORY_PREFIX, EXCEPTION_CATEGORY, category_text
from detectors.budget_burn import (
    LONG_WINDOW,
    BudgetBurn,
    burn_text,
    slow_burn_text,
    slow_calls,
    spent_failures,
)
from detectors.category_drift import CategoryDrift
from detectors.error_rate import ErrorRateDriftDetector
from detectors.flow_series import data_bounds, read_minutes, split_pair
from detectors.latency_shift import LatencyShiftTest
from detectors.lifecycle import Alert, AlertBook, Signal
from detectors.past_alarms import CategoryAlarm, alarms_at, category_alarms, eased_signals
from detectors.posting_watch import (
    DROPPED,
    DUPLICATE_POSTING,
    Finding,
    watch_chunk,
)
from detectors.product import build_alarm
from detectors.severity import Severity, Tier, severity_in_force
from seamwatch import runtime
from seamwatch.settings import EVALUATION_DELAY_ENV
from storage import Store, StoreError
from storage.pending import wait_until_open
from storage.schema import DETECTOR_STATE_TABLE

logger = logging.getLogger(__name__)

STATE_TABLE = DETECTOR_STATE_TABLE
DEFAULT_RUNNER = "default"
MINUTE = timedelta(minutes=1)
DEFAULT_CHUNK = timedelta(hours=6)
WARMUP = timedelta(days=7)
FIRST_START_LOOKBACK = timedelta(days=7)
BASELINE_MINUTES = 60
# a first catch-up over a week takes minutes: say how far it is this often
CATCH_UP_PROGRESS_SECONDS = 10.0
# how often a held runner looks whether it may start, and whether it is stopped
HOLD_POLL_SECONDS = 0.5

# (signal, alert kind) of the product's series alarms; the error rate reads failed and
# transactions, the volume transactions.
SIGNALS: tuple[tuple[str, str], ...] = (
    ("error_rate", "error_rate"),
    ("volume", "volume"),
)
LATENCY = "latency"
LATENCY_SIGNAL = "latency_shift"
ERROR_BUDGET = "error_budget"
LATENCY_OBJECTIVE = "latency_objective"
# kinds judged against the tier's budget rather than the flow's own past
BUDGET_KINDS = (ERROR_BUDGET, LATENCY_OBJECTIVE)
FINDING_KINDS = (DUPLICATE_POSTING, DROPPED)
# Failure categories a slowdown explains: a latency alert quotes only these.
SLOWNESS_CATEGORIES = ("timeout",)


@dataclass(frozen=True)
class LatchConfig:
    """Open at ``threshold``; close after ``settle`` minutes in a row under ``release``."""

    threshold: float
    release: float
    settle: int


# Latency: pooled z of the last five minutes' calls (about 3e-6 one-sided at 4.5), or on a
# quiet flow the CUSUM of its calls (a run length of about 2.8e5 calls at 4.5). At 4, a
# flow judged every minute of a simulated week still opened a false alert now and then (two in
# sixteen simulated days, both at 4.03): posting times are heavier-tailed than log-normal.
LATENCY_LATCH = LatchConfig(threshold=4.5, release=2.0, settle=30)
# Category drift: -log10 of the Poisson tail; about one chance in 16,000 per window. A flow
# sees about ten thousand windows a week, and judges five or six categories in each, so the
# one in 10,000 of a single category's window (4.0) opened false alerts at 4.05 and 4.10 in
# sixteen simulated days.
CATEGORY_LATCH = LatchConfig(threshold=4.2, release=1.3, settle=30)
# The error rate judged on counts: one failed call at a flow's usual rate scores about 2 to
# 3.1 (a binomial tail of 1e-3 to 2e-2), so at the series default of 1.7 each everyday failure,
# once an hour on a busy flow, restarted the two calm hours and held an alert open all
# afternoon, long after its incident. A minute must be stronger evidence than one failure to
# keep the alarm open.
ERROR_RATE_COUNTS_RELEASE = 3.2
# Findings are certain: one opens; an hour without a new one settles. On a quiet flow the
# findings of one incident come tens of minutes apart: a dropped-events incident on payments
# went 37 minutes between two, and a 30-minute settle split it into two alerts.
FINDING_LATCH = LatchConfig(threshold=1.0, release=0.5, settle=60)
# Error-budget burn: -log10 of the binomial tail of the hour's failures at the burn rate, so
# 5.0 is one chance in 100,000; three failures of three transactions on a critical flow (1.44 %
# allowed) score 5.5, ten of ten on a medium one (28.8 %) 5.4.
BUDGET_LATCH = LatchConfig(threshold=5.0, release=1.3, settle=30)
FINDING_BASE_SCORE = 10.0

_STATE_SCHEMA = pa.schema(
    [
        ("runner", pa.string()),
        ("evaluated_until", pa.timestamp("ms", tz="UTC")),
        ("updated_at", pa.timestamp("ms", tz="UTC")),
        ("version", pa.uint64()),
    ]
)


@dataclass
class Minute:
    """One minute of one series (zeros and NaN latencies when it saw no spans)."""

    calls: float = 0.0
    transactions: float = 0.0
    failed: float = 0.0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    money_at_risk: float = 0.0
    top_error: str = ""
    post_durations_ms: list[float] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    # one error message per failure category, for an alert on that category
    category_errors: dict[str, str] = field(default_factory=dict)
    # each failed transaction's business key with its amount, for an alert to count it once
    failed_amounts: dict[str, float] = field(default_factory=dict)
    # and with its currency, when its spans name one
    failed_currencies: dict[str, str] = field(default_factory=dict)


class Latch:
    """Open/settle state of a signal that is already scored (hysteresis on a score)."""

    def __init__(self, config: LatchConfig) -> None:
        self.config = config
        self.is_open = False
        self.score = 0.0
        self._calm = 0

    def step(self, score: float) -> bool:
        """Feed one minute's score; True on an onset."""
        self.score = score
        if not self.is_open:
            if score >= self.config.threshold:
                self.is_open = True
                self._calm = 0
                return True
            return False
        self._calm = self._calm + 1 if score < self.config.release else 0
        if self._calm >= self.config.settle:
            self.is_open = False
        return False


class SeriesState:
    """The alarms of one (flow, target) series and the last hour of each product signal."""

    def __init__(self, flow: str, target: str, business_object: str = "") -> None:
        self.flow = flow
        self.target = target
        self.business_object = business_object
        # the flow's tier, kept with the severity and business object it was resolved from
        self._tier: tuple[Severity, str, Tier] | None = None
        self.alarms: dict[str, HysteresisAlarm] = {
            signal: build_alarm(kind) for signal, kind in SIGNALS
        }
        self.alarms["error_rate"].release = ERROR_RATE_COUNTS_RELEASE
        self.recent: dict[str, deque[float]] = {
            signal: deque(maxlen=BASELINE_MINUTES) for signal, _ in SIGNALS
        }
        self.latency = LatencyShiftTest()
        self.categories = CategoryDrift(new_category_score=CATEGORY_LATCH.threshold)
        self.budget = BudgetBurn()
        self.slow_calls = BudgetBurn()
        # each minute's failed transactions over the budget's hour: an alert the budget
        # opens counts the failures it opened on
        self.burned: deque[tuple[dict[str, float], dict[str, str]]] = deque(maxlen=LONG_WINDOW)
        # latches of scored signals, by signal name: latency, one per category, findings
        self.latches: dict[str, tuple[str, Latch]] = {
            LATENCY_SIGNAL: (LATENCY, Latch(LATENCY_LATCH)),
            ERROR_BUDGET: (ERROR_BUDGET, Latch(BUDGET_LATCH)),
            LATENCY_OBJECTIVE: (LATENCY_OBJECTIVE, Latch(BUDGET_LATCH)),
            DUPLICATE_POSTING: (DUPLICATE_POSTING, Latch(FINDING_LATCH)),
            DROPPED: (DROPPED, Latch(FINDING_LATCH)),
        }
        # the signals whose alarm or latch closed in the last minute stepped
        self.settled: list[Signal] = []

    def learn(
        self,
        minutes: pd.DataFrame,
        alarms: Sequence[CategoryAlarm] = (),
        tier: Tier | None = None,
    ) -> None:
        """Learn a dense block of past minutes (indexed by minute) without scoring them
        (warm-up), leaving out of the history what the stored category ``alarms`` left out;
        posting calls are counted slow against ``tier``'s latency objective."""
        objective = tier.latency_objective_ms if tier else None
        transactions = minutes["transactions"].to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = np.where(
                transactions > 0, minutes["failed"].to_numpy(float) / transactions, np.nan
            )
        values = {"error_rate": rates, "volume": transactions}
        for signal, series in values.items():
            self.alarms[signal].detector.learn_many(series)
            self.recent[signal].extend(series[-BASELINE_MINUTES:])
        for stamp, count, failed, durations, pairs, amounts, currencies in zip(
            minutes.index,
            transactions,
            minutes["failed"].to_numpy(float),
            minutes["post_durations_ms"],
            minutes["failed_categories"],
            _cells(minutes, "failed_amounts"),
            _cells(minutes, "failed_currencies"),
            strict=True,
        ):
            self.burned.append((failed_amounts(amounts), failed_currencies(currencies)))
            calls = len(durations) if isinstance(durations, list | np.ndarray) else 0
            self._relive_latency(durations if calls else [])
            self.slow_calls.learn(calls, slow_calls(durations if calls else [], objective))
            in_alarm, opening = alarms_at(alarms, stamp)
            categories = category_counts(pairs)
            self.categories.learn(
                count, categories, float(calls), in_alarm=in_alarm, opening=opening
            )
            self.budget.learn(count, spent_failures(failed, categories))

    def _relive_latency(self, durations: Any) -> None:
        """Score a past minute's posting calls as their evaluation did, learning them only
        while the score stays under the release, as :meth:`_scored_signals` does: learned
        whole, the calls of slow spells widened the baseline, and a young flow's baseline was
        taken again at other points of its growth than in a run that never stopped."""
        latch = self.latches[LATENCY_SIGNAL][1]
        score = self.latency.step(durations, LATENCY_LATCH.release if not latch.is_open else -1.0)
        latch.step(score)

    def tier(self, severity: Severity) -> Tier:
        """The flow's tier in ``severity``, resolved again only when the severity in force or
        the flow's business object changes."""
        if self._tier is None or self._tier[:2] != (severity, self.business_object):
            found = severity.tier_for(self.flow, self.business_object, self.target)
            self._tier = (severity, self.business_object, found)
        return self._tier[2]

    def settle_latency_latch(self) -> None:
        """Close the latency latch the warm-up left open: without an open alert, a run that
        never stopped had it closed."""
        self.latches[LATENCY_SIGNAL] = (LATENCY, Latch(LATENCY_LATCH))

    def step(
        self, minute: Minute, findings: dict[str, Finding] | None = None, tier: Tier | None = None
    ) -> tuple[list[Signal], list[Signal]]:
        """Feed one minute to every alarm; return (onsets, signals of open alarms). The
        signals whose alarm closed in it are left in :attr:`settled`. Without a ``tier``
        the error budget is not judged."""
        onsets: list[Signal] = []
        active: list[Signal] = []
        self.settled = []
        self.burned.append((minute.failed_amounts, minute.failed_currencies))
        for signal, kind in SIGNALS:
            alarm = self.alarms[signal]
            was_open = alarm.is_open
            value = self._value(signal, minute)
            baseline = _median(self.recent[signal])
            if signal == "error_rate":
                detector = alarm.detector
                assert isinstance(detector, ErrorRateDriftDetector)
                alarm.score = detector.update_counts(minute.failed, minute.transactions)
                onset = alarm.step(alarm.score)
            else:
                onset = alarm.update(value)
            self.recent[signal].append(value)
            seen = Signal(kind, signal, float(alarm.score), baseline, value)
            if onset:
                onsets.append(seen)
            if alarm.is_open:
                active.append(seen)
            elif was_open:
                self.settled.append(seen)
        for seen in self._scored_signals(minute, findings or {}, tier):
            _, latch = self._latch(seen.signal, seen.kind)
            was_open = latch.is_open
            if latch.step(seen.score):
                onsets.append(seen)
                if seen.kind == EXCEPTION_CATEGORY:
                    # the failures that opened the alarm are the incident's, not the usual rate
                    self.categories.forget(seen.signal.split(":", 1)[1])
            if latch.is_open:
                active.append(seen)
            elif was_open:
                self.settled.append(seen)
        return onsets, active

    def _scored_signals(
        self, minute: Minute, findings: dict[str, Finding], tier: Tier | None
    ) -> list[Signal]:
        latency_open = self.latches[LATENCY_SIGNAL][1].is_open
        score = self.latency.step(
            minute.post_durations_ms, LATENCY_LATCH.release if not latency_open else -1.0
        )
        signals = [
            Signal(
                LATENCY,
                LATENCY_SIGNAL,
                score,
                self.latency.baseline_ms,
                self.latency.observed_ms,
                _latency_text(self.latency, score),
            )
        ]
        in_alarm = frozenset(
            name.split(":", 1)[1]
            for name, (kind, latch) in self.latches.items()
            if kind == EXCEPTION_CATEGORY and latch.is_open
        )
        scored = {
            found.category: found
            for found in self.categories.step(
                minute.transactions,
                minute.categories,
                in_alarm,
                float(len(minute.post_durations_ms)),
            )
        }
        for name, (kind, _) in self.latches.items():
            if kind == EXCEPTION_CATEGORY and name.split(":", 1)[1] not in scored:
                signals.append(Signal(kind, name, 0.0, math.nan, math.nan))
        for category, found in scored.items():
            signals.append(
                Signal(
                    EXCEPTION_CATEGORY,
                    f"{CATEGORY_PREFIX}{category}",
                    found.score,
                    # a flow without history has no usual rate, only the prior it was scored at
                    found.baseline_rate if found.history_transactions >= 1 else math.nan,
                    found.failures / max(found.transactions, 1),
                    category_text(found),
                )
            )
        signals.append(self._budget_signal(minute, tier))
        signals.append(self._objective_signal(minute, tier))
        for kind in FINDING_KINDS:
            finding = findings.get(kind)
            count = len(finding.keys) if finding else 0
            score = FINDING_BASE_SCORE + count if count else 0.0
            signals.append(
                Signal(
                    kind, kind, score, 0.0, float(count), finding_text(finding) if finding else ""
                )
            )
        return signals

    def _budget_signal(self, minute: Minute, tier: Tier | None) -> Signal:
        """The last hour's failures against the tier's error budget."""
        spent = spent_failures(minute.failed, minute.categories)
        found = self.budget.step(minute.transactions, spent, tier.error_budget if tier else None)
        detail = burn_text(found, tier.name) if tier and found.score else ""
        return Signal(ERROR_BUDGET, ERROR_BUDGET, found.score, found.budget, found.observed, detail)

    def _objective_signal(self, minute: Minute, tier: Tier | None) -> Signal:
        """The last hour's posting calls slower than the tier's latency objective, against
        the tier's error budget."""
        objective = tier.latency_objective_ms if tier else None
        calls = minute.post_durations_ms
        budget = tier.error_budget if tier and objective is not None else None
        found = self.slow_calls.step(len(calls), slow_calls(calls, objective), budget)
        detail = ""
        if tier and objective is not None and found.score:
            detail = slow_burn_text(found, tier.name, objective)
        return Signal(
            LATENCY_OBJECTIVE, LATENCY_OBJECTIVE, found.score, found.budget, found.observed, detail
        )

    def _latch(self, name: str, kind: str) -> tuple[str, Latch]:
        entry = self.latches.get(name)
        if entry is None:
            config = CATEGORY_LATCH if kind == EXCEPTION_CATEGORY else FINDING_LATCH
            entry = self.latches[name] = (kind, Latch(config))
        return entry

    def mark_open(
        self,
        kinds: list[str],
        strongest: str = "",
        categories: Sequence[str] = (),
        eased: Collection[str] = (),
    ) -> None:
        """An alert of these kinds is open in the store: open the matching alarms.

        The alarm of each of the alert's failure ``categories`` opens (or, for an alert
        stored without them, that of the category its ``strongest`` signal names), so their
        failures stay out of the history as before the restart. The latches of categories
        of earlier alerts stay as they are.

        A signal of ``eased`` (signal names, ``category:mapping``) settled while the alert
        stayed open: its alarm is left as the minutes evaluated again left it, closed unless
        it fired again since; reopened, it held its failures out of the history and could
        keep the alert open longer than without a restart."""
        for signal, kind in SIGNALS:
            if kind in kinds and signal not in eased:
                self.alarms[signal].is_open = True
        named = [
            name
            for name, (kind, _) in self.latches.items()
            if kind in kinds and kind != EXCEPTION_CATEGORY
        ]
        if EXCEPTION_CATEGORY in kinds:
            named += [f"{CATEGORY_PREFIX}{category}" for category in categories] or [
                strongest
                if strongest.startswith(CATEGORY_PREFIX)
                else f"{CATEGORY_PREFIX}{EXCEPTION_CATEGORY}"
            ]
        for name in named:
            if name not in eased:
                self._latch(name, EXCEPTION_CATEGORY)[1].is_open = True

    def is_open(self, name: str) -> bool:
        """Whether the alarm or latch of the signal ``name`` is open."""
        if name in self.alarms:
            return self.alarms[name].is_open
        return name in self.latches and self.latches[name][1].is_open

    @staticmethod
    def _value(signal: str, minute: Minute) -> float:
        if signal == "error_rate":
            return minute.failed / minute.transactions if minute.transactions > 0 else math.nan
        return minute.transactions


def _cells(minutes: pd.DataFrame, column: str) -> list[Any]:
    """The cells of a pair column, or none for every minute when the block has no such
    column."""
    return minutes[column].tolist() if column in minutes else [None] * len(minutes)


def _items(pairs: Any) -> list[str]:
    """The items of a pair column's cell (an array, or nothing for a minute without any)."""
    if not isinstance(pairs, list | np.ndarray) or not len(pairs):
        return []
    return [str(pair) for pair in pairs]


def category_counts(pairs: Any) -> dict[str, list[str]]:
    """Failed transactions per exception category from ``category\\x1ftransaction`` items."""
    failed: dict[str, list[str]] = {}
    for pair in _items(pairs):
        category, transaction = split_pair(pair)
        failed.setdefault(category, []).append(transaction)
    return failed


def failed_amounts(pairs: Any) -> dict[str, float]:
    """Each failed transaction's amount from ``transaction\x1famount`` items."""
    return {key: float(amount) for key, amount in _first_per_transaction(pairs).items()}


def failed_currencies(pairs: Any) -> dict[str, str]:
    """Each failed transaction's currency from ``transaction\x1fcurrency`` items."""
    return _first_per_transaction(pairs)


def _first_per_transaction(pairs: Any) -> dict[str, str]:
    """The value of each transaction in ``transaction\x1fvalue`` items: the first in sort
    order of one seen with two, so every minute picks the same."""
    values: dict[str, str] = {}
    for transaction, value in map(split_pair, sorted(_items(pairs))):
        values.setdefault(transaction, value)
    return values


def category_messages(pairs: Any) -> dict[str, str]:
    """One error message per category from ``category\\x1fmessage`` items (the shortest, so
    the same one is quoted minute after minute)."""
    messages: dict[str, str] = {}
    for pair in sorted(_items(pairs), key=lambda text: (len(text), text)):
        category, message = split_pair(pair)
        messages.setdefault(category, message)
    return messages


def _headline(signal: Signal) -> tuple[bool, float]:
    """How an alert's signals rank for its text: by score, except that the tier's budget comes
    after every other signal, since they say what failed and how (mapping failures, an ERP
    slower than usual), where the budget only says how much."""
    return signal.kind not in BUDGET_KINDS, signal.score


def _affected(active: list[Signal], values: Minute, counted: int) -> float:
    """The minute's affected transactions besides findings: its failed ones not counted yet
    (``counted``), all of them while latency or its objective is in alarm (all were slowed),
    the shortfall while volume is."""
    kinds = {signal.kind for signal in active}
    affected = float(counted)
    if kinds & {LATENCY, LATENCY_OBJECTIVE}:
        affected = max(affected, values.transactions)
    if "volume" in kinds:
        volume = next(s for s in active if s.kind == "volume")
        affected = max(affected, max(0.0, volume.baseline - values.transactions))
    return affected


def _quote(quoted: str, values: Minute, ledger: AlertLedger, found_now: bool) -> str:
    """What the alert quotes after this minute, for the signal its text names (``quoted``,
    the peak's); empty leaves the quote as it was, so a minute without a fitting error keeps
    the last one that fitted."""
    if quoted in FINDING_KINDS:
        # the minute's most frequent error is some other transaction's: quote every finding
        # of the alert's life, which its numbers count
        return ledger.text(quoted) if ledger.found else ""
    if quoted.startswith(CATEGORY_PREFIX):
        # another category's error would send the reader the wrong way
        top_error = values.category_errors.get(quoted.removeprefix(CATEGORY_PREFIX), "")
    elif quoted in (LATENCY_SIGNAL, LATENCY_OBJECTIVE):
        # of the minute's errors, only a timeout is what a slowdown explains; a validation
        # error beside slow calls is the everyday background
        top_error = next(
            (values.category_errors[c] for c in SLOWNESS_CATEGORIES if c in values.category_errors),
            "",
        )
    elif quoted == "volume":
        top_error = ""  # a flow gone quiet fails nothing
    else:
        top_error = values.top_error
    if not top_error and found_now:
        top_error = ledger.text(quoted)
    return top_error


def _latency_text(test: LatencyShiftTest, score: float) -> str:
    return (
        f"posting calls of the last {test.window} min: median {test.observed_ms:.4g} ms against "
        f"a usual {test.baseline_ms:.4g} ms (pooled z {score:.1f})"
    )


@dataclass
class RunReport:
    """What one catch-up evaluated and changed."""

    minutes: int = 0
    series: int = 0
    opened: int = 0
    resolved: int = 0
    query_seconds: float = 0.0
    watch_seconds: float = 0.0
    detect_seconds: float = 0.0
    evaluated_until: datetime | None = None
    open_alerts: list[Alert] = field(default_factory=list)


class DetectorRunner:
    """Evaluates stored minutes into alerts, resuming from the stored position.

    ``severity`` gives the severity in force when a minute is evaluated (the tiers' error
    budgets); by default the process's severity file, read again when it changes."""

    def __init__(
        self,
        store: Store,
        name: str = DEFAULT_RUNNER,
        chunk: timedelta = DEFAULT_CHUNK,
        warmup: timedelta = WARMUP,
        severity: Callable[[], Severity] | None = None,
    ) -> None:
        self.store = store
        self.severity = severity or severity_in_force().current
        self.name = name
        self.chunk = chunk
        self.warmup = warmup
        self.book = AlertBook(store)
        # what each open alert has counted, by alert id
        self.ledgers: dict[str, AlertLedger] = {}
        self.series: dict[tuple[str, str], SeriesState] = {}
        self.cursor: datetime | None = None
        self._started = False

    def catch_up(self, until: datetime, stop: threading.Event | None = None) -> RunReport:
        """Evaluate every whole minute before ``until`` that was not evaluated yet.

        A set ``stop`` ends the work before the next minute (or the next query of the store):
        the minutes evaluated so far are written and their position is saved, and the rest
        waits for the next start. A week's first catch-up takes minutes, and a shutdown should
        not wait even for one chunk of it."""
        until = _floor_minute(until)
        stop = stop or threading.Event()
        report = RunReport()
        opened, resolved = self.book.opened, self.book.resolved
        if not self._started and not self._start(until, stop):
            report.evaluated_until = self.cursor
            return report
        assert self.cursor is not None
        progress = _CatchUpProgress(self.cursor, until)
        for chunk_start, chunk_end in _chunks(self.cursor, until, self.chunk):
            runtime.judging(chunk_end)
            reached = self._evaluate_chunk(chunk_start, chunk_end, report, stop)
            if reached > chunk_start:
                self.book.flush()
                self._save_cursor(reached)
            if reached < chunk_end:
                logger.info(
                    "Stopped catching up; minutes evaluated up to %s, the rest follow at the "
                    "next start",
                    reached.strftime("%Y-%m-%d %H:%M UTC"),
                )
                break
            progress.reached(chunk_end)
        report.series = len(self.series)
        report.opened = self.book.opened - opened
        report.resolved = self.book.resolved - resolved
        report.evaluated_until = self.cursor
        report.open_alerts = list(self.book.open_alerts.values())
        return report

    def resume_at(self, cursor: datetime) -> None:
        """Evaluate from ``cursor`` on with the series as they are now, skipping the stored
        position, the week's warm-up read and the open alerts (series learned elsewhere)."""
        self.cursor = _floor_minute(cursor)
        self._started = True

    def _start(self, until: datetime, stop: threading.Event) -> bool:
        """Find where to begin, learn the week before it and restore open alerts; False when
        there is nothing to evaluate yet or ``stop`` was set meanwhile (nothing is written)."""
        stored = self.cursor = self._load_cursor()
        if self.cursor is None:
            bounds = data_bounds(self.store)
            if bounds is None:
                return False
            first = _floor_minute(bounds[0].replace(tzinfo=UTC))
            self.cursor = max(first, until - FIRST_START_LOOKBACK)
        logger.info(
            "Detector runner %r learns each flow's history before %s",
            self.name,
            self.cursor.strftime("%Y-%m-%d %H:%M UTC"),
        )
        if not self._learn_before(self.cursor, stop):
            # the next start learns it all again: keep nothing half learned
            self.series.clear()
            self.ledgers.clear()
            self.cursor = stored
            return False
        # nothing to write yet: the book's listeners hear that the runner starts, so the
        # notifier delivers what was left undelivered before it, ahead of the catch-up
        self.book.flush()
        self._started = True
        logger.info(
            "Detector runner %r starts at %s with %d series and %d open alerts",
            self.name,
            self.cursor.isoformat(),
            len(self.series),
            len(self.book.open_alerts),
        )
        return True

    def _learn_before(self, cursor: datetime, stop: threading.Event) -> bool:
        """Learn the week before ``cursor`` and the open alerts; False when stopped first.

        A series with an open alert is learned up to the alert's opening, and its minutes
        since are evaluated again without writing anything (:meth:`_replay`), so its alarms
        stand where they stood before the restart, with the calm minutes each has counted
        toward settling; otherwise every alarm would start counting them again."""
        start = cursor - self.warmup
        open_alerts = self.book.load_open()
        replay_from = {
            key: max(start, _floor_minute(alert.opened_at)) for key, alert in open_alerts.items()
        }
        if not self._warm_up(start, cursor, stop, replay_from):
            return False
        if not self._replay(replay_from, cursor, stop):
            return False
        for key, state in self.series.items():
            if key not in open_alerts:
                state.settle_latency_latch()
        eased = eased_signals(self.store, [alert.alert_id for alert in open_alerts.values()])
        for (flow, target), alert in open_alerts.items():
            state = self._series(flow, target, alert.business_object)
            settled = eased.get(alert.alert_id, frozenset())
            state.mark_open(alert.kinds, alert.signal, alert.categories, settled)
            # those that fired again since are open; a later return of the others is "recurred"
            alert.eased = {name for name in settled if not state.is_open(name)}
        self._restore_ledgers()
        return not stop.is_set()

    def _warm_up(
        self,
        start: datetime,
        end: datetime,
        stop: threading.Event,
        learn_until: dict[tuple[str, str], datetime] | None = None,
    ) -> bool:
        """Learn the minutes of ``[start, end)`` a day at a time, each series' only before its
        ``learn_until`` if it has one; False when stopped first."""
        learn_until = learn_until or {}
        alarms = category_alarms(self.store, start, end)
        for chunk_start, chunk_end in _chunks(start, end, timedelta(days=1)):
            if stop.is_set():
                return False
            frame = read_minutes(self.store, chunk_start, chunk_end)
            index = pd.date_range(
                _naive(chunk_start), _naive(chunk_end), freq="1min", inclusive="left"
            )
            for (flow, target), rows in frame.groupby(["flow", "target"], sort=False):
                known = (flow, target) in self.series
                state = self._series(flow, target, str(rows["business_object"].iloc[-1]))
                # an uninterrupted run steps a series from its first minute in the store, not
                # from the start of the day it shows up in: empty minutes before it would
                # make a young flow look a day old (a first day is judged differently)
                since = index if known else index[index >= rows["minute"].min()]
                if (flow, target) in learn_until:
                    since = since[since < _naive(learn_until[(flow, target)])]
                dense = rows.set_index("minute").reindex(since)
                dense[["transactions", "failed", "calls"]] = dense[
                    ["transactions", "failed", "calls"]
                ].fillna(0.0)
                state.learn(dense, alarms.get((flow, target), ()), state.tier(self.severity()))
        return True

    def _replay(
        self, replay_from: dict[tuple[str, str], datetime], end: datetime, stop: threading.Event
    ) -> bool:
        """Step each series of ``replay_from`` through its minutes from there to ``end``, as
        their evaluation did, writing nothing (their alerts are stored already); False when
        stopped first."""
        if not replay_from:
            return True
        for chunk_start, chunk_end in _chunks(min(replay_from.values()), end, self.chunk):
            if stop.is_set():
                return False
            rows = read_minutes(self.store, chunk_start, chunk_end).to_dict("records")
            found = watch_chunk(self.store, chunk_start, chunk_end)
            by_minute: dict[pd.Timestamp, list[dict]] = {}
            for row in rows:
                if (row["flow"], row["target"]) in replay_from:
                    by_minute.setdefault(row["minute"], []).append(row)
            minute = chunk_start
            while minute < chunk_end:
                stamp = pd.Timestamp(_naive(minute))
                seen = self._minutes_of(by_minute.get(stamp, []))
                severity = self.severity()
                for key, since in replay_from.items():
                    if minute >= since:
                        state = self._series(*key, "")
                        findings = found.get(stamp, {}).get(key, {})
                        state.step(seen.get(key) or Minute(), findings, state.tier(severity))
                minute += MINUTE
        return True

    def _evaluate_chunk(
        self, start: datetime, end: datetime, report: RunReport, stop: threading.Event
    ) -> datetime:
        """Evaluate the minutes of ``[start, end)`` in memory until ``stop`` is set; return the
        first minute not evaluated (``end`` when all were). A minute is evaluated whole or not
        at all: the stop is looked at only between two minutes, and between the queries."""
        if stop.is_set():
            return start
        began = time.perf_counter()
        frame = read_minutes(self.store, start, end)
        read = time.perf_counter()
        report.query_seconds += read - began
        if stop.is_set():
            return start
        found = watch_chunk(self.store, start, end)
        queried = time.perf_counter()
        report.watch_seconds += queried - read
        by_minute: dict[pd.Timestamp, list[dict]] = {}
        for row in frame.to_dict("records"):
            by_minute.setdefault(row["minute"], []).append(row)
        minute = start
        while minute < end and not stop.is_set():
            stamp = pd.Timestamp(_naive(minute))
            self._evaluate_minute(minute, by_minute.get(stamp, []), found.get(stamp, {}))
            minute += MINUTE
            report.minutes += 1
        report.detect_seconds += time.perf_counter() - queried
        return minute

    def _evaluate_minute(
        self,
        minute: datetime,
        rows: list[dict],
        found: dict[tuple[str, str], dict[str, Finding]] | None = None,
    ) -> None:
        found = found or {}
        for flow, target in found:
            self._series(flow, target, "")
        seen = self._minutes_of(rows)
        severity = self.severity()
        for key, state in self.series.items():
            values = seen.get(key) or Minute()
            findings = found.get(key, {})
            onsets, active = state.step(values, findings, state.tier(severity))
            self._apply(state, minute, values, onsets, active, findings)

    def _minutes_of(self, rows: list[dict]) -> dict[tuple[str, str], Minute]:
        """One minute's stored rows by series (each series known from then on)."""
        seen: dict[tuple[str, str], Minute] = {}
        for row in rows:
            self._series(row["flow"], row["target"], row["business_object"])
            seen[(row["flow"], row["target"])] = Minute(
                calls=float(row["calls"]),
                transactions=float(row["transactions"]),
                failed=float(row["failed"]),
                p50_ms=float(row["p50_ms"]),
                p95_ms=float(row["p95_ms"]),
                money_at_risk=float(row["money_at_risk"]),
                top_error=str(row["top_error"]),
                post_durations_ms=list(row["post_durations_ms"]),
                categories=category_counts(row["failed_categories"]),
                category_errors=category_messages(row.get("category_errors")),
                failed_amounts=failed_amounts(row.get("failed_amounts")),
                failed_currencies=failed_currencies(row.get("failed_currencies")),
            )
        return seen

    def _apply(
        self,
        state: SeriesState,
        minute: datetime,
        values: Minute,
        onsets: list[Signal],
        active: list[Signal],
        findings: dict[str, Finding] | None = None,
    ) -> None:
        key = (state.flow, state.target)
        alert = self.book.open_alerts.get(key)
        opening = alert is None and bool(onsets)
        if alert is None and onsets:
            # the minute's onsets open it together: one opening, led by the strongest
            first = max(onsets, key=_headline)
            joining = [signal for signal in onsets if signal is not first]
            alert = self.book.open(
                state.flow, state.target, state.business_object, minute, first, *joining
            )
        elif alert is not None:
            self.book.escalate(alert, minute, *onsets)
        if alert is None:
            return
        if not active:
            self.book.resolve(alert, minute)
            self.ledgers.pop(alert.alert_id, None)
            return
        self.book.ease(alert, minute, *state.settled)
        strongest = max(active, key=_headline)
        ledger = self.ledgers.setdefault(alert.alert_id, AlertLedger())
        failed, counted, money = ledger.fail(values.failed_amounts, values.failed_currencies)
        if opening and alert.kind == ERROR_BUDGET:
            # opened on the hour's failures alone: they are the alert's, not only this minute's
            for amounts, currencies in state.burned:
                before = ledger.fail(amounts, currencies)
                failed, counted, money = failed + before[0], counted + before[1], money + before[2]
        affected = _affected(active, values, counted)
        for finding in (findings or {}).values():
            # postings made twice and events never consumed are affected money, not failures
            found, found_money = ledger.record(finding)
            affected += found
            money += found_money
        # the quote goes with the signal the alert's text names: its peak after this minute
        quoted = strongest.signal if strongest.score > alert.peak_score else alert.signal
        top_error = _quote(quoted, values, ledger, bool(findings))
        self.book.observe(alert, minute, strongest, round(affected), failed, money, top_error)
        alert.money_by_currency = ledger.money_by_currency()

    def _restore_ledgers(self) -> None:
        """Count again what the open alerts counted before a restart: a transaction counted
        then is not counted twice, and an alert's text goes on naming its whole life."""
        alerts = list(self.book.open_alerts.values())
        if not alerts or self.cursor is None:
            return
        start = min(_counted_since(alert) for alert in alerts)
        frame = read_minutes(self.store, start, self.cursor)
        found = watch_chunk(self.store, start, self.cursor)
        for alert in alerts:
            ledger = self.ledgers[alert.alert_id] = AlertLedger()
            series = (alert.flow, alert.target)
            rows = frame[(frame["flow"] == alert.flow) & (frame["target"] == alert.target)]
            failed = {
                row.minute: (row.failed_amounts, row.failed_currencies) for row in rows.itertuples()
            }
            since = pd.Timestamp(_naive(_counted_since(alert)))
            opened = pd.Timestamp(_naive(_floor_minute(alert.opened_at)))
            for stamp in sorted({*failed, *found}):
                if stamp < since:
                    continue
                amounts, currencies = failed.get(stamp, (None, None))
                ledger.fail(failed_amounts(amounts), failed_currencies(currencies))
                if stamp < opened:
                    continue  # the hour a budget opened on counted its failures alone
                for finding in found.get(stamp, {}).get(series, {}).values():
                    ledger.record(finding)
            alert.money_by_currency = ledger.money_by_currency()

    def _series(self, flow: str, target: str, business_object: str) -> SeriesState:
        key = (flow, target)
        state = self.series.get(key)
        if state is None:
            state = self.series[key] = SeriesState(flow, target, business_object)
        elif business_object and not state.business_object:
            state.business_object = business_object
        return state

    def _load_cursor(self) -> datetime | None:
        rows = self.store.query_rows(
            f"SELECT evaluated_until FROM {self.store.table(STATE_TABLE)} FINAL "
            "WHERE runner = {runner:String}",
            {"runner": self.name},
        )
        if not rows:
            return None
        return pd.Timestamp(rows[0][0]).tz_convert(UTC).to_pydatetime()

    def _save_cursor(self, until: datetime) -> None:
        now = datetime.now(UTC)
        row = {
            "runner": self.name,
            "evaluated_until": until,
            "updated_at": now,
            "version": int(until.timestamp() * 1000),
        }
        self.store.insert_arrow(STATE_TABLE, pa.Table.from_pylist([row], _STATE_SCHEMA))
        self.cursor = until


class _CatchUpProgress:
    """Logs how far a long catch-up is, every ``CATCH_UP_PROGRESS_SECONDS``."""

    def __init__(self, start: datetime, until: datetime) -> None:
        self._start = start
        self._until = until
        self._logged = time.monotonic()

    def reached(self, moment: datetime) -> None:
        """The minutes before ``moment`` are evaluated."""
        if time.monotonic() - self._logged < CATCH_UP_PROGRESS_SECONDS or moment >= self._until:
            return
        self._logged = time.monotonic()
        done = (moment - self._start) // MINUTE
        total = (self._until - self._start) // MINUTE
        logger.info(
            "Catching up: evaluated to %s, %d of %d minute(s) (%d%%)",
            moment.strftime("%Y-%m-%d %H:%M UTC"),
            done,
            total,
            100 * done // max(total, 1),
        )


class RunnerThread:
    """The runner in a background thread, evaluating each minute as it comes due, until stopped."""

    def __init__(
        self,
        store: Store,
        delay: timedelta,
        interval_seconds: float | None = None,
        hold: threading.Event | None = None,
    ) -> None:
        self.runner = DetectorRunner(store)
        self.delay = delay
        self.interval_seconds = interval_seconds
        # evaluate nothing until this is set (a demo's backfill still arriving)
        self.hold = hold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seamwatch-detectors", daemon=True)

    def start(self) -> None:
        """Start evaluating in the background."""
        self._thread.start()

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Stop after the minute in progress, if any, once the minutes evaluated so far are
        written; the wait is for that minute and at most one query of the store."""
        self._stop.set()
        if self._thread.ident is None:
            return
        self._thread.join(timeout_seconds)
        if self._thread.is_alive():
            logger.warning("Detector runner did not stop within %.0fs", timeout_seconds)

    def _run(self) -> None:
        # a ClickHouse server that was down at start: begin once it answers, from the stored
        # position, so the minutes missed meanwhile are caught up like any downtime
        try:
            if not wait_until_open(self.runner.store, self._stop):
                return
        except StoreError:
            return  # the server refused the store: the command stops and says why
        if self.hold is not None and not self.hold.is_set():
            logger.info("The detectors wait for the backfill to be delivered")
            while not self.hold.wait(HOLD_POLL_SECONDS):
                if self._stop.is_set():
                    return
        run_periodically(self.runner, self._stop, self.delay, self.interval_seconds)


def run_periodically(
    runner: DetectorRunner,
    stop: threading.Event,
    delay: timedelta,
    interval_seconds: float | None = None,
) -> None:
    """Catch up, then evaluate each new minute ``delay`` after it ends, until ``stop`` is set.

    ``interval_seconds`` evaluates that often instead, whatever the clock says."""
    while not stop.is_set():
        try:
            report = runner.catch_up(datetime.now(UTC) - delay, stop)
            if report.minutes:
                logger.info(
                    "Evaluated %d minute(s) of %d series in %.2fs: %d opened, %d resolved, %d open",
                    report.minutes,
                    report.series,
                    report.query_seconds + report.watch_seconds + report.detect_seconds,
                    report.opened,
                    report.resolved,
                    len(report.open_alerts),
                )
        except Exception:  # noqa: BLE001 - a thread boundary: log it and try again next minute
            logger.exception("Detector evaluation failed; retrying at the next minute")
        if interval_seconds is None:
            stop.wait(seconds_to_next_evaluation(datetime.now(UTC), delay))
        else:
            stop.wait(interval_seconds)


def evaluation_timing(delay: timedelta) -> str:
    """When a minute is judged, in words, e.g. ``each minute is evaluated 30 s after it ends``."""
    seconds = delay.total_seconds()
    return f"each minute is evaluated {seconds:g} s after it ends ({EVALUATION_DELAY_ENV})"


def seconds_to_next_evaluation(now: datetime, delay: timedelta) -> float:
    """Seconds from ``now`` until the minute in progress is ``delay`` past its end."""
    due = _floor_minute(now - delay) + MINUTE + delay
    return (due - now).total_seconds()


def _chunks(start: datetime, end: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        yield cursor, upper
        cursor = upper


def _counted_since(alert: Alert) -> datetime:
    """The first minute whose failures an alert counts: its opening, or for one the error
    budget opened, the first minute of the hour it was judged on."""
    opened = _floor_minute(alert.opened_at)
    if alert.kind == ERROR_BUDGET:
        return opened - (LONG_WINDOW - 1) * MINUTE
    return opened


def _floor_minute(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _median(values: deque[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.median(finite)) if finite else math.nan

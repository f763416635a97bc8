"""Shared helpers: where a detector or an alarm fires on a stream, a severity without budgets."""

from collections.abc import Callable, Iterable

from detectors.alarm import HysteresisAlarm
from detectors.base import SeriesDetector
from detectors.severity import Severity, load_severity


def detection_indices(
    model: SeriesDetector | HysteresisAlarm, stream: Iterable[float], threshold: float | None = None
) -> list[int]:
    """Indices where an alarm opens, or where a detector's score reaches ``threshold``."""
    hits = []
    for i, x in enumerate(stream):
        if isinstance(model, HysteresisAlarm):
            if model.update(float(x)):
                hits.append(i)
        elif model.update(float(x)) >= threshold:
            hits.append(i)
    return hits


def without_error_budgets() -> Callable[[], Severity]:
    """The built-in severity with no tier's error budget, as a runner's ``severity``: for
    fixtures whose usual failures (a third of postings rate-limited) would spend a critical
    flow's budget, in tests of the other detectors."""
    severity = load_severity()
    tiers = {
        name: tier.model_copy(update={"error_budget": None})
        for name, tier in severity.model.tiers.items()
    }
    unbudgeted = Severity(severity.model.model_copy(update={"tiers": tiers}), "no budgets")
    return lambda: unbudgeted

"""Shared helper: where a detector or an alarm fires on a stream."""

from collections.abc import Iterable

from detectors.alarm import HysteresisAlarm
from detectors.base import SeriesDetector


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

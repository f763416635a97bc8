"""Score the product's detectors on labelled series with the NAB-style scorer.

Public sets come from the data folder (:mod:`detectors.corpus`). Other labelled sources,
such as the simulator's injected incidents, plug in through
:func:`register_labelled_source` and are scored the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detectors.corpus import SETS, LabelledSeries, load_set
from detectors.nab import PROFILES, FileScore, normalised_score, score_file
from detectors.product import run_series

logger = logging.getLogger(__name__)

# NAB's mixed metrics are judged by the latency detector: it is the two-sided, generic one
KIND_FOR_SERIES = {"latency": "latency", "error_rate": "error_rate", "generic": "latency"}

LabelledSource = Callable[[], list[LabelledSeries]]
_EXTRA_SOURCES: dict[str, LabelledSource] = {}


def register_labelled_source(name: str, loader: LabelledSource) -> None:
    """Add a labelled set (e.g. simulator incidents as windows) to every evaluation."""
    _EXTRA_SOURCES[name] = loader


@dataclass(frozen=True)
class FileResult:
    """One file's window-level counts and its raw standard-profile score (NAB's per-file
    score: the sum of its windows' rewards less its misses and false alarms, before a set is
    normalised)."""

    name: str
    kind: str
    windows: int
    caught: int
    missed: int
    false_alarms: int
    raw_standard: float

    def as_dict(self) -> dict[str, object]:
        """Plain form for JSON output."""
        return {
            "file": self.name,
            "kind": self.kind,
            "windows": self.windows,
            "caught": self.caught,
            "missed": self.missed,
            "false_alarms": self.false_alarms,
            "raw_standard": round(self.raw_standard, 3),
        }


@dataclass
class SetResult:
    """Scores of one labelled set under every profile, with window-level counts.

    A set without a window to score has no score: ``None`` under every profile."""

    name: str
    files: int = 0
    windows: int = 0
    caught: int = 0
    missed: int = 0
    false_alarms: int = 0
    scores: dict[str, float | None] = field(default_factory=dict)
    per_file: list[FileResult] = field(default_factory=list)

    def as_dict(self, with_files: bool = False) -> dict[str, object]:
        """Plain form for JSON output; ``with_files`` adds each file's counts."""
        plain: dict[str, object] = {
            "set": self.name,
            "files": self.files,
            "windows": self.windows,
            "caught": self.caught,
            "missed": self.missed,
            "false_alarms": self.false_alarms,
            "scores": {
                name: None if value is None else round(value, 2)
                for name, value in self.scores.items()
            },
        }
        if with_files:
            plain["per_file"] = [one.as_dict() for one in self.per_file]
        return plain


def alarm_rows(series: LabelledSeries) -> np.ndarray:
    """Rows where the product's detector for this series' kind opens an alert."""
    _, flags = run_series(KIND_FOR_SERIES[series.kind], series.timestamps, series.values)
    return np.flatnonzero(flags)


def evaluate_series(name: str, series: Iterable[LabelledSeries]) -> SetResult:
    """Run and score every series of one set."""
    per_profile: dict[str, list[FileScore]] = {profile: [] for profile in PROFILES}
    result = SetResult(name)
    for one in series:
        rows = alarm_rows(one)
        for profile_name, profile in PROFILES.items():
            per_profile[profile_name].append(
                score_file(rows, one.windows, len(one.values), profile)
            )
        standard = per_profile["standard"][-1]
        logger.debug(
            "%s: %d windows, %d caught, %d false alarms",
            one.name,
            standard.windows,
            standard.caught,
            standard.false_alarms,
        )
        result.files += 1
        result.windows += standard.windows
        result.caught += standard.caught
        result.missed += standard.missed
        result.false_alarms += standard.false_alarms
        result.per_file.append(
            FileResult(
                one.name,
                one.kind,
                standard.windows,
                standard.caught,
                standard.missed,
                standard.false_alarms,
                standard.raw,
            )
        )
    # the normalised score divides by the windows: without one there is nothing to measure
    result.scores = {
        name: normalised_score(scores, PROFILES[name]) if result.windows else None
        for name, scores in per_profile.items()
    }
    return result


def evaluate(
    data_dir: Path, sets: Iterable[str] = SETS, warn: Callable[[str], None] = logger.warning
) -> list[SetResult]:
    """Score the public sets found in ``data_dir`` and every registered source; ``warn`` gets
    a line for each window that cannot be scored (:func:`detectors.corpus.load_set`)."""
    results = [evaluate_series(name, load_set(data_dir, name, warn)) for name in sets]
    for name, loader in _EXTRA_SOURCES.items():
        results.append(evaluate_series(name, loader()))
    return results

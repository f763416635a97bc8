"""Business severity: which tier a flow's alerts belong to, read from a validated YAML file.

The file names tiers (critical, high, medium, low), each with a weight and, where set, a latency
objective and an error budget, and an ordered list of rules that map flows, business objects and
target systems to tiers. The first matching rule wins; a flow that no rule matches gets the
default tier. Tiers are resolved when alerts are read, so a changed file re-ranks every alert
without re-ingesting spans.

The default file ships with the package (``severity_default.yaml``); ``--severity FILE`` or
``SEAMWATCH_SEVERITY_FILE`` names another one. A bad file raises :class:`SeverityFileError`
whose message names the file, the line and the field.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seamwatch.yaml_files import describe_errors, read_text_file, read_yaml

SEVERITY_FILE_ENV = "SEAMWATCH_SEVERITY_FILE"
DEFAULT_SEVERITY_FILE = Path(__file__).with_name("severity_default.yaml")

TierName = Literal["critical", "high", "medium", "low"]
TIER_NAMES: tuple[str, ...] = ("critical", "high", "medium", "low")


class SeverityFileError(ValueError):
    """The severity file cannot be read or does not validate; the message says where."""


class TierModel(BaseModel):
    """One tier: its weight in the priority and its objectives."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(gt=0, le=1)
    latency_objective_ms: float | None = Field(None, gt=0)
    error_budget: float | None = Field(None, ge=0, le=1)


class RuleModel(BaseModel):
    """Flows, business objects and targets (shell-style globs) that belong to ``tier``."""

    model_config = ConfigDict(extra="forbid")

    flow: str | None = None
    business_object: str | None = None
    target: str | None = None
    tier: TierName

    @model_validator(mode="after")
    def _has_a_pattern(self) -> RuleModel:
        if self.flow is None and self.business_object is None and self.target is None:
            raise ValueError("a rule needs at least one of flow, business_object or target")
        return self


class SeverityModel(BaseModel):
    """The whole severity file."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[TierName, TierModel]
    default_tier: TierName = "medium"
    rules: list[RuleModel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _tiers_are_defined(self) -> SeverityModel:
        used = {self.default_tier, *(rule.tier for rule in self.rules)}
        missing = sorted(used - set(self.tiers))
        if missing:
            raise ValueError(f"tier(s) {', '.join(missing)} are used but not defined under tiers")
        return self


@dataclass(frozen=True)
class Tier:
    """A resolved tier of one flow."""

    name: str
    weight: float
    latency_objective_ms: float | None
    error_budget: float | None


class Severity:
    """Validated severity rules, answering "which tier is this flow in"."""

    def __init__(self, model: SeverityModel, source: str) -> None:
        self.model = model
        self.source = source

    def tier(self, name: str) -> Tier:
        """The tier called ``name``."""
        spec = self.model.tiers[name]  # type: ignore[index]
        return Tier(name, spec.weight, spec.latency_objective_ms, spec.error_budget)

    def tier_for(self, flow: str, business_object: str = "", target: str = "") -> Tier:
        """The tier of the first rule that matches, else the default tier."""
        for rule in self.model.rules:
            if (
                _matches(rule.flow, flow)
                and _matches(rule.business_object, business_object)
                and _matches(rule.target, target)
            ):
                return self.tier(rule.tier)
        return self.tier(self.model.default_tier)


def _matches(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, pattern)


def parse_severity(text: str, source: str = "<severity>") -> Severity:
    """Validate the YAML ``text``; errors name ``source``, the line and the field."""
    data, lines = read_yaml(text, source, SeverityFileError, "it needs at least 'tiers'.")
    try:
        model = SeverityModel.model_validate(data)
    except ValidationError as exc:
        raise SeverityFileError(
            describe_errors(exc, source, lines, "Invalid severity file")
        ) from None
    return Severity(model, source)


def load_severity(path: Path | str | None = None) -> Severity:
    """Read the severity file at ``path``, ``$SEAMWATCH_SEVERITY_FILE`` or the default one.

    An edited file is read again (the cache is keyed by its modification time), so a running
    process ranks with the file as it is now."""
    chosen = Path(path or os.environ.get(SEVERITY_FILE_ENV) or DEFAULT_SEVERITY_FILE).resolve()
    try:
        stat = chosen.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (0, 0)
    return _load_cached(chosen, version)


@lru_cache(maxsize=8)
def _load_cached(path: Path, version: tuple[int, int]) -> Severity:
    text = read_text_file(
        path,
        SeverityFileError,
        "severity file",
        f"Pass --severity FILE or set {SEVERITY_FILE_ENV} to a readable file.",
    )
    return parse_severity(text, str(path))

"""Business severity: which tier a flow's alerts belong to, read from a validated YAML file.

The file names tiers (critical, high, medium, low), each with a weight and, where set, a latency
objective and an error budget, and an ordered list of rules that map flows, business objects and
target systems to tiers. The first matching rule wins; a flow that no rule matches gets the
default tier. Tiers are resolved when alerts are read, so a changed file re-ranks every alert
without re-ingesting spans.

An optional ``money`` section names the reporting currency and exchange rates into it: the
priority weighs an alert's money at risk in that currency (:meth:`Severity.convert`). Without
it there is nothing to convert into, and money leaves the priority.

The default file ships with the package (``severity_default.yaml``);
``SEAMWATCH_SEVERITY_FILE`` names another one, and a command with a ``--severity`` option
takes it there too. A bad file raises :class:`SeverityFileError` whose message names the file,
the line and the field.

A long-running process ranks through :func:`severity_in_force`: one
:class:`SeveritySource` per process, shared by the alert listings and the notifications, which
reads the file again when it changes and keeps the last good version when the change does
not validate.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from babel.numbers import list_currencies
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from detectors.priority import DEFAULT_MONEY_FULL_WEIGHT
from seamwatch.money import Converted, convert
from seamwatch.settings import SEVERITY_FILE_ENV
from seamwatch.yaml_files import (
    PLAIN_NUMBER,
    Lines,
    Problem,
    describe_problems,
    line_of,
    problem_line,
    read_text_file,
    read_yaml_and_problems,
    validation_problems,
    yaml_value,
)

logger = logging.getLogger(__name__)

DEFAULT_SEVERITY_FILE = Path(__file__).with_name("severity_default.yaml")

TierName = Literal["critical", "high", "medium", "low"]
TIER_NAMES: tuple[str, ...] = ("critical", "high", "medium", "low")
PATTERN_FIELDS = ("flow", "business_object", "target")
INVALID_TITLE = "Invalid severity file"

# An ISO 4217 code as the file must write it: three capital letters.
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")

# The file's modification time and size: a change to either means it must be read again.
FileVersion = tuple[int, int]


class SeverityFileError(ValueError):
    """The severity file cannot be read or does not validate; the message says where."""


class TierModel(BaseModel):
    """One tier: its weight in the priority and its objectives."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(gt=0, le=1, **PLAIN_NUMBER)
    latency_objective_ms: float | None = Field(None, gt=0, **PLAIN_NUMBER)
    error_budget: float | None = Field(None, ge=0, le=1, **PLAIN_NUMBER)


class RuleModel(BaseModel):
    """Flows, business objects and targets (shell-style globs) that belong to ``tier``."""

    model_config = ConfigDict(extra="forbid")

    flow: str | None = None
    business_object: str | None = None
    target: str | None = None
    tier: TierName

    @field_validator(*PATTERN_FIELDS)
    @classmethod
    def _is_a_glob(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            check_glob(pattern)
        return pattern

    @model_validator(mode="after")
    def _has_a_pattern(self) -> RuleModel:
        if self.flow is None and self.business_object is None and self.target is None:
            raise ValueError("a rule needs at least one of flow, business_object or target")
        return self

    def match(self) -> tuple[str | None, str | None, str | None]:
        """The patterns the rule matches on, in the order of :data:`PATTERN_FIELDS`."""
        return (self.flow, self.business_object, self.target)


# ISO 4217 codes that name no money: "no currency" and the code kept for tests
NOT_MONEY = {"XXX": "ISO 4217's code for no currency", "XTS": "ISO 4217's code for testing"}


def check_currency(code: str) -> str:
    """``code`` when it is an ISO 4217 currency code in capitals; ValueError says why not."""
    if not _CURRENCY_CODE.fullmatch(code):
        fix = code.strip().upper()
        hint = f"; write {fix!r}" if fix in list_currencies() else ", such as EUR or USD"
        raise ValueError(f"a currency is its ISO 4217 code in three capital letters{hint}")
    if code not in list_currencies():
        raise ValueError("not an ISO 4217 currency code; check its spelling")
    if code in NOT_MONEY:
        raise ValueError(f"{code} is {NOT_MONEY[code]}, not money a business books")
    return code


CurrencyCode = Annotated[str, Field(strict=True), AfterValidator(check_currency)]


class MoneyModel(BaseModel):
    """The currency the priority weighs money in, and what other currencies are worth in it:
    a rate is how many units of ``reporting_currency`` one unit of its currency is worth."""

    model_config = ConfigDict(extra="forbid")

    reporting_currency: CurrencyCode
    rates: dict[CurrencyCode, Annotated[float, Field(gt=0, **PLAIN_NUMBER)]] = Field(
        default_factory=dict
    )
    # money at risk, in the reporting currency, that weighs fully in the priority: it sets the
    # money factor's scale, so a business reporting in yen sets it as many yen as matter
    full_weight_at: float = Field(DEFAULT_MONEY_FULL_WEIGHT, gt=1, **PLAIN_NUMBER)


class SeverityModel(BaseModel):
    """The whole severity file; :func:`cross_check` also checks the rules against the tiers."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[TierName, TierModel]
    default_tier: TierName = "medium"
    rules: list[RuleModel] = Field(default_factory=list)
    money: MoneyModel | None = None

    @field_validator("money", mode="before")
    @classmethod
    def _money_is_not_empty(cls, money: object) -> object:
        # "money:" with nothing under it reads as no section; say so rather than drop money
        if money is None:
            raise ValueError(
                "the money section is empty; give reporting_currency (and rates), or remove it"
            )
        return money


# How errors name what a tier or a rule must be, in the file's words.
MODEL_NOUNS = {
    "TierModel": f"a mapping of tier settings ({', '.join(TierModel.model_fields)})",
    "RuleModel": f"a mapping of rule fields ({', '.join(RuleModel.model_fields)})",
    "MoneyModel": f"a mapping of money settings ({', '.join(MoneyModel.model_fields)})",
}

# How errors name the keys of a mapping, by the mapping's field.
KEY_NOUNS = {"tiers": "tier", "money.rates": "currency"}


def check_glob(pattern: str) -> None:
    """Raise ValueError when ``pattern`` cannot be meant as a shell-style glob."""
    if not pattern:
        raise ValueError("the pattern is empty; give one, or leave the field out to match any")
    if not pattern.strip():
        raise ValueError("the pattern is blank; give one, or leave the field out to match any")
    position = _unclosed_set(pattern)
    if position is not None:
        # fnmatch takes an unclosed '[' as a literal '[', so the rule would silently never match
        raise ValueError(
            f"the '[' at position {position + 1} opens a set of characters that is never "
            "closed with ']'; close it, or write [[] for a literal '['"
        )


def _unclosed_set(pattern: str) -> int | None:
    """Index of a '[' that fnmatch reads as a literal because no ']' closes its set."""
    index = 0
    while index < len(pattern):
        if pattern[index] != "[":
            index += 1
            continue
        # as in fnmatch.translate: '!' negates, and a ']' right after the opening is a member
        end = index + 1
        end += pattern[end : end + 1] == "!"
        end += pattern[end : end + 1] == "]"
        close = pattern.find("]", end)
        if close < 0:
            return index
        index = close + 1
    return None


def cross_check(data: dict[str, Any], lines: Lines) -> list[Problem]:
    """What validation of each part alone does not see: tiers used but not defined, rules
    that can never match because an earlier rule has exactly the same patterns, a latency
    objective without an error budget, and a rate for the reporting currency other than 1.

    Only the parts that validate are judged, so these come in the same report as the file's
    other mistakes rather than after those are fixed; a part that does not validate is
    reported by validation and left out here (a broken rule, a tiers that is no mapping)."""
    tiers = data.get("tiers")
    defined = [name for name in TIER_NAMES if isinstance(tiers, dict) and name in tiers]
    problems = []
    default_tier = data.get("default_tier", SeverityModel.model_fields["default_tier"].default)
    if isinstance(tiers, dict) and default_tier in TIER_NAMES and default_tier not in defined:
        given = ("default_tier",) in lines
        problems.append(
            Problem(
                ("default_tier",) if given else ("tiers",),
                f"default tier {default_tier!r}{'' if given else ' (when none is given)'} "
                f"is not defined under tiers; define it or set default_tier to one of "
                f"{', '.join(defined)}",
                "default_tier",
            )
        )
    rules = data.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        # judged on every rule, so a rule's bad pattern does not hide its undefined tier
        tier = rule.get("tier") if isinstance(rule, dict) else None
        if isinstance(tiers, dict) and tier in TIER_NAMES and tier not in defined:
            problems.append(
                Problem(
                    ("rules", index, "tier"),
                    f"tier {tier!r} is not defined under tiers; define it or use one of "
                    f"{', '.join(defined)}",
                )
            )
    first_with: dict[tuple[str | None, ...], int] = {}
    for index, rule in _valid_rules(rules):
        earlier = first_with.setdefault(rule.match(), index)
        if earlier != index:
            problems.append(
                Problem(
                    ("rules", index),
                    "the same patterns as the rule on line "
                    f"{line_of(lines, ('rules', earlier))}, which comes first and wins, so this "
                    "rule never applies; remove one of them",
                )
            )
    return problems + _objective_problems(tiers) + _reporting_rate_problems(data.get("money"))


def _objective_problems(tiers: object) -> list[Problem]:
    """A latency objective in a tier without an error budget: calls slower than the objective
    spend the tier's budget, so without one the objective would never be judged."""
    problems = []
    for name, tier in tiers.items() if isinstance(tiers, dict) else ():
        if not isinstance(tier, dict) or tier.get("latency_objective_ms") is None:
            continue
        if tier.get("error_budget") is None:
            problems.append(
                Problem(
                    ("tiers", name, "latency_objective_ms"),
                    "a latency objective is judged against the tier's error budget (calls "
                    "slower than it spend the budget), and this tier has none; add "
                    "error_budget (e.g. 0.01 for 1 %) or remove latency_objective_ms",
                )
            )
    return problems


def _reporting_rate_problems(money: object) -> list[Problem]:
    """A rate given for the reporting currency that is not 1: one unit of it is worth one by
    definition, so any other rate contradicts the file. (A rate table copied whole may list it
    at 1, which is kept.)"""
    rates = money.get("rates") if isinstance(money, dict) else None
    currency = money.get("reporting_currency") if isinstance(money, dict) else None
    if not isinstance(rates, dict) or not isinstance(currency, str) or currency not in rates:
        return []
    rate = rates[currency]
    # a rate that is no number is reported by validation
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate == 1:
        return []
    return [
        Problem(
            ("money", "rates", currency),
            f"{currency} is the reporting currency, worth 1 {currency} by definition "
            f"(got {yaml_value(rate)}); remove this rate, or write 1",
        )
    ]


def _valid_rules(rules: object) -> list[tuple[int, RuleModel]]:
    """The rules that validate on their own, with their place in the file."""
    valid = []
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        # a rule that does not validate is reported by the validation of the whole file
        with contextlib.suppress(ValidationError):
            valid.append((index, RuleModel.model_validate(rule)))
    return valid


@dataclass(frozen=True)
class Tier:
    """A resolved tier of one flow."""

    name: str
    weight: float
    latency_objective_ms: float | None
    error_budget: float | None


class Severity:
    """Validated severity rules, answering "which tier is this flow in"."""

    def __init__(
        self, model: SeverityModel, source: str, modified_at: datetime | None = None
    ) -> None:
        self.model = model
        self.source = source
        self.modified_at = modified_at

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

    def convert(self, split: list[tuple[str, float]]) -> Converted:
        """Money at risk by currency (:func:`seamwatch.money.currency_split`) in the reporting
        currency, as the priority weighs it; all of it is left out when the file names none."""
        money = self.model.money
        if money is None:
            return convert(split, None, {})
        return convert(split, money.reporting_currency, money.rates)

    @property
    def money_full_weight(self) -> float:
        """Money at risk in the reporting currency that weighs fully in the priority."""
        money = self.model.money
        return money.full_weight_at if money is not None else DEFAULT_MONEY_FULL_WEIGHT

    def describe(self) -> str:
        """The file and the version of it, e.g. ``sev.yaml (modified 2025-03-03 09:05:12 UTC)``."""
        if self.modified_at is None:
            return self.source
        return f"{self.source} (modified {self.modified_at:%Y-%m-%d %H:%M:%S} UTC)"


def _matches(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, pattern)


def parse_severity(
    text: str, source: str = "<severity>", modified_at: datetime | None = None
) -> Severity:
    """Validate the YAML ``text``; errors name ``source``, the line and the field."""
    data, lines, problems = read_yaml_and_problems(
        text, source, SeverityFileError, "it needs at least 'tiers'.", INVALID_TITLE
    )
    # every problem of the file in one report: a fix for each, not one round per kind
    try:
        model = SeverityModel.model_validate(data)
    except ValidationError as exc:
        model = None
        problems += validation_problems(exc, key_nouns=KEY_NOUNS, model_nouns=MODEL_NOUNS)
    problems += cross_check(data, lines)
    if problems or model is None:
        in_file_order = sorted(problems, key=lambda problem: problem_line(problem, lines))
        raise SeverityFileError(describe_problems(in_file_order, source, lines, INVALID_TITLE))
    return Severity(model, source, modified_at)


def load_severity(path: Path | str | None = None, *, option: str | None = None) -> Severity:
    """Read the severity file at ``path``, ``$SEAMWATCH_SEVERITY_FILE`` or the default one.

    ``option`` is the command's own option for the file (``--severity``), if it has one: an
    error's advice names only what the command accepts. An edited file is read again (the
    cache is keyed by its modification time and size)."""
    chosen = chosen_severity_file(path)
    return _load_cached(chosen, file_version(chosen), _advice(path, option))


def chosen_severity_file(path: Path | str | None = None) -> Path:
    """``path``, else ``$SEAMWATCH_SEVERITY_FILE``, else the built-in file; made absolute."""
    return Path(path or os.environ.get(SEVERITY_FILE_ENV) or DEFAULT_SEVERITY_FILE).resolve()


def file_version(path: Path) -> FileVersion | None:
    """What identifies the file's content as it is now; None when it cannot be seen."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _advice(path: Path | str | None, option: str | None) -> str:
    """How to point a command at a readable file, naming only what the command accepts."""
    if path:
        return f"Check {option or 'the path'}: it must name a readable severity file."
    if os.environ.get(SEVERITY_FILE_ENV):
        alternative = f", or pass {option} FILE" if option else ""
        return (
            f"Set {SEVERITY_FILE_ENV} to a readable severity file{alternative}, or unset it "
            "to use the built-in one."
        )
    return (
        f"The built-in severity file is missing: reinstall Seamwatch, or set {SEVERITY_FILE_ENV}."
    )


@lru_cache(maxsize=8)
def _load_cached(path: Path, version: FileVersion | None, advice: str) -> Severity:
    text = read_text_file(path, SeverityFileError, "severity file", advice)
    modified_at = datetime.fromtimestamp(version[0] / 1e9, UTC) if version else None
    return parse_severity(text, str(path), modified_at)


class SeveritySource:
    """The severity file a running process ranks with, read again whenever it changes.

    The file must be good when the source is made (a process refuses to start on a bad one).
    Later, a change that cannot be read or does not validate leaves the last good version in
    force: one warning per change says why, and :attr:`refused` holds the reason until the
    file is good again.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = chosen_severity_file(path)
        self._lock = threading.Lock()
        self._version = file_version(self.path)
        self._severity = _load_cached(self.path, self._version, _advice(path, None))
        self._refused_version: FileVersion | None = None
        self.refused: str | None = None

    def current(self) -> Severity:
        """The severity in force: the file as it is now if it is good, else its last good
        version."""
        version = file_version(self.path)
        with self._lock:
            if version == self._version:
                self.refused = None  # a good version came back unchanged
            elif self.refused is None or version != self._refused_version:
                self._read_again(version)
            return self._severity

    def _read_again(self, version: FileVersion | None) -> None:
        """Take the changed file, or keep the last good version and warn once about it."""
        try:
            # no advice on what to pass or set: a running process keeps the file it started with
            severity = _load_cached(self.path, version, "")
        except SeverityFileError as exc:
            self._refused_version, self.refused = version, str(exc)
            logger.warning(
                "%s\nThe last good version of %s stays in force until the file is fixed.",
                exc,
                self._severity.describe(),
            )
            return
        if self.refused is not None:
            logger.info("Severity file %s is good again; alerts are ranked with it", self.path)
        else:
            logger.info("Severity file %s changed; alerts are ranked with it now", self.path)
        self._severity, self._version, self.refused = severity, version, None


_sources: dict[Path, SeveritySource] = {}
_sources_lock = threading.Lock()


def severity_in_force() -> SeveritySource:
    """This process's one source of the severity file it was started with.

    Made on first use; raises :class:`SeverityFileError` while no good version has been read
    yet, since there is then nothing to rank with."""
    path = chosen_severity_file()
    with _sources_lock:
        source = _sources.get(path)
        if source is None:
            source = _sources[path] = SeveritySource()
        return source

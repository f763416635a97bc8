"""Where notifications go: a validated YAML file of destinations and their filters.

.. code-block:: yaml

    destinations:
      - name: finance-oncall
        kind: slack                       # slack, teams, google_chat, webhook, alertmanager
        url_env: SLACK_FINANCE_WEBHOOK    # or url: ...; webhook URLs carry tokens
        min_tier: high                    # critical and high only
        min_priority: P2                  # P1 and P2 only
        flows: ["billing.*", "*invoice*"] # shell-style globs; all flows when left out

A notification goes to every destination whose filters it passes. ``--notify-file FILE`` or
``SEAMWATCH_NOTIFY_FILE`` names the file. A bad file raises :class:`NotifyFileError` whose
message names the file, the line and the field. URLs and secrets are held as
:class:`~pydantic.SecretStr`, so neither a repr nor a validation error shows them.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from detectors.priority import LOWEST_LABEL, PRIORITY_LABELS
from detectors.severity import TIER_NAMES, check_glob
from notify.message import NOTIFIED_EVENTS, Notification
from seamwatch.settings import address_problem
from seamwatch.yaml_files import (
    PLAIN_NUMBER,
    Problem,
    describe_problems,
    problem_line,
    read_text_file,
    read_yaml_and_problems,
    validation_problems,
)

NOTIFY_FILE_ENV = "SEAMWATCH_NOTIFY_FILE"
KINDS = ("slack", "teams", "google_chat", "webhook", "alertmanager")
# A destination's name: shown in logs and the delivery log, so a word, not free text.
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
NAME_MAX_LENGTH = 64
# the naming rule in words, as the file's errors give it
NAME_RULE = "letters (A-Z, a-z), digits, '_', '.' and '-'"
# the first words of every report on a notification file that cannot be used
INVALID_TITLE = "Invalid notification file"
PRIORITY_NAMES: tuple[str, ...] = (*(label for _, label in PRIORITY_LABELS), LOWEST_LABEL)

KindName = Literal["slack", "teams", "google_chat", "webhook", "alertmanager"]
TierName = Literal["critical", "high", "medium", "low"]
PriorityName = Literal["P1", "P2", "P3", "P4"]
EventName = Literal["opened", "escalated", "resolved"]


def _glob_pattern(pattern: str) -> str:
    # as in the severity file: a blank pattern or an unclosed '[' matches no flow, and the
    # destination would stay silent without anyone noticing
    check_glob(pattern)
    return pattern


FlowPattern = Annotated[str, AfterValidator(_glob_pattern)]


class NotifyFileError(ValueError):
    """The notification file cannot be read or does not validate; the message says where."""


_EMPTY_LIST_ADVICE = {
    "flows": "an empty list matches no flow; leave flows out for every flow",
    "events": "an empty list sends nothing; leave events out for every event",
}


class DestinationModel(BaseModel):
    """One destination: where it is, what kind, which notifications it wants."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX_LENGTH)
    kind: KindName
    url: SecretStr | None = None
    url_env: str | None = None
    secret: SecretStr | None = None
    secret_env: str | None = None
    min_tier: TierName = "low"
    min_priority: PriorityName = "P4"
    flows: list[FlowPattern] = Field(default_factory=list)
    events: list[EventName] = Field(default_factory=lambda: list(NOTIFIED_EVENTS))
    # a YAML number, as in the severity file: not "5", true, NaN (which would pass as "not
    # greater than" the bound) or infinity
    timeout_seconds: float = Field(10.0, gt=0, le=120, **PLAIN_NUMBER)
    # alertmanager only (cross_check refuses it for the other kinds)
    resend_interval_seconds: float = Field(60.0, ge=1, le=3600, **PLAIN_NUMBER)

    @field_validator("name")
    @classmethod
    def _name_is_a_word(cls, value: str) -> str:
        # pydantic's own words name the regular expression; say the rule and what broke it
        if re.match(NAME_PATTERN, value):
            return value
        others = sorted({char for char in value if not re.match(NAME_PATTERN, char)})
        shown = ", ".join(repr(char) for char in others)
        raise ValueError(f"a destination name may hold only {NAME_RULE}, not {shown}")

    @field_validator("flows", "events")
    @classmethod
    def _lists_name_some(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # only a list given in the file gets here: an empty flows list reads as "no flow" but
        # would let every flow through, and an empty events list would send nothing
        if not value:
            raise ValueError(_EMPTY_LIST_ADVICE[info.field_name])
        return value


class NotifyModel(BaseModel):
    """The whole notification file."""

    model_config = ConfigDict(extra="forbid")

    destinations: list[DestinationModel] = Field(min_length=1)


# How errors name what a destination must be, in the file's words.
MODEL_NOUNS = {
    "DestinationModel": (
        f"a mapping of destination settings ({', '.join(DestinationModel.model_fields)})"
    )
}


class Route:
    """One destination's address and filters, with the secrets read from the environment."""

    def __init__(self, model: DestinationModel, environ: dict[str, str]) -> None:
        self.model = model
        self.name = model.name
        self.kind = model.kind
        self.url = SecretStr(_resolve(model.url, model.url_env, environ))
        secret = _resolve(model.secret, model.secret_env, environ)
        self.secret = SecretStr(secret) if secret else None

    def wants(self, notification: Notification) -> bool:
        """True when the notification passes this destination's event, tier, priority and
        flow filters (a test notification passes every filter)."""
        if notification.test:
            return True
        model = self.model
        return (
            notification.event in model.events
            and TIER_NAMES.index(notification.tier) <= TIER_NAMES.index(model.min_tier)
            and PRIORITY_NAMES.index(notification.priority_label)
            <= PRIORITY_NAMES.index(model.min_priority)
            and (
                not model.flows
                or any(fnmatch.fnmatchcase(notification.flow, p) for p in model.flows)
            )
        )

    @property
    def host(self) -> str:
        """The destination's host, safe to show: the path and query of a webhook carry tokens."""
        return urlsplit(self.url.get_secret_value()).hostname or "?"

    def __repr__(self) -> str:
        return f"Route(name={self.name!r}, kind={self.kind!r}, host={self.host!r})"


def parse_routes(
    text: str, source: str = "<notify>", environ: dict[str, str] | None = None
) -> list[Route]:
    """Validate the YAML ``text``; errors name ``source``, the line and the field."""
    data, lines, problems = read_yaml_and_problems(
        text, source, NotifyFileError, "it needs a list of 'destinations'.", INVALID_TITLE
    )
    # every problem of the file in one report: a fix for each, not one round per kind
    try:
        model = NotifyModel.model_validate(data)
    except ValidationError as exc:
        model = None
        problems += validation_problems(
            exc, hidden_fields=("url", "secret"), model_nouns=MODEL_NOUNS
        )
    environ = dict(os.environ) if environ is None else environ
    problems += cross_check(data, environ)
    if problems or model is None:
        in_file_order = sorted(problems, key=lambda problem: problem_line(problem, lines))
        raise NotifyFileError(describe_problems(in_file_order, source, lines, INVALID_TITLE))
    # the variables and urls were checked with the rest of the file
    return [Route(destination, environ) for destination in model.destinations]


def cross_check(data: object, environ: dict[str, str] | None = None) -> list[Problem]:
    """The checks of the file as written that hold across fields or destinations: where the
    url and the secret come from, names given twice, urls that are no http(s) address, and
    the variables of ``environ`` that ``url_env`` and ``secret_env`` name (unset, empty, or
    holding such a url). Judged on the raw data, they come in the same report as the file's
    other mistakes (a destination's bad field hid its url problem, and a variable was
    reported alone, one per run), not after those are fixed."""
    destinations = data.get("destinations") if isinstance(data, dict) else None
    if not isinstance(destinations, list):
        return []
    problems = []
    seen: set[str] = set()
    for index, destination in enumerate(destinations):
        if not isinstance(destination, dict):
            continue
        where = ("destinations", index)
        problems += [Problem(where, message) for message in _source_problems(destination)]
        problems += _kind_problems(where, destination)
        name, url = destination.get("name"), destination.get("url")
        if isinstance(name, str) and name in seen:
            problems.append(Problem((*where, "name"), f"destination name {name!r} is used twice"))
        if isinstance(name, str):
            seen.add(name)
        if isinstance(url, str):
            problems += _url_problems((*where, "url"), url, "the url")
        if environ is not None:
            problems += _variable_problems(where, destination, environ)
    return problems


# What each variable a destination names must hold.
_VARIABLE_HOLDS = {"url_env": "the destination's URL", "secret_env": "the signing secret"}


def _variable_problems(
    where: tuple[str | int, ...], destination: dict[str, Any], environ: dict[str, str]
) -> list[Problem]:
    """What is wrong with the variables that ``url_env`` and ``secret_env`` name: unset,
    empty, or (``url_env``) holding a url that is no http(s) address."""
    problems = []
    for field, holds in _VARIABLE_HOLDS.items():
        variable = destination.get(field)
        # a variable beside the value itself, or a secret for a kind that signs nothing, is
        # refused as such: whether the variable is set is for after that choice
        given_too = destination.get(field.removesuffix("_env"))
        unused = field == "secret_env" and destination.get("kind") != "webhook"
        if not isinstance(variable, str) or not variable or given_too or unused:
            continue
        value = environ.get(variable)
        if value is None:
            state = "which is not set in the environment"
        elif not value:
            state = "which is set but empty"
        elif field == "url_env":
            problems += _url_problems((*where, field), value, f"the URL in {variable}")
            continue
        else:
            continue
        problems.append(
            Problem((*where, field), f"{field} names {variable!r}, {state}; set it to {holds}")
        )
    return problems


def _url_problems(where: tuple[str | int, ...], url: str, what: str) -> list[Problem]:
    try:
        _check_url(url, what=what)
    except ValueError as exc:
        return [Problem(where, str(exc))]
    return []


def _source_problems(destination: dict[str, Any]) -> list[str]:
    """Where one destination's url and signing secret come from, every mistake of it."""
    given = {key for key in ("url", "url_env", "secret", "secret_env") if destination.get(key)}
    problems = []
    if ("url" in given) == ("url_env" in given):
        problems.append("give exactly one of url or url_env")
    if {"secret", "secret_env"} <= given:
        problems.append("give at most one of secret or secret_env")
    if given & {"secret", "secret_env"} and destination.get("kind") != "webhook":
        problems.append("secret and secret_env sign generic webhooks only (kind: webhook)")
    return problems


# Fields that one kind of destination alone uses: given to another, they would do nothing.
_KIND_FIELDS = {"resend_interval_seconds": ("alertmanager", "resend firing alerts")}


def _kind_problems(where: tuple[str | int, ...], destination: dict[str, Any]) -> list[Problem]:
    """A field given to a destination of a kind that does not use it."""
    kind = destination.get("kind")
    if kind not in KINDS:  # an unknown kind is refused as such
        return []
    return [
        Problem(
            (*where, field),
            f"only {user} destinations {does}; remove it from this {kind} destination",
        )
        for field, (user, does) in _KIND_FIELDS.items()
        if field in destination and kind != user
    ]


def load_routes(path: Path | str | None = None) -> list[Route]:
    """Read the notification file at ``path`` or ``$SEAMWATCH_NOTIFY_FILE``; no file, no routes."""
    chosen = path or os.environ.get(NOTIFY_FILE_ENV)
    if not chosen:
        return []
    text = read_text_file(
        chosen,
        NotifyFileError,
        "notification file",
        f"Pass --notify-file FILE or set {NOTIFY_FILE_ENV} to a readable file.",
    )
    return parse_routes(text, str(chosen))


def _glob(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def _resolve(value: SecretStr | None, env: str | None, environ: dict[str, str]) -> str:
    """The value given in the file, else that of the variable ``env`` names (checked by
    :func:`cross_check`), else empty."""
    if value is not None:
        return value.get_secret_value()
    return environ.get(env, "") if env else ""


def _check_url(url: str, what: str = "the url") -> None:
    """Refuse a url that is no http(s) address with a host, naming it as ``what``. The URL
    itself is never quoted: its path and query are the credential."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # such as "Invalid IPv6 URL", for a '[' no ']' closes
        raise ValueError(
            f"{what} cannot be read as an address ({exc}); write it as http:// or "
            "https:// and a host, with any IPv6 address in brackets"
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{what} must be an http:// or https:// address with a host")
    # a port past 65535 was sent to the port it wraps round to: another local service
    problem = address_problem(parts)
    if problem is not None:
        raise ValueError(f"{what} cannot be reached: {problem}")

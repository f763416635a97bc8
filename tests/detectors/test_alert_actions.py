"""Silences and acknowledgements on stored alerts: what is refused and what is marked silenced."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from detectors.alert_actions import (
    _ACK_SCHEMA,
    _SILENCE_SCHEMA,
    ACKS_TABLE,
    SILENCES_TABLE,
    AlertActionError,
    Conflict,
    acknowledge,
    active_silences,
    add_silence,
    cancel_silence,
    list_alerts,
)
from detectors.lifecycle import AlertBook, Signal
from detectors.severity import load_severity
from storage.schema import _acknowledgement_history

ERRORS = Signal("error_rate", "error_rate", 8.0, 0.0, 0.5)


def record_alert(
    store,
    flow: str,
    opened_at: datetime,
    resolved_at: datetime | None = None,
    money_by_currency: dict[str, float] | None = None,
):
    """Store one error-rate alert of ``flow`` on erp, resolved at ``resolved_at`` if given,
    with money at risk in the currencies of ``money_by_currency`` (``""``: none named)."""
    book = AlertBook(store)
    alert = book.open(flow, "erp", "Invoice", opened_at, ERRORS)
    if money_by_currency:
        money = sum(money_by_currency.values())
        book.observe(alert, opened_at, ERRORS, len(money_by_currency), 0, money, "")
        alert.money_by_currency = dict(money_by_currency)
    if resolved_at is not None:
        book.resolve(alert, resolved_at)
    book.flush()
    return alert


def test_a_silence_marks_open_alerts_not_those_resolved_before_it(store):
    now = datetime.now(UTC)
    resolved = record_alert(
        store, "billing.old", now - timedelta(hours=5), now - timedelta(hours=3)
    )
    ongoing = record_alert(store, "billing.new", now - timedelta(minutes=10))
    silence = add_silence(store, timedelta(hours=1), flow="billing.*")

    marks = {a["alert_id"]: a["silenced_by"] for a in list_alerts(store, load_severity(), "all")}

    assert marks == {resolved.alert_id: None, ongoing.alert_id: silence["silence_id"]}


@pytest.mark.parametrize("field", ["flow", "target", "kind"])
def test_an_empty_pattern_is_refused_not_read_as_any(store, field):
    with pytest.raises(AlertActionError, match=f"{field} is empty"):
        add_silence(store, timedelta(hours=1), **{field: ""})
    assert active_silences(store) == []


@pytest.mark.parametrize("days", [366, 100_000])
def test_a_silence_lasts_at_most_a_year(store, days):
    with pytest.raises(AlertActionError, match=f"at most 365 days, got {days:,} days"):
        add_silence(store, timedelta(days=days))
    assert active_silences(store) == []


def test_a_silence_of_a_year_expires_when_it_says(store):
    silence = add_silence(store, timedelta(days=365), everything=True)
    [stored] = active_silences(store)
    assert stored["expires_at"][:23] == silence["expires_at"][:23]


def test_ending_a_silence_keeps_its_times_without_a_warning(store):
    # 100000 days, as once accepted, overflowed the column into 1716 with stray nanoseconds
    now = datetime.now(UTC)
    row = {
        "silence_id": "overflowed",
        **{"flow": "*", "target": "*", "kind": "*", "reason": "", "created_by": ""},
        **{"created_at": now, "expires_at": now + timedelta(days=100_000)},
        **{"cancelled": 0, "version": 1},
    }
    store.insert_arrow(SILENCES_TABLE, pa.Table.from_pylist([row], _SILENCE_SCHEMA))
    silence = add_silence(store, timedelta(hours=1), everything=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cancel_silence(store, "overflowed")
        cancel_silence(store, silence["silence_id"])

    rows = store.query_rows(
        f"SELECT cancelled, created_at FROM {store.table(SILENCES_TABLE)} FINAL "
        "WHERE silence_id = {id:String}",
        {"id": silence["silence_id"]},
    )
    assert rows[0][0] == 1
    # timespec: on a whole second (one run in a thousand) isoformat() leaves out the fraction
    assert rows[0][1].isoformat(timespec="milliseconds")[:23] == silence["created_at"][:23]


def test_an_acknowledgement_needs_a_name(store):
    alert = record_alert(store, "billing.invoice-post", datetime.now(UTC))
    with pytest.raises(AlertActionError, match="by .who acknowledges. is empty"):
        acknowledge(store, alert.alert_id, "")


def test_a_blank_name_is_refused_and_a_padded_one_is_the_holder(store):
    # "   " was refused as someone other than ana, and "ana " needed --take-over from ana
    alert = record_alert(store, "billing.invoice-post", datetime.now(UTC))
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    acknowledge(store, alert.alert_id, "ana", "checking", now=earlier)
    with pytest.raises(AlertActionError, match="by .who acknowledges. is empty"):
        acknowledge(store, alert.alert_id, "   ")

    again = acknowledge(store, alert.alert_id, " ana ", "found it")

    assert (again["acknowledged_by"], again["taken_over_from"]) == ("ana", None)


def test_the_silenceable_kinds_are_the_kinds_the_runner_raises():
    from detectors.alert_actions import ALERT_KINDS
    from detectors.runner import (
        BUDGET_KINDS,
        EXCEPTION_CATEGORY,
        FINDING_KINDS,
        LATENCY,
        SIGNALS,
    )

    raised = {
        LATENCY,
        EXCEPTION_CATEGORY,
        *BUDGET_KINDS,
        *FINDING_KINDS,
        *(kind for _, kind in SIGNALS),
    }
    assert set(ALERT_KINDS) == raised


def test_money_at_risk_is_listed_in_cents(store):
    # a float sum once printed as 63168.549999999996
    book = AlertBook(store)
    now = datetime.now(UTC)
    alert = book.open("billing.sum", "erp", "Invoice", now, ERRORS)
    book.observe(alert, now, ERRORS, 3, 3, 0.1 + 0.2 + 63168.25, "422")
    book.flush()

    [listed] = list_alerts(store, load_severity(), "all")

    assert listed["money_at_risk"] == 63168.55


def test_a_second_acknowledgement_by_someone_else_changes_nothing_without_take_over(store):
    # bob's acknowledgement once replaced ana's, note and all, without a word
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    acknowledge(store, alert.alert_id, "ana", "checking ERP item master")

    with pytest.raises(
        Conflict, match=r"already acknowledged by ana at \d{4}-\d\d-\d\d \d\d:\d\d UTC"
    ):
        acknowledge(store, alert.alert_id, "bob")

    [listed] = list_alerts(store, load_severity())
    assert (listed["acknowledged_by"], listed["ack_note"]) == ("ana", "checking ERP item master")
    assert [ack["by"] for ack in listed["acknowledgements"]] == ["ana"]


def test_taking_over_keeps_every_acknowledgement_and_shows_the_latest_holder(store):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    first = datetime.now(UTC) - timedelta(minutes=5)
    acknowledge(store, alert.alert_id, "ana", "checking ERP item master", now=first)

    taken = acknowledge(store, alert.alert_id, "bob", "ana is off shift", take_over=True)

    assert taken["taken_over_from"]["by"] == "ana"
    [listed] = list_alerts(store, load_severity())
    assert (listed["acknowledged_by"], listed["ack_note"]) == ("bob", "ana is off shift")
    assert [(a["by"], a["note"]) for a in listed["acknowledgements"]] == [
        ("ana", "checking ERP item master"),
        ("bob", "ana is off shift"),
    ]


def test_the_holder_acknowledging_again_records_the_new_note(store):
    alert = record_alert(store, "erp.item-sync", datetime.now(UTC))
    acknowledge(
        store, alert.alert_id, "ana", "checking", now=datetime.now(UTC) - timedelta(minutes=10)
    )
    acknowledge(store, alert.alert_id, "ana", "found it: a missing unit of measure")

    [listed] = list_alerts(store, load_severity())
    assert listed["ack_note"] == "found it: a missing unit of measure"
    assert len(listed["acknowledgements"]) == 2


def test_acknowledging_a_resolved_alert_is_refused(store):
    now = datetime.now(UTC)
    resolved_at = now.replace(second=0, microsecond=0) - timedelta(hours=1)
    alert = record_alert(store, "erp.item-sync", now - timedelta(hours=3), resolved_at)

    expected = f"alert {alert.alert_id} resolved at {resolved_at:%Y-%m-%d %H:%M} UTC; nothing to"
    with pytest.raises(Conflict, match=expected):
        acknowledge(store, alert.alert_id, "ana")
    assert store.query_rows(f"SELECT count() FROM {store.table(ACKS_TABLE)}") == [(0,)]


def test_ending_a_silence_twice_says_it_had_already_ended(store):
    silence = add_silence(store, timedelta(hours=2), flow="billing.*")
    ended = cancel_silence(store, silence["silence_id"])

    with pytest.raises(Conflict, match=f"silence {silence['silence_id']} had already ended, at "):
        cancel_silence(store, silence["silence_id"])
    assert ended["cancelled_at"].endswith("Z")


def test_ending_an_expired_silence_says_it_had_expired(store):
    past = datetime.now(UTC) - timedelta(hours=3)
    silence = add_silence(store, timedelta(hours=1), flow="billing.*", now=past)
    with pytest.raises(Conflict, match="had already expired, at "):
        cancel_silence(store, silence["silence_id"])


def test_a_silence_of_everything_must_say_so(store):
    with pytest.raises(AlertActionError, match="would mute every alert"):
        add_silence(store, timedelta(hours=1.5))
    with pytest.raises(AlertActionError, match="would mute every alert"):
        add_silence(store, timedelta(hours=1.5), flow="**", target="*")
    assert active_silences(store) == []

    silence = add_silence(store, timedelta(hours=1.5), everything=True)
    assert [s["silence_id"] for s in active_silences(store)] == [silence["silence_id"]]


@pytest.mark.parametrize(
    "patterns",
    [
        {"flow": "?*"},
        {"flow": "*?*", "target": "**"},
        {"target": "*[\x00-\U0010ffff]*"},
        {"flow": "?*", "kind": "*e*"},
    ],
)
def test_a_glob_that_matches_every_name_needs_everything_too(store, patterns):
    # '?*' once muted every alert without --all, while '*' and '**' were refused
    with pytest.raises(AlertActionError, match=r"would mute every alert.*'\?\*'"):
        add_silence(store, timedelta(hours=1), **patterns)
    assert active_silences(store) == []

    add_silence(store, timedelta(hours=1), **patterns, everything=True)
    assert len(active_silences(store)) == 1


@pytest.mark.parametrize(
    "patterns",
    [{"flow": "??*"}, {"flow": "[!x]*"}, {"target": "*[a-z]*"}, {"flow": "?*", "kind": "*_*"}],
)
def test_a_glob_that_misses_some_name_needs_no_everything(store, patterns):
    add_silence(store, timedelta(hours=1), **patterns)
    assert len(active_silences(store)) == 1


def test_a_silence_of_a_flow_never_seen_is_kept_with_a_warning(store):
    for flow in ("billing.invoice-post", "crm.account-sync", "erp.item-sync"):
        record_alert(store, flow, datetime.now(UTC))

    silence = add_silence(store, timedelta(hours=2), flow="nosuchflow")

    [warning] = silence["warnings"]
    assert warning.startswith("flow 'nosuchflow' matches none of the 3 flows seen in the store")
    assert "billing.invoice-post, crm.account-sync, erp.item-sync" in warning
    assert [s["silence_id"] for s in active_silences(store)] == [silence["silence_id"]]
    assert add_silence(store, timedelta(hours=2), flow="billing.*")["warnings"] == []


def test_a_silence_made_on_an_empty_store_is_warned_of_too(store):
    # a store with flows warned, an empty one said nothing
    silence = add_silence(store, timedelta(hours=2), flow="billing.*", target="erp")

    assert silence["warnings"] == [
        "flow 'billing.*' matches none of the flows seen in the store (it has seen none yet); "
        "the silence is kept and applies if such a flow appears",
        "target 'erp' matches none of the targets seen in the store (it has seen none yet); "
        "the silence is kept and applies if such a target appears",
    ]
    # a glob of every name matches whatever comes
    assert add_silence(store, timedelta(hours=2), kind="latency")["warnings"] == []


def test_silences_read_as_plain_data_with_a_boolean_cancelled(store):
    add_silence(store, timedelta(hours=1), flow="billing.*", created_by="ana")
    [silence] = active_silences(store)
    assert silence["cancelled"] is False
    assert silence["created_by"] == "ana"
    assert "version" not in silence


def test_acknowledgements_of_the_one_row_table_are_copied_into_the_history(store):
    # before the history, alert_acks kept one row per alert; its rows must survive the move
    old = pa.Table.from_pylist(
        [
            {
                "alert_id": "a1",
                "acknowledged_by": "ana",
                "acknowledged_at": datetime.now(UTC),
                "note": "checking ERP item master",
            }
        ],
        _ACK_SCHEMA,
    )
    store.insert_arrow("alert_acks", old)

    for _ in range(2):  # an interrupted migration runs again: nothing may be counted twice
        for statement in _acknowledgement_history(store, None):
            store.command(statement)

    rows = store.query_rows(f"SELECT acknowledged_by, note FROM {store.table(ACKS_TABLE)} FINAL")
    assert rows == [("ana", "checking ERP item master")]


@pytest.mark.parametrize(
    "money, split, text",
    [
        (
            {"EUR": 3000.0, "JPY": 120000.0},
            [{"currency": "EUR", "amount": 3000.0}, {"currency": "JPY", "amount": 120000.0}],
            "3,000.00 EUR + 120,000 JPY (mixed currencies) ≈ 3,744.00 EUR",
        ),
        # rounded to cents before the split, the third decimal was left over as no currency's
        (
            {"BHD": 2500.125},
            [{"currency": "BHD", "amount": 2500.125}],
            "2,500.125 BHD (not converted to EUR)",
        ),
        (
            {"": 80.5},
            [{"currency": None, "amount": 80.5}],
            "80.50 (currency unknown) (not converted to EUR)",
        ),
    ],
)
def test_a_listed_alert_gives_its_money_by_currency(store, money, split, text):
    record_alert(store, "billing.invoice-post", datetime.now(UTC), None, money)

    [alert] = list_alerts(store, load_severity(), "open")

    assert alert["money_at_risk"] == round(sum(money.values()), 2)
    assert alert["money_by_currency"] == split
    assert alert["money_text"] == text

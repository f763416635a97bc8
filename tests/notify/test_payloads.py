"""Each chat destination posts the payload its service expects to a local stand-in server."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from detectors.severity import load_severity, parse_severity
from notify.message import build_notification
from notify.outbox import DestinationWorker, make_destination
from notify.service import public_dashboard_url
from seamwatch.cli import app
from seamwatch.settings import load_settings
from tests.notify.helpers import (
    DASHBOARD,
    FAST,
    OPENED_AT,
    ListRecorder,
    make_alert,
    make_notification,
    minutes_after_opening,
    route,
)
from tests.notify.receiver import RecordingServer

ALERT_URL = "https://seamwatch.example.test/alerts?alert_id=a1b2c3d4e5f60718"
LINEAGE_URL = "https://seamwatch.example.test/lineage?flow=billing.invoice-post"


def _deliver(kind: str, server: RecordingServer, notification=None, path="/hook", **fields):
    recorder = ListRecorder()
    worker = DestinationWorker(
        make_destination(route(kind, server.url + path, **fields)), recorder, FAST
    )
    outcome = worker.deliver(notification or make_notification())
    assert outcome.outcome == "sent", outcome
    assert recorder.outcomes == [outcome]
    return server.wait_for(1)[0]


def test_slack_posts_block_kit_with_facts_escaped_text_and_buttons():
    with RecordingServer() as server:
        got = _deliver("slack", server, path="/services/T0/B0/secret")
    body = got.json
    assert got.path == "/services/T0/B0/secret"
    assert got.headers["Content-Type"] == "application/json"
    assert body["text"] == "P2 opened: billing.invoice-post -> erp"
    header, changed, facts, context, actions = body["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "P2 opened: billing.invoice-post -> erp"},
    }
    assert changed["text"]["text"] == "*What changed:* error_rate from 0.10% to 20.00%"
    assert [field["text"] for field in facts["fields"]] == [
        "*Flow*\nbilling.invoice-post",
        "*Target*\nerp",
        "*Business object*\nInvoice",
        "*Kind*\nerror_rate",
        "*Tier*\ncritical",
        "*Priority*\nP2 (55.0)",
        "*Score*\n10.0",
        "*Affected transactions*\n99",
        "*Money at risk*\n9,999.00 EUR",
        "*Opened*\n2025-03-03 09:05 UTC",
    ]
    assert (
        context["elements"][0]["text"] == "*Top error:* `tax code &lt;T9&gt; &amp; rate not mapped`"
    )
    assert [(b["text"]["text"], b["url"]) for b in actions["elements"]] == [
        ("Open alert", ALERT_URL),
        ("Flow lineage", LINEAGE_URL),
    ]


def test_slack_resolution_says_resolved_and_how_long_it_was_open():
    resolved = make_notification(
        "resolved",
        minutes_after_opening(35),
        state="resolved",
        resolved_at=minutes_after_opening(35),
    )
    with RecordingServer() as server:
        body = _deliver("slack", server, resolved).json
    assert body["text"] == "P2 resolved: billing.invoice-post -> erp"
    context = body["blocks"][3]["elements"][0]["text"]
    assert context.startswith("*Resolved:* 2025-03-03 09:40 UTC (35 min)")


def test_teams_posts_an_adaptive_card_in_a_message_envelope():
    with RecordingServer([]) as server:
        body = _deliver("teams", server).json
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    headline, changed, facts, error = card["body"]
    assert headline["text"] == "P2 opened: billing.invoice-post -> erp"
    assert headline["color"] == "Warning"
    assert changed["text"] == "error_rate from 0.10% to 20.00%"
    assert {"title": "Priority", "value": "P2 (55.0)"} in facts["facts"]
    assert {"title": "Money at risk", "value": "9,999.00 EUR"} in facts["facts"]
    assert error["text"] == "Top error: tax code <T9> & rate not mapped"
    assert [(a["type"], a["url"]) for a in card["actions"]] == [
        ("Action.OpenUrl", ALERT_URL),
        ("Action.OpenUrl", LINEAGE_URL),
    ]


def test_google_chat_posts_a_card_threaded_by_alert():
    with RecordingServer() as server:
        got = _deliver("google_chat", server, path="/v1/spaces/AAA/messages?key=k&token=t")
    query = parse_qs(urlsplit(got.path).query)
    assert query == {
        "key": ["k"],
        "token": ["t"],
        "threadKey": ["seamwatch-a1b2c3d4e5f60718"],
        "messageReplyOption": ["REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"],
    }
    body = got.json
    assert body["text"] == "P2 opened: billing.invoice-post -> erp"
    (card,) = body["cardsV2"]
    assert card["cardId"] == "a1b2c3d4e5f60718-opened"
    assert card["card"]["header"] == {
        "title": "P2 opened: billing.invoice-post -> erp",
        "subtitle": "critical tier, error_rate",
    }
    widgets = card["card"]["sections"][0]["widgets"]
    facts = {w["decoratedText"]["topLabel"]: w["decoratedText"]["text"] for w in widgets[1:-1]}
    assert facts["Affected transactions"] == "99"
    assert facts["Top error"] == "tax code &lt;T9&gt; &amp; rate not mapped"
    buttons = widgets[-1]["buttonList"]["buttons"]
    assert [b["onClick"]["openLink"]["url"] for b in buttons] == [ALERT_URL, LINEAGE_URL]


def test_webhook_body_is_documented_and_signed_over_timestamp_and_raw_body():
    with RecordingServer() as server:
        got = _deliver("webhook", server, secret="s3cret-key")
    body = got.json
    assert body["version"] == 1
    assert body["event"] == "opened"
    assert body["test"] is False
    assert body["alert"] == {
        "id": "a1b2c3d4e5f60718",
        "flow": "billing.invoice-post",
        "target": "erp",
        "business_object": "Invoice",
        "kind": "error_rate",
        "kinds": ["error_rate"],
        "tier": "critical",
        "priority": 55.0,
        "priority_label": "P2",
        "score": 10.0,
        "affected_transactions": 99,
        "money_at_risk": 9999.0,
        "currency": "EUR",
        "money_by_currency": [{"currency": "EUR", "amount": 9999.0}],
        "money_at_risk_reporting": 9999.0,
        "reporting_currency": "EUR",
        "money_not_converted": [],
        "opened_at": "2025-03-03T09:05:00.000Z",
        "resolved_at": None,
        "what_changed": "error_rate from 0.10% to 20.00%",
        "top_error": "tax code <T9> & rate not mapped",
    }
    assert body["links"] == {"alert": ALERT_URL, "lineage": LINEAGE_URL}
    # one time format for every JSON Seamwatch writes; this body once used +00:00
    assert body["at"].endswith("Z") and "+00:00" not in got.raw.decode()
    assert got.headers["X-Seamwatch-Event"] == "opened"
    assert got.headers["X-Seamwatch-Delivery"] == body["delivery_id"]
    timestamp = got.headers["X-Seamwatch-Timestamp"]
    expected = hmac.new(b"s3cret-key", timestamp.encode() + b"." + got.raw, hashlib.sha256)
    assert got.headers["X-Seamwatch-Signature"] == f"sha256={expected.hexdigest()}"


def test_webhook_without_secret_is_not_signed_and_keeps_one_delivery_id_per_event():
    with RecordingServer() as server:
        first = _deliver("webhook", server)
        worker = DestinationWorker(
            make_destination(route("webhook", server.url + "/hook")), ListRecorder(), FAST
        )
        worker.deliver(make_notification())
        second = server.wait_for(2)[1]
    assert "X-Seamwatch-Signature" not in first.headers
    assert first.headers["X-Seamwatch-Delivery"] == second.headers["X-Seamwatch-Delivery"]


def test_an_opening_sent_after_its_catch_up_resolved_the_alert_reads_as_open():
    # a catch-up builds a chunk's messages at its end: an "opened" once carried resolved_at
    resolved = OPENED_AT + timedelta(minutes=40)
    opening = make_notification("opened", state="resolved", resolved_at=resolved)
    resolution = make_notification("resolved", resolved, state="resolved", resolved_at=resolved)
    assert opening.resolved_at is None
    assert resolution.resolved_at == resolved


def test_webhook_money_at_risk_is_in_cents_as_the_alert_api_gives_it():
    # the sum of a dropped-payment alert's amounts, as stored, came out in float noise
    noisy = make_notification(money_at_risk=293746.69999999995)
    with RecordingServer() as server:
        got = _deliver("webhook", server, noisy)
    assert got.json["alert"]["money_at_risk"] == 293746.7


def test_a_finding_alert_quotes_its_findings_beside_its_resolution_not_its_opening():
    findings = "1 billing.invoice-post transaction(s) posted twice to erp since the alert opened"
    alert = {"kind": "duplicate_posting", "signal": "duplicate_posting", "top_error": findings}
    opening = make_notification(**alert)
    resolved_at = minutes_after_opening(40)
    resolution = make_notification(
        "resolved", resolved_at, state="resolved", resolved_at=resolved_at, **alert
    )
    assert opening.top_error == ""
    assert resolution.top_error == findings


@pytest.mark.parametrize(
    "changes",
    [
        {"top_error": ""},  # the failures carried no message
        # a finding alert's opening gives its findings as what changed, not again as a quote
        {"kind": "duplicate_posting", "signal": "duplicate_posting", "top_error": "2 found"},
    ],
    ids=["no error", "finding opening"],
)
def test_webhook_leaves_top_error_out_when_there_is_none_to_quote(changes):
    # the body carried "top_error": "" where docs/notify.md says the field is left out
    with RecordingServer() as server:
        got = _deliver("webhook", server, make_notification(**changes))
    assert "top_error" not in got.json["alert"]
    assert got.json["alert"]["what_changed"] == "error_rate from 0.10% to 20.00%"


def test_money_in_yen_is_written_without_decimals_in_chat_and_in_whole_yen_in_json():
    yen = make_notification(money_at_risk=1_250_000.0, money_by_currency={"JPY": 1_250_000.0})
    with RecordingServer() as chat, RecordingServer() as hook:
        slack = _deliver("slack", chat, yen).json
        webhook = _deliver("webhook", hook, yen).json
    fields = [f["text"] for f in slack["blocks"][2]["fields"]]
    assert "*Money at risk*\n1,250,000 JPY ≈ 7,750.00 EUR" in fields
    assert webhook["alert"]["currency"] == "JPY"
    assert webhook["alert"]["money_by_currency"] == [{"currency": "JPY", "amount": 1250000.0}]


def test_a_third_decimal_is_not_read_as_money_of_an_unknown_currency():
    # split against the sum in cents, 2,500.125 BHD left 0.005 over as a currency of its own
    dinars = make_notification(money_at_risk=2500.125, money_by_currency={"BHD": 2500.125})
    with RecordingServer() as chat, RecordingServer() as hook:
        slack = _deliver("slack", chat, dinars).json
        webhook = _deliver("webhook", hook, dinars).json
    money = "*Money at risk*\n2,500.125 BHD (not converted to EUR)"
    assert money in [f["text"] for f in slack["blocks"][2]["fields"]]
    assert webhook["alert"]["currency"] == "BHD"
    assert webhook["alert"]["money_by_currency"] == [{"currency": "BHD", "amount": 2500.125}]


def test_money_in_two_currencies_is_listed_side_by_side_in_every_format():
    mixed = make_notification(money_by_currency={"EUR": 6000.0, "USD": 3999.0})
    with RecordingServer() as chat, RecordingServer() as hook:
        slack = _deliver("slack", chat, mixed).json
        webhook = _deliver("webhook", hook, mixed).json
    text = "6,000.00 EUR + 3,999.00 USD (mixed currencies) ≈ 9,679.08 EUR"
    assert f"*Money at risk*\n{text}" in [f["text"] for f in slack["blocks"][2]["fields"]]
    assert webhook["alert"]["money_at_risk"] == 9999.0
    assert webhook["alert"]["currency"] is None
    assert webhook["alert"]["money_by_currency"] == [
        {"currency": "EUR", "amount": 6000.0},
        {"currency": "USD", "amount": 3999.0},
    ]


def test_chat_and_webhook_give_the_money_the_priority_weighed_in_the_reporting_currency():
    # 3,000 EUR + 120,000 JPY was weighed as 123,000: P1 at 60.4
    mixed = make_notification(
        money_at_risk=123000.0, money_by_currency={"EUR": 3000.0, "JPY": 120000.0}
    )
    with RecordingServer() as chat, RecordingServer() as hook:
        slack = _deliver("slack", chat, mixed).json
        webhook = _deliver("webhook", hook, mixed).json["alert"]
    text = "3,000.00 EUR + 120,000 JPY (mixed currencies) ≈ 3,744.00 EUR"
    assert f"*Money at risk*\n{text}" in [f["text"] for f in slack["blocks"][2]["fields"]]
    assert ("Priority", "P2 (52.9)") in mixed.facts()
    assert (webhook["priority"], webhook["money_at_risk_reporting"]) == (52.9, 3744.0)
    assert (webhook["reporting_currency"], webhook["money_not_converted"]) == ("EUR", [])


def test_chat_and_webhook_name_the_money_left_out_of_the_priority():
    no_rates = parse_severity("tiers:\n  critical: {weight: 1}\ndefault_tier: critical\n")
    row = {"alert_id": "a1b2c3d4e5f60718", "event": "opened", "at": OPENED_AT}
    alert = make_alert(money_at_risk=9999.0, money_by_currency={"EUR": 9999.0})
    notification = build_notification(alert, row, no_rates, DASHBOARD)
    with RecordingServer() as hook:
        webhook = _deliver("webhook", hook, notification).json["alert"]

    assert notification.money_text == "9,999.00 EUR (not converted: no reporting currency)"
    assert (webhook["priority"], webhook["money_at_risk_reporting"]) == (35.0, None)
    assert (webhook["reporting_currency"], webhook["money_not_converted"]) == (None, ["EUR"])


def test_a_name_stored_with_a_line_break_is_told_on_one_line():
    # a name acknowledged before names were limited to one line forged a line in chat
    notification = dataclasses.replace(
        make_notification(),
        acknowledged_by="ana\nP1 resolved: billing -> erp",
        acknowledged_at=OPENED_AT,
        ack_note="on it\x1b[2J",
    )
    said = notification.acknowledgement
    assert "\n" not in said and "\x1b" not in said
    assert said.startswith("ana\\nP1 resolved: billing -> erp at ")
    assert said.endswith("(on it\\x1b[2J)")


@pytest.mark.parametrize(
    ("env", "base"),
    [
        ({"SEAMWATCH_DASHBOARD_PUBLIC_URL": "https://seamwatch.example.test/"}, DASHBOARD),
        ({"SEAMWATCH_DASHBOARD_PORT": "8612"}, "http://127.0.0.1:8612"),
    ],
)
def test_notify_test_links_to_the_dashboard_pages_not_to_an_alert_nobody_has(
    tmp_path, monkeypatch, env, base
):
    # it linked alerts?alert_id=test0000000000, which the page answered with "No alert with id"
    monkeypatch.delenv("SEAMWATCH_DASHBOARD_PUBLIC_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with RecordingServer() as server:
        notify_file = tmp_path / "notify.yaml"
        notify_file.write_text(
            f"destinations:\n  - {{name: ops, kind: webhook, url: '{server.url}/hook'}}\n"
        )
        result = CliRunner().invoke(app, ["notify", "test", "--notify-file", str(notify_file)])
        body = server.wait_for(1)[0].json
    assert result.exit_code == 0, result.output
    assert body["test"] is True
    assert body["links"] == {"alert": f"{base}/alerts", "lineage": f"{base}/lineage"}
    # a real alert's links start with the same address
    opening = {"event": "opened", "at": OPENED_AT, "kind": "error_rate"}
    real = build_notification(
        make_alert(), opening, load_severity(), public_dashboard_url(load_settings())
    )
    assert real.alert_url == f"{base}/alerts?alert_id=a1b2c3d4e5f60718"


def test_notify_test_warns_that_a_dashboard_port_of_0_gives_links_no_browser_opens(
    tmp_path, monkeypatch
):
    # the test message linked http://127.0.0.1:0/alerts without a word
    monkeypatch.delenv("SEAMWATCH_DASHBOARD_PUBLIC_URL", raising=False)
    monkeypatch.setenv("SEAMWATCH_DASHBOARD_PORT", "0")
    with RecordingServer() as server:
        notify_file = tmp_path / "notify.yaml"
        notify_file.write_text(
            f"destinations:\n  - {{name: ops, kind: webhook, url: '{server.url}/hook'}}\n"
        )
        result = CliRunner().invoke(app, ["notify", "test", "--notify-file", str(notify_file)])
        server.wait_for(1)
    assert result.exit_code == 0, result.output
    assert "Warning: the dashboard port is 0, so the test message links to " in result.output
    assert "SEAMWATCH_DASHBOARD_PUBLIC_URL" in result.output

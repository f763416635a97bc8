"""The dashboard as a browser sees it: a real Streamlit server and headless Chromium.

The server runs in a subprocess with a data directory of its own, since chDB lets one process
hold a directory; a second subprocess fills that directory with spans before the server starts.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from websockets.sync.client import ClientConnection, connect

from dashboard import APP_PATH
from tests.lineage.ledger import INVOICES, MAPPING_TEXT
from tests.loopback_tcp import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_SECONDS = 30
BROWSER_TIMEOUT_SECONDS = 60
WINDOW_SIZE = (1400, 1000)

DEMO_FLOWS = (
    # flow attributes, typical latency in ms, share of failed spans
    ({"integration.flow": "order-to-cash.order-submit"}, 180.0, 0.02),
    ({"integration.flow": "billing.invoice-post"}, 420.0, 0.06),
    ({"messaging.destination.name": "usage.posted"}, 35.0, 0.0),
    ({"http.route": "/customers/{id}"}, 90.0, 0.01),
)
# A resolved alert of the seeded store, at a fixed time so that its id is known in advance.
ALERT_FLOW = "billing.invoice-post"
ALERT_OPENED_AT = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
ALERT_MONEY = {"EUR": 3000.0, "JPY": 120000.0}
ALERT_MONEY_TEXT = "3,000.00 EUR + 120,000 JPY (mixed currencies)"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
    ),
]


def seed_store(minutes: int = 60, spans_per_minute: int = 12) -> None:
    """Fill the store the environment names with an hour of spans of a few flows, and the
    ledger of invoices in euros, dollars, yen and no currency of two hours ago."""
    from seamwatch.settings import load_settings
    from storage import open_store
    from tests.lineage.ledger import ledger
    from tests.rows import make_span_rows

    rng = random.Random(12345)
    end = datetime.now(UTC)
    spans = []
    for minute in range(minutes):
        at = end - timedelta(minutes=minute)
        for attributes, latency_ms, failure_share in DEMO_FLOWS:
            for _ in range(spans_per_minute):
                spans.append(
                    {
                        "service": "crm" if "http.route" in attributes else "middleware",
                        "kind": "Consumer",
                        "attributes": attributes,
                        "timestamp": at - timedelta(seconds=rng.uniform(0, 60)),
                        "duration_ms": rng.lognormvariate(0, 0.4) * latency_ms,
                        "status": "Error" if rng.random() < failure_share else "Unset",
                    }
                )
    # from the start of an hour, so that the ledger's transactions begin on one day
    books = (end - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    spans += ledger(books)
    store = open_store(load_settings())
    try:
        store.insert_arrow("otel_traces", make_span_rows(spans))
        record_resolved_alert(store)
    finally:
        store.close()


def record_resolved_alert(store) -> None:
    """Store one error-rate alert of ``ALERT_FLOW`` on erp, opened and resolved, with money
    at risk in ``ALERT_MONEY``'s currencies."""
    from detectors.lifecycle import AlertBook, Signal

    book = AlertBook(store)
    signal = Signal("error_rate", "error_rate", 8.0, 0.01, 0.4)
    alert = book.open(ALERT_FLOW, "erp", "Invoice", ALERT_OPENED_AT, signal)
    book.observe(alert, ALERT_OPENED_AT, signal, 3, 3, sum(ALERT_MONEY.values()), "")
    alert.money_by_currency = dict(ALERT_MONEY)
    book.resolve(alert, ALERT_OPENED_AT + timedelta(minutes=20))
    book.flush()


@pytest.fixture
def dashboard_url(tmp_path):
    """A dashboard server on loopback over a freshly seeded store of its own."""
    env = {**os.environ, "SEAMWATCH_DATA_DIR": str(tmp_path / "server_store")}
    env.pop("SEAMWATCH_CLICKHOUSE_URL", None)  # the embedded store, whatever the shell says
    subprocess.run(
        [sys.executable, "-c", "from tests.dashboard.test_browser import seed_store; seed_store()"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=SERVER_START_TIMEOUT_SECONDS,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP_PATH),
            "--server.address=127.0.0.1",
            f"--server.port={port}",
            "--server.headless=true",
            "--server.fileWatcherType=none",
            "--browser.gatherUsageStats=false",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=SERVER_START_TIMEOUT_SECONDS)


def wait_until_healthy(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with code {server.returncode} before serving {url}")
        try:
            if httpx.get(f"{url}_stcore/health", timeout=1, trust_env=False).text == "ok":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"streamlit did not serve {url} within {SERVER_START_TIMEOUT_SECONDS} s")


def start_chromium(profile_dir: Path) -> subprocess.Popen:
    """Headless Chromium with its DevTools endpoint on a free loopback port."""
    return subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile_dir}",
            f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def page_websocket_url(process: subprocess.Popen, profile_dir: Path) -> str:
    """The DevTools websocket of the browser's first tab, once the browser is listening."""
    port_file = profile_dir / "DevToolsActivePort"
    deadline = time.monotonic() + BROWSER_TIMEOUT_SECONDS
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None:
            pytest.fail(f"chromium exited with code {process.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"chromium opened no DevTools port within {BROWSER_TIMEOUT_SECONDS} s")
        time.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", trust_env=False).json()
    return next(target["webSocketDebuggerUrl"] for target in targets if target["type"] == "page")


class Browser:
    """One tab of headless Chromium, driven over the DevTools protocol.

    ``--screenshot`` with ``--virtual-time-budget`` fires on a virtual clock while the page
    waits for real websocket messages from the server, so it often caught the page half
    drawn. Polling the live DOM until the charts are drawn does not depend on timing.
    """

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._next_id = itertools.count(1)
        # every URL the page asked for, once the Network domain is enabled
        self.requested: list[str] = []

    def call(self, method: str, **params: object) -> dict:
        """Send one DevTools command and return its result, noting requests in between."""
        call_id = next(self._next_id)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=BROWSER_TIMEOUT_SECONDS))
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
            if message.get("id") != call_id:
                continue
            if "error" in message:
                raise RuntimeError(f"{method} failed: {message['error']}")
            return message["result"]

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page."""
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply["result"].get("value")

    def wait_for(self, expression: str) -> None:
        """Poll until ``expression`` is true in the page."""
        deadline = time.monotonic() + BROWSER_TIMEOUT_SECONDS
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                pytest.fail(f"the page never satisfied {expression!r}")
            time.sleep(0.2)


@pytest.fixture
def browser(tmp_path):
    profile_dir = tmp_path / "chromium_profile"
    process = start_chromium(profile_dir)
    try:
        url = page_websocket_url(process, profile_dir)
        with connect(url, proxy=None, max_size=None) as socket:
            tab = Browser(socket)
            width, height = WINDOW_SIZE
            tab.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield tab
    finally:
        process.terminate()
        process.wait(timeout=BROWSER_TIMEOUT_SECONDS)


def test_live_health_page_renders_flows_and_charts(dashboard_url, browser, tmp_path):
    browser.call("Page.navigate", url=dashboard_url)
    # Three charts drawn and no script run in progress: the page is complete.
    browser.wait_for(
        "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')"
    )
    screenshot = tmp_path / "live_health.png"
    screenshot.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot")["data"]))
    dom = browser.evaluate("document.documentElement.outerHTML")

    assert "Seamwatch" in dom
    assert "Live health" in dom
    for flow in ("order-to-cash.order-submit", "middleware:usage.posted", "crm:/customers/{id}"):
        assert flow in dom
    assert "Cannot read spans" not in dom
    with Image.open(screenshot) as image:
        assert image.size == WINDOW_SIZE
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colours) > 50, "the screenshot is blank"


def test_a_chat_link_opens_the_alerts_page_on_its_alert(dashboard_url, browser):
    from detectors.lifecycle import alert_id_for
    from notify.message import alert_link

    alert_id = alert_id_for(ALERT_FLOW, "erp", ALERT_OPENED_AT)
    browser.call("Page.navigate", url=alert_link(dashboard_url, alert_id))
    browser.wait_for(
        "document.body.innerText.includes('Transactions affected')"
        " && !document.querySelector('[data-testid=\"stSkeleton\"]')"
    )
    text = browser.evaluate("document.body.innerText")

    assert f"{ALERT_FLOW} → erp" in text
    assert "Priority" in text
    # each currency side by side, and whole on screen, not cut to the metric's width
    assert f"Money at risk: {ALERT_MONEY_TEXT}" in text
    cut = browser.evaluate(
        "[...document.querySelectorAll('[data-testid=\"stMetricValue\"] *')]"
        ".filter(value => value.scrollWidth > value.clientWidth).map(value => value.innerText)"
    )
    assert cut == []
    assert f"Lineage of {ALERT_FLOW}" in text
    assert "No alert with id" not in text


def drawn(expression: str) -> str:
    """``expression`` and no part of the page still waiting for its script."""
    return f"({expression}) && !document.querySelector('[data-testid=\"stSkeleton\"]')"


def table_cells(browser: Browser, index: int) -> list[str]:
    """The text of every cell of the page's ``index``-th table, row by row (the grid draws
    on a canvas and mirrors the cells it shows in a table for screen readers)."""
    return browser.evaluate(
        f"[...document.querySelectorAll('[data-testid=\"stDataFrame\"]')[{index}]"
        ".querySelectorAll('td')].map(cell => cell.innerText)"
    )


def choose(browser: Browser, option: str) -> None:
    """Open the page's select box with a click, as a visitor does, and pick ``option``."""
    x, y = browser.evaluate(
        "(() => { const box = document.querySelector('[data-testid=\"stSelectbox\"] input')"
        ".getBoundingClientRect(); return [box.x + box.width / 2, box.y + box.height / 2]; })()"
    )
    for event in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=event, x=x, y=y, button="left", clickCount=1)
    browser.wait_for("!!document.querySelector('[role=option]')")
    browser.evaluate(
        "[...document.querySelectorAll('[role=option]')]"
        f".find(item => item.innerText === {json.dumps(option)}).click()"
    )


def test_the_exceptions_page_writes_the_amounts_of_each_currency(dashboard_url, browser):
    browser.call("Page.navigate", url=dashboard_url + "exceptions")
    browser.wait_for(
        drawn("document.querySelectorAll('[data-testid=\"stDataFrame\"] table').length == 2")
    )
    findings, groups = table_cells(browser, 0), table_cells(browser, 1)

    assert "120,000 JPY" in findings
    assert "80.50 (currency unknown)" in findings
    # the failures by flow and category: one text naming every currency, none added up
    mapping = groups.index("mapping")
    assert groups[mapping - 1 : mapping + 4] == [
        INVOICES,
        "mapping",
        "Data could not be translated between the systems' models",
        "4",
        MAPPING_TEXT,
    ]


def test_the_executive_page_draws_revenue_at_risk_one_chart_per_currency(dashboard_url, browser):
    browser.call("Page.navigate", url=dashboard_url + "executive")
    browser.wait_for(drawn("!!document.querySelector('.js-plotly-plot .main-svg')"))
    choose(browser, "Revenue at risk")
    browser.wait_for(
        drawn(
            "document.querySelectorAll('.js-plotly-plot .gtitle').length == 4 && [...document"
            ".querySelectorAll('td')].some(cell => cell.innerText === 'Revenue at risk')"
        )
    )
    titles = browser.evaluate(
        "[...document.querySelectorAll('.js-plotly-plot .gtitle')].map(title => title.textContent)"
    )
    cells = table_cells(browser, 0)

    assert titles == [
        "Revenue at risk (EUR)",
        "Revenue at risk (JPY)",
        "Revenue at risk (USD)",
        "Revenue at risk (currency unknown)",
    ]
    # week over week: one row per currency of the flow, with its currency named
    at_risk = [
        cells[index + 1 : index + 3]
        for index, cell in enumerate(cells)
        if cell == "Revenue at risk" and cells[index - 1] == INVOICES
    ]
    assert at_risk == [
        ["EUR", "1,250.50 EUR"],
        ["JPY", "125,000 JPY"],
        ["USD", "99.99 USD"],
        ["unknown", "100.00"],
    ]


def _leaves_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in ("data", "blob", "about") and parts.hostname not in (
        "127.0.0.1",
        "::1",
        "localhost",
    )


def test_no_page_asks_anything_of_a_host_but_the_dashboards_own(dashboard_url, browser):
    # every page made the browser fetch its icon from fonts.gstatic.com, which an offline or
    # private site must not contact
    browser.call("Network.enable")
    icons = []
    for page in ("", "alerts", "collector", "lineage", "exceptions", "executive"):
        browser.call("Page.navigate", url=dashboard_url + page)
        # drawn, and the icon the page sets has replaced the server's default favicon.png
        browser.wait_for(
            "document.querySelector('[data-testid=\"stMain\"]')"
            " && !document.querySelector('[data-testid=\"stSkeleton\"]')"
            " && !document.querySelector(\"link[rel='shortcut icon']\").href"
            ".endsWith('/favicon.png')"
        )
        icons.append(browser.evaluate("document.querySelector(\"link[rel='shortcut icon']\").href"))
    assert [url for url in browser.requested + icons if _leaves_loopback(url)] == []
    assert len(browser.requested) > 20  # the pages' scripts, fonts and styles were seen

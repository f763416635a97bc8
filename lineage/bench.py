"""``seamwatch bench lineage``: lookups and flow health on millions of spans, derived vs raw.

Spans are generated as columns (numpy and pyarrow, no SDK) in the exporter's layout and
inserted into an embedded store in a temporary directory, in large Arrow batches, so the
materialized views fill exactly as they do in production. Each business transaction is eight
spans in two traces joined by a span link: a source system publishes an event, middleware
consumes it and posts to the ERP. About 2 % of the postings fail. Transactions are in euros,
dollars and yen, and one in ten names no currency, so money is split as in a mixed store.

At each size the benchmark times, as the median of several runs after one warm-up:

* a lineage lookup by business key from the lineage index, and the same answer from
  ``otel_traces`` alone;
* the last hour's flow health from the rollups, and from raw spans (the live-health query);
* the last day's business KPIs (revenue at risk by currency among them) and the failures by
  flow and category, both from the lineage index.
"""

from __future__ import annotations

import binascii
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from storage import TRACES_TABLE, Store

logger = logging.getLogger(__name__)

DEFAULT_SIZES = (2_000_000, 20_000_000)
SPANS_PER_TRANSACTION = 8
BATCH_TRANSACTIONS = 100_000  # 800k spans per insert
HISTORY_DAYS = 7
RUNS_PER_MEASURE = 5
LOOKUPS_PER_RUN = 3
_SEED = 12345
_NANOS_PER_MILLI = 1_000_000

_FLOWS = (
    # flow, source, business object, key prefix, topic, ERP route
    ("billing.invoice-post", "billing", "Invoice", "INV", "billing.invoices", "/arInvoices"),
    ("payments.payment-apply", "payments", "Payment", "PAY", "payments.settled", "/receipts"),
    ("usage.usage-post", "billing", "UsageAccrual", "ACR", "billing.usage", "/accruals"),
    ("catalog.item-sync", "catalog", "ProductOffer", "SKU", "catalog.products", "/items"),
    ("customer.onboarding", "crm", "CustomerAccount", "CUST", "crm.accounts", "/customers"),
    (
        "billing.subscription-activate",
        "billing",
        "SubscriptionContract",
        "SUB",
        "billing.subscriptions",
        "/revenueContracts",
    ),
)

# One transaction: (trace 0 or 1, parent index or -1, service role, kind, stage, name, offset
# in ms from the transaction start, duration in ms). Roles: source system, middleware, ERP.
_TEMPLATE = (
    (0, -1, "source", "Internal", "publish", "{object}.finalize", 0, 60),
    (0, 0, "source", "Internal", "validate", "validate {object}", 5, 8),
    (0, 0, "source", "Producer", "publish", "send {topic}", 50, 4),
    (1, -1, "middleware", "Consumer", "receive", "process {topic}", 700, 420),
    (1, 3, "middleware", "Internal", "transform", "map {object}", 705, 12),
    (1, 3, "middleware", "Client", "post", "POST {route}", 720, 380),
    (1, 5, "erp", "Server", "post", "POST {route}", 725, 360),
    (1, 6, "erp", "Internal", "post", "{object}.create", 740, 330),
)
_ATTRIBUTE_KEYS = (
    "integration.flow",
    "integration.pattern",
    "integration.stage",
    "integration.source",
    "integration.target",
    "business.object",
    "business.key",
    "correlation.id",
    "business.amount",
    "business.currency",
    "messaging.destination.name",
    "peer.service",
    "integration.exception.category",
)
_FAILURE_SHARE = 0.02
# Currencies of the transactions and their shares; "" names none. Yen amounts are whole.
_CURRENCIES = ("EUR", "USD", "JPY", "")
_CURRENCY_SHARES = (0.55, 0.25, 0.1, 0.1)
_YEN_PER_EURO = 160
_FAILING_SPANS = (3, 5, 6)


@dataclass
class BenchResult:
    """The figures measured at one size, in milliseconds."""

    spans: int
    load_seconds: float
    lookup_index_ms: float
    lookup_raw_ms: float
    health_rollup_ms: float
    health_raw_ms: float
    kpis_ms: float = 0.0
    exceptions_ms: float = 0.0
    lineage_rows: int = 0
    rollup_rows: int = 0

    @property
    def lookup_speedup(self) -> float:
        """How many times faster the index answers than raw spans."""
        return self.lookup_raw_ms / self.lookup_index_ms

    @property
    def health_speedup(self) -> float:
        """How many times faster the rollups answer than raw spans."""
        return self.health_raw_ms / self.health_rollup_ms


class SpanGenerator:
    """Columns of realistic transactions, each batch continuing the previous ones."""

    def __init__(self, end: datetime, history: timedelta, seed: int = _SEED) -> None:
        self.rng = np.random.default_rng(seed)
        self.end_ns = int(end.timestamp() * 1e9)
        self.history_ns = int(history.total_seconds() * 1e9)
        self.next_transaction = 0

    def batch(self, transactions: int) -> pa.Table:
        """The spans of the next ``transactions`` transactions, in the exporter's columns."""
        first = self.next_transaction
        self.next_transaction += transactions
        numbers = np.arange(first, first + transactions, dtype=np.int64)
        flow_of = self.rng.integers(0, len(_FLOWS), transactions)
        start_ns = self.end_ns - self.rng.integers(0, self.history_ns, transactions)
        failed = self.rng.random(transactions) < _FAILURE_SHARE
        amounts = np.round(np.exp(self.rng.normal(8.0, 0.9, transactions)), 2)
        currencies = self.rng.choice(
            np.array(_CURRENCIES, dtype=object), transactions, p=_CURRENCY_SHARES
        )
        yen = currencies == "JPY"
        amounts[yen] = np.round(amounts[yen] * _YEN_PER_EURO)
        return _spans_table(numbers, flow_of, start_ns, failed, (amounts, currencies))


def _hex_ids(values: np.ndarray, width_bytes: int) -> pa.Array:
    """Lowercase hex of unsigned integers, ``2 * width_bytes`` digits each."""
    if width_bytes == 8:
        raw = values.astype(">u8").tobytes()
    else:  # 16 bytes: the value in the low half, a fixed high half
        pairs = np.zeros((len(values), 2), dtype=">u8")
        pairs[:, 0] = 0x5EA3
        pairs[:, 1] = values
        raw = pairs.tobytes()
    digits = np.frombuffer(binascii.hexlify(raw), dtype=f"S{2 * width_bytes}")
    return pa.array(digits, type=pa.binary()).cast(pa.string())


def _spans_table(
    numbers: np.ndarray,
    flow_of: np.ndarray,
    start_ns: np.ndarray,
    failed: np.ndarray,
    money: tuple[np.ndarray, np.ndarray],
) -> pa.Table:
    per = SPANS_PER_TRANSACTION
    count = len(numbers) * per
    position = np.tile(np.arange(per), len(numbers))
    txn = np.repeat(np.arange(len(numbers)), per)
    template = _TEMPLATE
    trace_of = np.array([row[0] for row in template])[position]
    parent_of = np.array([row[1] for row in template])[position]
    kind = np.array([row[3] for row in template], dtype=object)[position]
    stage = np.array([row[4] for row in template], dtype=object)[position]
    offset = np.array([row[6] for row in template], dtype=np.int64)[position]
    duration = np.array([row[7] for row in template], dtype=np.uint64)[position]

    number = numbers[txn]
    flows = flow_of[txn]
    trace_ids = _hex_ids((number * 2 + trace_of).astype(np.uint64), 16)
    span_ids = _hex_ids((number * per + position + 1).astype(np.uint64), 8)
    parent_ids = _hex_ids((number * per + parent_of + 1).astype(np.uint64), 8)
    parent_ids = pc.if_else(pa.array(parent_of < 0), "", parent_ids)

    flow_names = np.array([flow[0] for flow in _FLOWS], dtype=object)
    sources = np.array([flow[1] for flow in _FLOWS], dtype=object)
    objects = np.array([flow[2] for flow in _FLOWS], dtype=object)
    prefixes = np.array([flow[3] + "-" for flow in _FLOWS], dtype=object)
    topics = np.array([flow[4] for flow in _FLOWS], dtype=object)
    routes = np.array(["/api/v1" + flow[5] for flow in _FLOWS], dtype=object)

    role = np.array([row[2] for row in template], dtype=object)[position]
    service = np.where(
        role == "source", sources[flows], np.where(role == "erp", "erp", "integration-api")
    )
    names = _span_names(position, objects[flows], topics[flows], routes[flows])
    is_failed = failed[txn] & np.isin(position, _FAILING_SPANS)
    keys = pc.binary_join_element_wise(
        pa.array(prefixes[flows]), pc.cast(pa.array(number + 1_000_000), pa.string()), ""
    )
    correlation = _hex_ids((number * 7919 + 17).astype(np.uint64), 8)
    amounts, currencies = money
    amount_text = pc.cast(pa.array(amounts[txn]), pa.string())
    is_messaging = np.isin(position, (2, 3))
    values = [
        pa.array(flow_names[flows]),
        pa.array(np.where(flows == 4, "canonical", "event")),
        pa.array(stage),
        pa.array(sources[flows]),
        pa.array(np.full(count, "erp", dtype=object)),
        pa.array(objects[flows]),
        keys,
        correlation,
        amount_text,
        pa.array(currencies[txn]),
        pa.array(np.where(is_messaging, topics[flows], "")),
        pa.array(np.where(position == 5, "erp", "")),
        pa.array(np.where(is_failed, "timeout", "")),
    ]
    attributes = _map_column(values, count)
    status = np.where(is_failed, "Error", "Unset")

    link_offsets = np.zeros(count + 1, dtype=np.int32)
    link_offsets[1:] = np.cumsum(position == 3)
    linked = position == 3
    link_trace = _hex_ids((number[linked] * 2).astype(np.uint64), 16)
    link_span = _hex_ids((number[linked] * per + 3).astype(np.uint64), 8)
    empty_lists = pa.array(np.zeros(count + 1, dtype=np.int32))
    no_maps = pa.MapArray.from_arrays(
        pa.array([0], type=pa.int32()), pa.array([], pa.string()), pa.array([], pa.string())
    )

    columns = {
        "Timestamp": pa.array(start_ns[txn] + offset * _NANOS_PER_MILLI, pa.timestamp("ns")),
        "TraceId": trace_ids,
        "SpanId": span_ids,
        "ParentSpanId": parent_ids,
        "TraceState": pa.array(np.full(count, "", dtype=object)),
        "SpanName": pa.array(names),
        "SpanKind": pa.array(kind),
        "ServiceName": pa.array(service),
        "ResourceAttributes": _map_column([pa.array(service)], count, ("service.name",)),
        "ScopeName": pa.array(np.full(count, "seamwatch.bench", dtype=object)),
        "ScopeVersion": pa.array(np.full(count, "", dtype=object)),
        "SpanAttributes": attributes,
        "Duration": pa.array(duration * _NANOS_PER_MILLI, pa.uint64()),
        "StatusCode": pa.array(status),
        "StatusMessage": pa.array(np.where(is_failed, "ERP did not answer within 8s", "")),
        "Events.Timestamp": pa.ListArray.from_arrays(empty_lists, pa.array([], pa.timestamp("ns"))),
        "Events.Name": pa.ListArray.from_arrays(empty_lists, pa.array([], pa.string())),
        "Events.Attributes": pa.ListArray.from_arrays(empty_lists, no_maps.slice(0, 0)),
        "Links.TraceId": pa.ListArray.from_arrays(pa.array(link_offsets), link_trace),
        "Links.SpanId": pa.ListArray.from_arrays(pa.array(link_offsets), link_span),
        "Links.TraceState": pa.ListArray.from_arrays(
            pa.array(link_offsets), pa.array(np.full(int(linked.sum()), "", dtype=object))
        ),
        "Links.Attributes": pa.ListArray.from_arrays(
            pa.array(link_offsets), _map_column([], int(linked.sum()), ())
        ),
    }
    return pa.table(columns)


def _span_names(
    position: np.ndarray, objects: np.ndarray, topics: np.ndarray, routes: np.ndarray
) -> np.ndarray:
    names = np.empty(len(position), dtype=object)
    for index, row in enumerate(_TEMPLATE):
        chosen = position == index
        pattern = row[5]
        if "{object}" in pattern:
            names[chosen] = _prefix_suffix(pattern, "{object}", objects[chosen])
        elif "{topic}" in pattern:
            names[chosen] = _prefix_suffix(pattern, "{topic}", topics[chosen])
        else:
            names[chosen] = _prefix_suffix(pattern, "{route}", routes[chosen])
    return names


def _prefix_suffix(pattern: str, slot: str, values: np.ndarray) -> np.ndarray:
    before, after = pattern.split(slot)
    return np.char.add(np.char.add(before, values.astype(str)), after).astype(object)


def _map_column(
    values: list[pa.Array], count: int, keys: tuple[str, ...] = _ATTRIBUTE_KEYS
) -> pa.MapArray:
    width = len(keys)
    offsets = pa.array(np.arange(count + 1, dtype=np.int32) * width)
    if width == 0:
        return pa.MapArray.from_arrays(
            offsets, pa.array([], pa.string()), pa.array([], pa.string())
        )
    interleave = (np.arange(width)[None, :] * count + np.arange(count)[:, None]).ravel()
    items = pa.concat_arrays([value.cast(pa.string()) for value in values]).take(interleave)
    names = pa.array(np.tile(np.array(keys, dtype=object), count))
    return pa.MapArray.from_arrays(offsets, names, items)


# ----------------------------------------------------------------------------- measuring


def load(
    store: Store,
    generator: SpanGenerator,
    spans: int,
    progress: Callable[[int, int, float], None] | None = None,
) -> float:
    """Insert ``spans`` more spans in batches; returns the seconds it took."""
    started = time.perf_counter()
    transactions = spans // SPANS_PER_TRANSACTION
    done = 0
    while done < transactions:
        size = min(BATCH_TRANSACTIONS, transactions - done)
        store.insert_arrow(TRACES_TABLE, generator.batch(size))
        done += size
        if progress is not None:
            progress(done * SPANS_PER_TRANSACTION, spans, time.perf_counter() - started)
    return time.perf_counter() - started


def median_millis(action: Callable[[], object], runs: int = RUNS_PER_MEASURE) -> float:
    """The median wall time of ``action`` in milliseconds, after one untimed warm-up."""
    action()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def measure(store: Store, spans: int, load_seconds: float, end: datetime) -> BenchResult:
    """Time lookups and flow health on what the store holds now."""
    from dashboard.queries import TIME_RANGES, flow_summary
    from lineage.exceptions import exception_summary
    from lineage.flows import flow_health
    from lineage.kpis import kpis
    from lineage.lookup import LineageQuery, lineage

    keys = _sample_keys(store)
    hour = TIME_RANGES["1h"]
    start, stop = hour.bounds(end)
    day_start = end - timedelta(days=1)

    def lookups(source: str) -> Callable[[], object]:
        return lambda: [lineage(store, LineageQuery(key=key), source) for key in keys]

    index_answer = lineage(store, LineageQuery(key=keys[0]), "index")
    raw_answer = lineage(store, LineageQuery(key=keys[0]), "raw")
    if index_answer["hops"] != raw_answer["hops"]:
        raise AssertionError(f"The index and raw spans disagree on {keys[0]!r}.")
    return BenchResult(
        spans=spans,
        load_seconds=load_seconds,
        lookup_index_ms=median_millis(lookups("index")) / len(keys),
        lookup_raw_ms=median_millis(lookups("raw")) / len(keys),
        health_rollup_ms=median_millis(lambda: flow_health(store, start, stop)),
        health_raw_ms=median_millis(lambda: flow_summary(store, hour, end=end)),
        kpis_ms=median_millis(lambda: kpis(store, day_start, end)),
        exceptions_ms=median_millis(lambda: exception_summary(store, day_start, end)),
        lineage_rows=_count(store, "seamwatch_lineage"),
        rollup_rows=_count(store, "seamwatch_flow_minute"),
    )


def _sample_keys(store: Store) -> list[str]:
    rows = store.query_rows(
        f"SELECT lookup_key FROM {store.table('seamwatch_lineage')} "
        "WHERE cityHash64(lookup_key) % 1000 = 7 LIMIT {n:UInt32}",
        {"n": LOOKUPS_PER_RUN},
    )
    return [row[0] for row in rows]


def _count(store: Store, table: str) -> int:
    return int(store.query_rows(f"SELECT count() FROM {store.table(table)}")[0][0])


def run_bench(
    sizes: tuple[int, ...],
    progress: Callable[[int, int, float], None] | None = None,
    report: Callable[[BenchResult], None] | None = None,
    directory: Path | None = None,
) -> list[BenchResult]:
    """Load up to each size in turn (sizes ascending) and measure at each; returns the figures."""
    from storage import migrate
    from storage.embedded import EmbeddedStore

    end = datetime.now(UTC).replace(second=0, microsecond=0)
    generator = SpanGenerator(end, timedelta(days=HISTORY_DAYS))
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="seamwatch-bench-", dir=directory) as data_dir:
        store = EmbeddedStore(Path(data_dir), "bench")
        try:
            migrate(store)
            loaded = 0
            load_seconds = 0.0
            for size in sorted(sizes):
                load_seconds += load(store, generator, size - loaded, progress)
                loaded = size
                result = measure(store, size, load_seconds, end)
                results.append(result)
                if report is not None:
                    report(result)
        finally:
            store.close()
    return results

"""Plain-text renderings of lineage, reconciliation and benchmark answers for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seamwatch.money import currency_amount_text
from seamwatch.times import readable_utc

_HOP_LINE = (
    "{time:<24} {wait:>10} {service:<18} {kind:<9} {stage:<10} {status:<7} {dur:>10}  {name}"
)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 60_000:
        return f"{value / 60_000:.1f} min"
    if value >= 1_000:
        return f"{value / 1_000:.2f} s"
    return f"{value:.1f} ms"


def lineage_text(document: dict[str, Any]) -> str:
    """The transactions and hops of a lineage answer, one hop a line."""
    query = ", ".join(f"{name} {value}" for name, value in document["query"].items())
    if not document["found"]:
        note = document.get("note")
        return f"No transaction found for {query}" + (f": {note}." if note else ".")
    lines = [f"Lineage of {query}: {len(document['traces'])} traces"]
    for txn in document["transactions"]:
        amount = txn["amount"]
        money = currency_amount_text(amount, txn["currency"]) if amount is not None else "-"
        lines.append(
            f"  {txn['flow']} {txn['business_key']} ({txn['business_object'] or '-'}) "
            f"{txn['source'] or '?'} -> {txn['target'] or '?'}: {txn['status']}, "
            f"sync latency {_ms(txn['sync_latency_ms'])}, amount {money}"
        )
        if txn["failed_at"]:
            failed = txn["failed_at"]
            lines.append(
                f"    failed at {failed['service']} {failed['span_name']} "
                f"({failed['exception_category'] or failed['status_code']}): {failed['error']}"
            )
        if txn["stalled_after"]:
            stalled = txn["stalled_after"]
            lines.append(f"    stalled after {stalled['service']} {stalled['span_name']}")
    if document["truncated"]:
        lines.append("  (only the most recent transactions are shown)")
    lines.append("")
    lines.append(
        _HOP_LINE.format(
            time="time (UTC)",
            wait="wait",
            service="system",
            kind="kind",
            stage="stage",
            status="status",
            dur="duration",
            name="span",
        )
    )
    for hop in document["hops"]:
        name = hop["span_name"] + (" [linked]" if hop["via_link"] else "")
        if hop["status"] == "failed":
            name += f"  ! {hop['exception_category'] or hop['status_code']}: {hop['error']}"
        lines.append(
            _HOP_LINE.format(
                time=hop["time"],
                wait=_ms(hop["wait_ms"]),
                service=hop["service"][:18],
                kind=hop["kind"],
                stage=hop["stage"] or "-",
                status=hop["status"],
                dur=_ms(hop["duration_ms"]),
                name=name,
            )
        )
    return "\n".join(lines)


def reconciliation_text(document: dict[str, Any]) -> str:
    """Counts by kind, then one line per finding naming key, flow, systems and amount."""
    counts = ", ".join(f"{kind} {count}" for kind, count in document["counts"].items())
    since, until = readable_utc(document["since"]), readable_utc(document["until"])
    lines = [
        f"Reconciled {document['transactions']:,} transactions to {document['target']} "
        f"started {since} .. {until} ({_judged_as_of(document)})",
        f"Findings: {counts}",
    ]
    for finding in document["findings"]:
        amount = finding["amount"]
        money = currency_amount_text(amount, finding["currency"]) if amount is not None else "-"
        lines.append(
            f"  {finding['kind']:<20} {finding['business_key']:<16} {finding['flow']:<30} "
            f"{finding['source'] or '?'} -> {finding['target']}  {money}\n"
            f"    {finding['diagnosis']}"
        )
    if not document["findings"]:
        lines.append("  Nothing to reconcile.")
    if "targets_in_window" in document:  # no transaction; an older process does not say
        lines.append(_other_targets(document["target"], document["targets_in_window"]))
    return "\n".join(lines)


def _other_targets(target: str, targets: list[str]) -> str:
    """Which targets the window's transactions went to, when none went to ``target``."""
    if not targets:
        return "  No transaction with a business key started in the window, to any target."
    return (
        f"  No transaction to {target} started in the window; the window has transactions "
        f"to {', '.join(targets)} (choose one with --target)."
    )


# How each ``as_of_basis`` of a reconciliation reads; an answer without one (a process of an
# older release) just gives the time.
_AS_OF_TEXT = {
    "newest_span": "judged as of the newest span stored, {as_of}",
    "now_no_span": (
        "judged as of now, {as_of}: no span of an integration flow stored in the window or "
        "the day before it"
    ),
    "now_newest_span_later": "judged as of now, {as_of}: the newest span stored is later than now",
}


def _judged_as_of(document: dict[str, Any]) -> str:
    template = _AS_OF_TEXT.get(document.get("as_of_basis", ""), "judged as of {as_of}")
    return template.format(as_of=readable_utc(document["as_of"]))


def bench_text(results: Sequence[Any]) -> str:
    """A table of the benchmark figures and the growth from the smallest to the largest size."""
    header = (
        f"{'spans':>12} {'load s':>8} {'lookup index':>13} {'lookup raw':>11} {'x':>6} "
        f"{'health rollup':>14} {'health raw':>11} {'x':>6} {'KPIs, day':>10} "
        f"{'failures, day':>14}"
    )
    lines = [header]
    for result in results:
        lines.append(
            f"{result.spans:>12,} {result.load_seconds:>8.1f} "
            f"{result.lookup_index_ms:>10.1f} ms {result.lookup_raw_ms:>8.1f} ms "
            f"{result.lookup_speedup:>5.1f}x {result.health_rollup_ms:>11.1f} ms "
            f"{result.health_raw_ms:>8.1f} ms {result.health_speedup:>5.1f}x "
            f"{result.kpis_ms:>7.0f} ms {result.exceptions_ms:>11.1f} ms"
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        lines.append(
            f"Growth {first.spans:,} -> {last.spans:,} spans: lookup "
            f"{last.lookup_index_ms / first.lookup_index_ms:.2f}x, flow health from rollups "
            f"{last.health_rollup_ms / first.health_rollup_ms:.2f}x"
        )
    return "\n".join(lines)

"""Exceptions in business words: failures grouped by category and flow, with sample keys.

The amount of a group is kept by currency (each transaction's ``business.currency``), never
added across currencies: ``amount_by_currency`` holds the parts and ``amount`` writes them as
alerts and chat do, ``1,250.50 EUR + 5,000 JPY (mixed currencies)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from lineage.flows import window_parameters
from lineage.schema import LINEAGE_TABLE
from seamwatch.money import amounts_text, currency_records, currency_split
from storage import Store

SAMPLE_KEYS = 5
CATEGORY_WORDS: dict[str, str] = {
    "mapping": "Data could not be translated between the systems' models",
    "validation": "The receiving system rejected a field as invalid",
    "duplicate": "The receiving system already had this document",
    "timeout": "The receiving system did not answer in time",
    "rate_limit": "The receiving system refused: too many requests",
    "auth": "The integration's credentials were refused",
    "master_data_missing": "The customer or item was not in the receiving system yet",
}
COLUMNS = [
    "flow",
    "exception_category",
    "meaning",
    "transactions",
    "amount",
    "amount_by_currency",
    "sample_keys",
    "example_error",
]


def describe_category(category: str) -> str:
    """What an exception category means to the business; unknown ones are shown as they are."""
    return CATEGORY_WORDS.get(category, category or "Failed without a category")


def exception_summary(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """Per flow and category: failed transactions, their amount by currency, sample keys and
    one error. ``amount`` is ``—`` where no failed transaction carried an amount."""
    sql = f"""
    SELECT
        flow,
        exception_category,
        sum(keys) AS transactions,
        groupArrayIf(toString(currency), priced > 0) AS currencies,
        groupArrayIf(assumeNotNull(total), priced > 0) AS amounts,
        arraySlice(arraySort(arrayDistinct(arrayFlatten(groupArray(samples)))), 1,
                   {SAMPLE_KEYS}) AS sample_keys,
        anyIf(error, error != '') AS example_error
    FROM (
        SELECT
            flow,
            exception_category,
            currency,
            uniqExact(business_key) AS keys,
            sum(amount) AS total,
            count(amount) AS priced,
            groupUniqArray({SAMPLE_KEYS})(business_key) AS samples,
            anyIf(status_message, status_message != '') AS error
        FROM (
            SELECT flow, exception_category, business_key, any(amount) AS amount,
                   anyIf(currency, currency != '') AS currency,
                   anyIf(status_message, status_message != '') AS status_message
            FROM {store.table(LINEAGE_TABLE)}
            WHERE Timestamp >= fromUnixTimestamp64Nano({{start_ns:Int64}})
              AND Timestamp < fromUnixTimestamp64Nano({{end_ns:Int64}})
              AND (exception_category != '' OR status_code = 'Error')
              AND business_key != ''
            GROUP BY flow, exception_category, business_key
        )
        GROUP BY flow, exception_category, currency
    )
    GROUP BY flow, exception_category
    ORDER BY transactions DESC, flow, exception_category
    """
    frame = store.query_df(sql, window_parameters(start, end))
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["meaning"] = frame["exception_category"].map(describe_category)
    frame["sample_keys"] = frame["sample_keys"].map(lambda keys: ", ".join(sorted(keys)))
    frame["transactions"] = frame["transactions"].astype("int64")
    splits = [
        _split(currencies, amounts)
        for currencies, amounts in zip(frame["currencies"], frame["amounts"], strict=True)
    ]
    frame["amount_by_currency"] = [currency_records(split) for split in splits]
    frame["amount"] = [
        amounts_text(split) if len(currencies) else "—"
        for split, currencies in zip(splits, frame["currencies"], strict=True)
    ]
    return frame[COLUMNS]


def _split(currencies: Sequence[str], amounts: Sequence[float]) -> list[tuple[str, float]]:
    """One ``(currency, amount)`` pair per currency, as :func:`currency_split` orders them."""
    parts = {str(code): float(amount) for code, amount in zip(currencies, amounts, strict=True)}
    return currency_split(sum(parts.values()), parts)

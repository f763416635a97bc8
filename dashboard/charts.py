"""Plotly figures of per-flow series, one builder per measure.

Each builder takes the frame of :func:`dashboard.queries.flow_series` and draws one line per
flow, so a flow keeps the same colour across the charts of a page.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboard.queries import TimeRange

CHART_HEIGHT_PIXELS = 320
# Clearly distinct hues; the default theme's pairs of blues and reds are hard to tell apart.
FLOW_COLOURS = px.colors.qualitative.D3


def volume_chart(series: pd.DataFrame, time_range: TimeRange) -> go.Figure:
    """Spans per bucket and flow, with the bucket that is still filling shaded."""
    title = f"Spans per {time_range.bucket_label}"
    figure = _flow_lines(series, "spans", title, hover_format=",d")
    # The current bucket has only part of its spans yet; without the shading its drop reads
    # like an outage.
    filling = series["bucket"].max()
    figure.add_vrect(
        x0=filling,
        x1=filling + pd.Timedelta(seconds=time_range.bucket_seconds),
        fillcolor="grey",
        opacity=0.12,
        line_width=0,
        annotation_text="filling",
        annotation_position="top left",
    )
    return figure


def error_rate_chart(series: pd.DataFrame) -> go.Figure:
    """Share of spans with status Error, per bucket and flow; empty buckets leave a gap."""
    figure = _flow_lines(series, "error_rate", "Error rate", hover_format=".1%")
    figure.update_yaxes(tickformat=".0%", rangemode="tozero")
    return figure


def latency_chart(series: pd.DataFrame) -> go.Figure:
    """95th percentile span duration in milliseconds, per bucket and flow."""
    return _flow_lines(series, "p95_ms", "p95 latency (ms)", hover_format=",.1f")


def _flow_lines(series: pd.DataFrame, measure: str, title: str, *, hover_format: str) -> go.Figure:
    flows = sorted(series["flow"].unique())
    figure = px.line(
        series,
        x="bucket",
        y=measure,
        color="flow",
        category_orders={"flow": flows},
        color_discrete_sequence=FLOW_COLOURS,
        labels={"bucket": "", measure: title, "flow": "Flow"},
        title=title,
        height=CHART_HEIGHT_PIXELS,
    )
    figure.update_traces(connectgaps=False, hovertemplate=f"%{{y:{hover_format}}}")
    figure.update_layout(
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        # far enough below the axis that a date under its times stays clear of the legend,
        # which wraps to three rows in a half-width chart
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "title": None},
        hovermode="x unified",
    )
    figure.update_yaxes(title=None, rangemode="tozero")
    return figure

"""The simulator's first log line says how fast simulated time runs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sample_data.simulator import SimulationConfig, _pace


def _config(**fields) -> SimulationConfig:
    return SimulationConfig(endpoint="http://127.0.0.1:4318", **fields)


def test_a_live_demo_with_a_backfill_says_it_catches_up_first():
    # it said "at speed live" while it backfilled a week as fast as it could
    week_ago = datetime.now(UTC) - timedelta(days=7)
    assert _pace(_config(live=True, speed=1.0), week_ago) == (
        "as fast as possible until it reaches the present, then in real time"
    )
    assert _pace(_config(live=True, speed=1.0), datetime.now(UTC)) == "in real time"


def test_a_replay_names_its_speed():
    now = datetime.now(UTC)
    assert _pace(_config(speed=math.inf), now) == "as fast as possible"
    assert _pace(_config(speed=60.0), now) == "60 times as fast as the clock"

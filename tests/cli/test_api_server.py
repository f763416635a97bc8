"""The JSON API that ``seamwatch detectors`` serves for the CLI."""

from __future__ import annotations

import httpx

from seamwatch.api import running_endpoint
from seamwatch.api_server import ApiServer


def test_the_api_server_answers_in_json_and_withdraws_its_address(store, tmp_path):
    server = ApiServer(store, tmp_path)
    server.start()
    try:
        assert running_endpoint(tmp_path) == server.endpoint
        listing = httpx.get(f"{server.endpoint}/api/v1/alerts")
        wrong_method = httpx.get(f"{server.endpoint}/api/v1/alerts/abc/ack")
        unknown = httpx.get(f"{server.endpoint}/api/v1/nothing-here")
    finally:
        server.stop()
    assert listing.status_code == 200
    assert listing.json()["alerts"] == []
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {
        "error": "GET is not allowed on /api/v1/alerts/abc/ack; use POST."
    }
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "No such path: /api/v1/nothing-here."}
    assert running_endpoint(tmp_path) is None

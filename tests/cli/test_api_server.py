"""The JSON API that ``seamwatch detectors`` serves for the CLI."""

from __future__ import annotations

import socket

import httpx
import pytest

from seamwatch.api import ApiError, get_json, post_json, running_endpoint
from seamwatch.api_server import ApiServer


def test_the_api_server_answers_in_json_and_withdraws_its_address(store, tmp_path):
    server = ApiServer(store, tmp_path)
    server.start()
    try:
        assert running_endpoint(tmp_path) == server.endpoint
        index = httpx.get(f"{server.endpoint}/api/v1")
        listing = httpx.get(f"{server.endpoint}/api/v1/alerts")
        wrong_method = httpx.get(f"{server.endpoint}/api/v1/alerts/abc/ack")
        unknown = httpx.get(f"{server.endpoint}/api/v1/nothing-here")
        # it listens on loopback: a page whose domain resolves there is not answered
        rebound = httpx.get(f"{server.endpoint}/api/v1/alerts", headers={"Host": "pages.example"})
    finally:
        server.stop()
    # /api/v1/silences (GET and POST) was listed twice
    paths = index.json()["endpoints"]
    assert paths.count("/api/v1/silences") == 1
    assert len(paths) == len(set(paths))
    assert listing.status_code == 200
    assert listing.json()["alerts"] == []
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {
        "error": "GET is not allowed on /api/v1/alerts/abc/ack; use POST."
    }
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "No such path: /api/v1/nothing-here. GET /api/v1 lists the API's routes."
    }
    assert rebound.status_code == 403
    assert running_endpoint(tmp_path) is None


def test_the_api_server_refuses_a_path_segment_that_is_not_utf8(store, tmp_path):
    # the id was read as U+FFFD and answered "no silence with id"
    server = ApiServer(store, tmp_path)
    server.start()
    try:
        answer = httpx.post(f"{server.endpoint}/api/v1/silences/%FF%FE/cancel", json={})
    finally:
        server.stop()
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "Path segment {silence_id} is not UTF-8 text (got '\\xff\\xfe'); "
        "percent-encode it as UTF-8."
    }


def test_a_change_the_process_did_not_answer_says_to_check_before_repeating_it():
    # a stopped process made the change once it ran again; "try again" made a second silence
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections wait in the backlog, unanswered, as with SIGSTOP
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ApiError) as change:
            post_json(endpoint, "/silences", {"seconds": 60}, holder="42", timeout_seconds=0.2)
        with pytest.raises(ApiError) as question:
            get_json(endpoint, "/silences", holder="42", timeout_seconds=0.2)
    assert str(change.value).endswith(
        "or restart it, then check whether the change was made before trying again."
    )
    assert str(question.value).endswith("or restart it, then try again.")

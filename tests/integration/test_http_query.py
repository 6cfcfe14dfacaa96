"""GET /v1/metrics/...: ranges, latest, 404 and 422 cases, against values the oracle computed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bridges.server import NatsServer
from testkit.metrics import put_results
from testkit.oracle import expected_results, format_window_time, generate_sessions
from testkit.streams import nats_client
from testkit.web import WebHarness, running_web
from testkit.workers import poll_until

# Every test here but the last only reads: one server and one web process serve the module.
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

T0 = 1_714_557_600
RESULTS = expected_results(generate_sessions(seed=13, students=10, minutes=12, start_epoch=T0))
ID_RULE = "must be 1-64 characters of A-Z a-z 0-9 _ -"


def _open_window_after_the_last(metric: str, student: str) -> tuple[str, dict[str, Any]]:
    """A provisional value (``"final": false``) of the window after the student's last final one."""
    last = max((key for key in RESULTS if key.startswith(f"{metric}.{student}.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    start = int(last.rsplit(".", 1)[1]) + 60
    value = {**RESULTS[last], "final": False, "window": {"start": format_window_time(start), "end": format_window_time(start + 60)}}
    return f"{metric}.{student}.{start}", value


#: the workers' provisional values, which only include_open=true shows
OPEN = dict([_open_window_after_the_last("engagement", "s0009")])


def start_of(key: str) -> int:
    return int(key.rsplit(".", 1)[1])


def oracle(metric: str, student: str, *, game: str | None = None) -> list[dict[str, Any]]:
    prefix = f"{metric}.{student}." + (f"{game}." if game else "")
    keys = [key for key in RESULTS if key.startswith(prefix)]
    if metric == "outcomes":
        keys.sort(key=lambda key: (start_of(key), key.split(".")[2]))
    else:
        keys.sort(key=start_of)
    return [RESULTS[key] for key in keys]


def at(seconds: int) -> str:
    return format_window_time(T0 + seconds)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def web(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WebHarness]:
    async with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        async with nats_client(server.url) as client:
            await put_results(client, {**RESULTS, **OPEN})
        async with running_web(server.url) as harness:
            yield harness


async def get(web: WebHarness, path: str, **params: str) -> tuple[int, Any]:
    response = await web.http.get(path, params=params)
    return response.status, await response.json()


@pytest.mark.parametrize("metric", ["progression", "engagement", "outcomes"])
async def test_every_window_of_a_student_in_start_order(web: WebHarness, metric: str) -> None:
    for student in ("s0001", "s0008"):
        status, body = await get(web, f"/v1/metrics/{metric}/{student}")
        assert status == 200
        assert body == {"windows": oracle(metric, student)}
        assert body["windows"], "the oracle has windows for every metric of these students"


async def test_from_is_inclusive_and_to_exclusive_by_window_start(web: WebHarness) -> None:
    every = oracle("engagement", "s0002")
    status, body = await get(web, "/v1/metrics/engagement/s0002", **{"from": at(120), "to": at(360)})
    assert status == 200
    assert body["windows"] == [w for w in every if at(120) <= w["window"]["start"] < at(360)]
    assert [w["window"]["start"] for w in body["windows"]] == [at(s) for s in (120, 180, 240, 300)]


async def test_a_fractional_from_starts_at_the_next_window(web: WebHarness) -> None:
    _, body = await get(web, "/v1/metrics/engagement/s0002", **{"from": "2024-05-01T10:02:00.5Z", "to": at(240)})
    assert [w["window"]["start"] for w in body["windows"]] == [at(180)]


async def test_times_with_offsets_are_the_same_instants(web: WebHarness) -> None:
    _, in_utc = await get(web, "/v1/metrics/engagement/s0002", **{"from": at(120), "to": at(240)})
    _, with_offset = await get(
        web, "/v1/metrics/engagement/s0002", **{"from": "2024-05-01T12:02:00+02:00", "to": "2024-05-01T04:34:00-05:30"}
    )
    assert with_offset == in_utc and in_utc["windows"]


async def test_only_one_bound(web: WebHarness) -> None:
    every = oracle("progression", "s0003")
    _, after = await get(web, "/v1/metrics/progression/s0003", **{"from": at(300)})
    _, before = await get(web, "/v1/metrics/progression/s0003", to=at(300))
    assert before["windows"] + after["windows"] == every


async def test_outcomes_of_one_game(web: WebHarness) -> None:
    games = {value["key"]["game_id"] for value in oracle("outcomes", "s0004")}
    for game in games:
        status, body = await get(web, "/v1/metrics/outcomes/s0004", game_id=game)
        assert (status, body) == (200, {"windows": oracle("outcomes", "s0004", game=game)})


async def test_a_student_without_windows_has_an_empty_list(web: WebHarness) -> None:
    assert await get(web, "/v1/metrics/progression/nobody") == (200, {"windows": []})


async def test_latest_is_the_newest_final_window(web: WebHarness) -> None:
    for metric in ("progression", "engagement", "outcomes"):
        status, body = await get(web, f"/v1/metrics/{metric}/s0005/latest")
        assert status == 200
        assert body == oracle(metric, "s0005")[-1]


async def test_open_windows_only_when_asked(web: WebHarness) -> None:
    finals = oracle("engagement", "s0009")
    (open_value,) = OPEN.values()
    assert await get(web, "/v1/metrics/engagement/s0009") == (200, {"windows": finals})
    assert await get(web, "/v1/metrics/engagement/s0009", include_open="false") == (200, {"windows": finals})
    assert await get(web, "/v1/metrics/engagement/s0009", include_open="true") == (
        200, {"windows": [*finals, open_value]},
    )
    start = open_value["window"]["start"]
    assert await get(web, "/v1/metrics/engagement/s0009", include_open="true", **{"from": start}) == (
        200, {"windows": [open_value]},
    )
    assert await get(web, "/v1/metrics/engagement/s0009/latest") == (200, finals[-1])


@pytest.mark.parametrize("flag", ["yes", "1", "True", ""])
async def test_include_open_is_true_or_false(web: WebHarness, flag: str) -> None:
    assert await get(web, "/v1/metrics/engagement/s0009", include_open=flag) == (
        422, {"errors": [{"index": -1, "field": "include_open", "message": "must be true or false"}]},
    )


async def test_latest_takes_no_include_open(web: WebHarness) -> None:
    status, body = await get(web, "/v1/metrics/engagement/s0009/latest", include_open="true")
    assert status == 422 and body["errors"][0]["field"] == "include_open"


async def test_latest_of_one_game(web: WebHarness) -> None:
    game = oracle("outcomes", "s0006")[0]["key"]["game_id"]
    _, body = await get(web, "/v1/metrics/outcomes/s0006/latest", game_id=game)
    assert body == oracle("outcomes", "s0006", game=game)[-1]


async def test_latest_without_windows_is_404(web: WebHarness) -> None:
    assert await get(web, "/v1/metrics/engagement/nobody/latest") == (
        404, {"errors": [{"index": -1, "field": "", "message": "no final window yet for engagement of nobody"}]},
    )


@pytest.mark.parametrize("path", ["/v1/metrics/mastery/s0001", "/v1/metrics/mastery/s0001/latest", "/v1/metrics/Engagement/s0001"])
async def test_an_unknown_metric_is_404(web: WebHarness, path: str) -> None:
    status, body = await get(web, path)
    assert status == 404
    assert body == {
        "errors": [{"index": -1, "field": "metric", "message": "unknown metric; known: engagement, outcomes, progression"}]
    }


@pytest.mark.parametrize(
    "student",
    ["s0001.x", "%2A", "*", "%3E", "s%3E1", "s%201", "s.*", "x" * 65, "%C3%A9", "s0001%00"],
)
@pytest.mark.parametrize("suffix", ["", "/latest"])
async def test_ids_that_could_address_other_keys_are_422(web: WebHarness, student: str, suffix: str) -> None:
    status, body = await get(web, f"/v1/metrics/engagement/{student}{suffix}")
    assert (status, body) == (422, {"errors": [{"index": -1, "field": "student_id", "message": ID_RULE}]})


@pytest.mark.parametrize("game", ["*", "g.1", ">", "g 1", ""])
async def test_a_bad_game_id_is_422(web: WebHarness, game: str) -> None:
    status, body = await get(web, "/v1/metrics/outcomes/s0001", game_id=game)
    assert (status, body) == (422, {"errors": [{"index": -1, "field": "game_id", "message": ID_RULE}]})


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"from": "yesterday"}, [("from", "must be RFC 3339 with a UTC offset: not an RFC 3339 timestamp")]),
        ({"to": "2024-05-01T10:00:00"}, [("to", "must be RFC 3339 with a UTC offset: not an RFC 3339 timestamp")]),
        ({"from": "2024-02-30T10:00:00Z"}, [("from", "must be RFC 3339 with a UTC offset: not a valid date")]),
        ({"from": at(120), "to": at(60)}, [("to", "must not be before from")]),
        # engagement is keyed by the student alone: game_id is none of its parameters
        ({"game_id": "g1"}, [("game_id", "not allowed; parameters: from, to, include_open")]),
        ({"form": at(0)}, [("form", "not allowed; parameters: from, to, include_open")]),
    ],
)
async def test_bad_parameters_are_422_naming_each(
    web: WebHarness, params: dict[str, str], errors: list[tuple[str, str]]
) -> None:
    status, body = await get(web, "/v1/metrics/engagement/s0001", **params)
    assert status == 422
    got = [(e["field"], e["message"]) for e in body["errors"]]
    assert len(got) == len(errors)
    for (field, message), (expected_field, expected_start) in zip(got, errors, strict=True):
        assert field == expected_field and message.startswith(expected_start), (field, message)
    assert all(e["index"] == -1 for e in body["errors"])


async def test_a_later_key_field_is_a_parameter_of_its_metric_only(web: WebHarness) -> None:
    status, body = await get(web, "/v1/metrics/outcomes/s0001", form=at(0))
    assert (status, body["errors"]) == (
        422, [{"index": -1, "field": "form", "message": "not allowed; parameters: from, to, game_id, include_open, version"}],
    )
    status, body = await get(web, "/v1/metrics/outcomes/s0001/latest", **{"from": at(0)})
    assert (status, body["errors"]) == (
        422, [{"index": -1, "field": "from", "message": "not allowed; parameters: game_id, version"}],
    )


async def test_the_metrics_that_run_are_listed_with_their_descriptions(web: WebHarness) -> None:
    status, body = await get(web, "/v1/metrics")
    assert status == 200
    by_name = {d["name"]: d for d in body["metrics"]}
    assert list(by_name) == ["engagement", "outcomes", "progression"]
    assert by_name["outcomes"]["key_fields"] == ["student_id", "game_id"]
    assert by_name["engagement"]["key_fields"] == ["student_id"]
    assert by_name["engagement"]["window"] == {
        "kind": "tumbling", "size_seconds": 60.0, "step_seconds": 60.0, "gap_seconds": None,
    }
    assert by_name["engagement"]["grace_seconds"] == 10
    assert by_name["engagement"]["values"]["interactions"] == "integer"
    assert all(d["version"] >= 1 for d in body["metrics"])


async def test_a_repeated_parameter_is_422(web: WebHarness) -> None:
    response = await web.http.get(f"/v1/metrics/engagement/s0001?from={at(0)}&from={at(60)}")
    assert response.status == 422
    assert (await response.json())["errors"] == [{"index": -1, "field": "from", "message": "must be given once"}]


async def test_latest_takes_no_range(web: WebHarness) -> None:
    status, body = await get(web, "/v1/metrics/engagement/s0001/latest", **{"from": at(0)})
    assert status == 422 and body["errors"][0]["field"] == "from"


async def test_every_problem_at_once(web: WebHarness) -> None:
    status, body = await get(web, "/v1/metrics/progression/s*", **{"from": "soon", "game_id": "g1"})
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["student_id", "game_id", "from"]


async def test_queries_create_no_consumer(web: WebHarness) -> None:
    async with nats_client(web.nats_url) as client:
        js = client.jetstream()
        before = (await js.stream_info("KV_metrics")).state.consumer_count
        for n in range(30):
            student = f"s{n % 10:04d}"
            for metric in ("progression", "engagement", "outcomes"):
                assert (await get(web, f"/v1/metrics/{metric}/{student}", **{"from": at(60 * n), "to": at(60 * n + 3600)}))[0] == 200
                assert (await get(web, f"/v1/metrics/{metric}/{student}/latest"))[0] in (200, 404)
            assert (await get(web, f"/v1/metrics/engagement/{student}"))[0] == 200
        after = (await js.stream_info("KV_metrics")).state.consumer_count
    assert before == after == 0


async def test_queries_while_nats_is_down_are_503(tmp_path: Path) -> None:
    async with NatsServer(tmp_path / "nats") as server, running_web(server.url) as web:
        await server.kill()
        await poll_until(lambda: not web.services.sink.available, timeout=10, what="the disconnect to be seen")
        for path in ("/v1/metrics/engagement/s0001", "/v1/metrics/engagement/s0001/latest"):
            response = await web.http.get(path)
            assert response.status == 503
            assert response.headers["Retry-After"] == "2"
            assert (await response.json())["errors"][0]["message"] == "NATS is unavailable; retry later"

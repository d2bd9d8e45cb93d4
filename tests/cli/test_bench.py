"""``bench``, end to end on the embedded fake server and on a served one."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tencent_chat_robots import Endpoint
from tencent_chat_robots._endpoints import ENDPOINTS as TABLE
from tencent_chat_robots._endpoints import EndpointSpec
from tencent_chat_robots._waiters import InFlightSlots, slots_for_bulk
from tencent_chat_robots.cli import _bench
from tencent_chat_robots.cli._bench import ENDPOINTS, _result_paths
from tencent_chat_robots.cli._main import cli
from tencent_chat_robots.cli._plot import figure
from tencent_chat_robots.cli._stats import EndpointStats
from tencent_chat_robots.testing import FakeTencentChat
from tencent_chat_robots.testing._app import Receive, Scope, Send
from tencent_chat_robots.testing._serve import serve

from ._spies import received, spy_bulk_runs, spy_fakes, spy_permits
from .conftest import Served

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_bench(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def saved(report: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(report["json_file"]).read_text(encoding="utf-8"))
    return data


def test_json_report_file_and_plot(tmp_path: Path) -> None:
    result = run_bench(
        "--rate-limit",
        "500",
        "--json",
        "bench",
        "--endpoint",
        "get_all_robots",
        "--calls",
        "60",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert "samples" not in printed  # stdout has the summary, the file the raw samples

    json_file = Path(printed["json_file"])
    assert json_file.parent == tmp_path
    assert json_file.name.startswith("bench-get_all_robots-")
    assert json_file.suffix == ".json"
    report = saved(printed)
    assert report["endpoint"] == "get_all_robots"
    assert report["path"] == "openim_robot_http_svc/get_all_robots"
    assert (report["calls"], report["succeeded"], report["failed"]) == (60, 60, 0)
    assert report["errors"] == {}
    assert report["attempts"] == 60 + report["retries"]
    assert report["rate_limit"] == 500
    assert report["pace"] <= 500
    assert report["documented_rate_limit"] == 200
    assert 0 < report["max_per_second"] <= 500
    assert 0 < report["max_per_second_arrived"] <= 200
    assert report["throughput_calls_per_second"] > 0
    latency = report["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["p99"] <= latency["max"]
    samples = report["samples"]
    assert len(samples["start_s"]) == len(samples["latency_ms"]) == report["attempts"]
    assert samples["start_s"][0] == 0
    assert samples["start_s"] == sorted(samples["start_s"])
    # The requests in the sliding second ending at each start and at each arrival, and
    # their peaks, against the API's documented rate.
    assert len(samples["in_second"]) == len(samples["arrival_s"]) == report["attempts"]
    assert samples["arrival_s"] == sorted(samples["arrival_s"])
    assert report["sliding_second"] == {
        "documented_rate": 200,
        "started": {
            "most": report["max_per_second"],
            "ends_at_s": samples["start_s"][samples["in_second"].index(report["max_per_second"])],
        },
        "arrived": {
            "most": report["max_per_second_arrived"],
            "ends_at_s": samples["arrival_s"][
                samples["arrived_in_second"].index(report["max_per_second_arrived"])
            ],
        },
    }
    assert max(samples["in_second"]) == report["max_per_second"]
    assert report["rate_limit_errors"] == 0
    assert {k: v for k, v in report.items() if k != "samples"}.items() <= printed.items()

    png = Path(printed["plot_file"])
    assert png == json_file.with_suffix(".png")
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 20_000  # two panels with axes and labels, not an empty canvas


# Changing a message needs one sent before, which a bench run cannot name: left out.
NOT_BENCHED = {"modify_c2c_message", "modify_group_message"}
BENCHED = [spec for spec in TABLE if spec.method not in NOT_BENCHED]


@pytest.mark.parametrize("spec", BENCHED, ids=lambda spec: spec.method)
def test_every_endpoint_gets_valid_calls_on_the_fake(spec: EndpointSpec, tmp_path: Path) -> None:
    # 25 calls: rooms of 10 robots, so the room calls span three rooms.
    result = run_bench(
        "--json", "bench", "--endpoint", spec.method, "--calls", "25", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["path"] == spec.path
    assert (report["calls"], report["succeeded"], report["failed"]) == (25, 25, 0)
    # Paced at 95% of the API's own documented rate, which the server enforces.
    documented = 100 if spec.path.startswith("live_engine_http_srv/") else 200
    assert report["documented_rate_limit"] == documented
    assert report["pace"] == documented * 0.95
    assert report["max_per_second"] <= report["pace"]
    assert report["max_per_second_arrived"] <= documented


def test_endpoints_are_named_by_method_and_by_their_former_names() -> None:
    assert {name: ENDPOINTS[name] for name in ("add_robot_to_room", "room_add_robot")} == {
        "add_robot_to_room": Endpoint.ROOM_ADD_ROBOT,
        "room_add_robot": Endpoint.ROOM_ADD_ROBOT,
    }
    assert ENDPOINTS["room_delete_robot"] == Endpoint.ROOM_DELETE_ROBOT
    assert ENDPOINTS["live_group_add_robots"] == Endpoint.LIVE_GROUP_ADD_ROBOTS
    assert ENDPOINTS["live_group_del_robots"] == Endpoint.LIVE_GROUP_DEL_ROBOTS
    # Every API of the table, by its method name: a new row needs no edit here.
    assert {spec.method: spec.path for spec in BENCHED}.items() <= ENDPOINTS.items()
    assert NOT_BENCHED.isdisjoint(ENDPOINTS)


@pytest.mark.parametrize("method", sorted(NOT_BENCHED))
def test_an_api_that_changes_a_message_is_refused_by_name(method: str, tmp_path: Path) -> None:
    result = run_bench("bench", "--endpoint", method, "--calls", "5", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "is not one of" in result.stderr
    help_text = run_bench("bench", "--help").stdout
    assert "Not modify_c2c_message nor modify_group_message" in " ".join(help_text.split())


def test_prints_a_summary_for_people(tmp_path: Path) -> None:
    result = run_bench(
        "bench", "--endpoint", "create_robot", "--calls", "30", "--out", str(tmp_path / "new")
    )
    assert result.exit_code == 0, result.output
    for text in ("throughput", "calls/s", "p50", "p90", "p99", "retries", "client pace 190/s"):
        assert text in result.output
    (json_file,) = (tmp_path / "new").glob("bench-create_robot-*.json")
    (png_file,) = (tmp_path / "new").glob("bench-create_robot-*.png")
    assert f"Wrote {json_file} and {png_file}" in result.output  # whole paths, not wrapped


def test_failed_calls_are_counted_by_class_and_exit_1(tmp_path: Path) -> None:
    # Rehearsing on the fake with one named pair: only the first removal finds the robot.
    result = run_bench(
        "--json",
        "bench",
        "--endpoint",
        "room_delete_robot",
        "--room",
        "room-1",
        "--robot",
        "@RBT#only",
        "--calls",
        "5",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert (report["succeeded"], report["failed"]) == (1, 4)
    assert sum(report["errors"].values()) == 4
    assert saved(report)["errors"] == report["errors"]


def test_the_calls_are_one_bulk_run_and_the_stats_match_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = spy_bulk_runs(monkeypatch)
    permits = spy_permits(monkeypatch)
    # Three internal errors, retried: the fake is made by the command itself.
    fakes = spy_fakes(
        monkeypatch, _bench, lambda fake: fake.fail_next(Endpoint.ROOM_ADD_ROBOT, 10002, times=3)
    )
    result = run_bench(
        "--json", "bench", "--endpoint", "room_add_robot", "--calls", "30", "--out", str(tmp_path)
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (run,) = runs
    assert (run.total, run.done, run.succeeded) == (30, 30, 30)
    # Every attempt waited for its permit in the bulk class.
    assert permits == {(Endpoint.ROOM_ADD_ROBOT, "bulk"): report["attempts"]}
    # What the bench counted is what the server received.
    (fake,) = fakes
    assert received(fake) == {Endpoint.ROOM_ADD_ROBOT: report["attempts"]}
    assert (report["attempts"], report["retries"]) == (33, 3)
    assert report["attempt_errors"] == {"InternalServerError": 3}
    assert report["succeeded"] == sum(1 for call in fake.calls if call.error_code == 0) == 30
    assert report["concurrency"] is None  # the pool chat.bulk sizes
    assert 1 <= report["workers_max"] <= 128


def test_unknown_endpoint_is_a_usage_error(tmp_path: Path) -> None:
    result = run_bench("bench", "--endpoint", "get_robots", "--calls", "5", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "Invalid value for '--endpoint'" in result.output
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_without_matplotlib_the_json_is_written_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    result = run_bench(
        "--json",
        "bench",
        "--endpoint",
        "get_all_robots",
        "--calls",
        "10",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "matplotlib is not installed" in result.stderr
    assert "tencent-chat-robots[bench]" in result.stderr
    report = json.loads(result.stdout)
    assert report["plot_file"] is None
    assert saved(report)["calls"] == 10
    assert not list(tmp_path.glob("*.png"))


def test_real_server_needs_named_objects(served: Served, tmp_path: Path) -> None:
    result = served.invoke("bench", "--endpoint", "room_add_robot", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "--robot and --room" in result.output
    assert "Traceback" not in result.output
    assert served.fake.calls == []


def test_a_malformed_named_id_is_a_usage_error(served: Served, tmp_path: Path) -> None:
    result = served.invoke(
        "bench", "--endpoint", "delete_robot", "--robot", "bob", "--out", str(tmp_path)
    )
    assert result.exit_code == 2
    assert "must start with '@RBT#', got 'bob'" in result.output
    assert served.fake.calls == []


def test_real_server_with_named_objects(served: Served, tmp_path: Path) -> None:
    served.fake.create_robot("@RBT#a")
    served.fake.create_robot("@RBT#b")
    served.fake.create_live_group("@TGS#live")
    result = served.invoke(
        "--json",
        "bench",
        "--endpoint",
        "live_group_add_robots",
        "--live-group",
        "@TGS#live",
        "--robot",
        "@RBT#a",
        "--robot",
        "@RBT#b",
        "--calls",
        "40",
        "--concurrency",
        "4",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["server"] == served.base_url
    assert report["max_per_second_arrived"] is None  # not ours to inspect
    assert report["concurrency"] == 4
    assert report["workers_max"] <= 4
    assert (report["calls"], report["succeeded"]) == (40, 40)
    assert len(served.fake.calls) == 40
    assert served.fake.live_group_members("@TGS#live") == ["@RBT#a", "@RBT#b"]


def test_live_groups_are_named_by_live_group_and_by_the_former_group(
    served: Served, tmp_path: Path
) -> None:
    served.fake.create_robot("@RBT#a")
    for group in ("@TGS#one", "@TGS#two"):
        served.fake.create_live_group(group)
    result = served.invoke(
        "--json",
        "bench",
        "--endpoint",
        "add_robots_to_live_group",
        "--live-group",
        "@TGS#one",
        "--group",
        "@TGS#two",
        "--robot",
        "@RBT#a",
        "--calls",
        "2",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    assert [call.body["GroupId"] for call in served.fake.calls] == ["@TGS#one", "@TGS#two"]
    missing = served.invoke(
        *("bench", "--endpoint", "add_robots_to_live_group", "--robot", "@RBT#a"),
        *("--out", str(tmp_path)),
    )
    assert missing.exit_code == 2
    assert "needs --live-group" in missing.output
    shown = run_bench("bench", "--help").output
    assert "--live-group" in shown
    assert "--group" not in shown.replace("--live-group", "")


def test_real_server_with_named_live_rooms(served: Served, tmp_path: Path) -> None:
    for robot in ("@RBT#a", "@RBT#b"):
        served.fake.create_robot(robot)
    for room in ("live-1", "live-2"):
        served.fake.create_live_room(room)
    result = served.invoke(
        "--json",
        "bench",
        "--endpoint",
        "add_robots_to_live_room",
        "--live-room",
        "live-1",
        "--live-room",
        "live-2",
        "--robot",
        "@RBT#a",
        "--robot",
        "@RBT#b",
        "--calls",
        "12",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["calls"], report["succeeded"]) == (12, 12)
    # Each call names all the robots, the rooms in turn.
    bodies = [call.body for call in served.fake.calls]
    assert bodies[:2] == [
        {"RoomId": "live-1", "RobotList_Account": ["@RBT#a", "@RBT#b"]},
        {"RoomId": "live-2", "RobotList_Account": ["@RBT#a", "@RBT#b"]},
    ]
    assert served.fake.live_room_robots("live-2") == ["@RBT#a", "@RBT#b"]


FOUR_ROBOTS = ("--robot", "@RBT#a", "--robot", "@RBT#b", "--robot", "@RBT#c", "--robot", "@RBT#d")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--endpoint", "add_robots_to_live_room"), "needs --robot and --live-room"),
        (("--endpoint", "get_live_room_robots", "--robot", "@RBT#a"), "needs --live-room"),
        (
            ("--endpoint", "add_robots_to_live_room", "--live-room", "live-1", *FOUR_ROBOTS),
            "a live room holds at most 3",
        ),
        (("--endpoint", "get_live_room_robots", "--live-room", "x" * 49), "1 to 48 UTF-8 bytes"),
    ],
)
def test_live_room_objects_are_checked_before_the_run(
    served: Served, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = served.invoke("bench", *args, "--out", str(tmp_path))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert served.fake.calls == []


def test_result_files_never_overwrite_an_earlier_run(tmp_path: Path) -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30, 15)
    first_json, first_png = _result_paths(tmp_path, "get_all_robots", when)
    assert first_json.name == "bench-get_all_robots-20240501-123015.json"
    assert first_png.name == "bench-get_all_robots-20240501-123015.png"
    first_json.write_text("{}")
    second_json, second_png = _result_paths(tmp_path, "get_all_robots", when)
    assert second_json.name == "bench-get_all_robots-20240501-123015-2.json"
    assert second_png.name == "bench-get_all_robots-20240501-123015-2.png"


def plotted_report(**changes: Any) -> dict[str, Any]:
    """A report as ``bench`` writes it, of four attempts (the third a retry)."""
    return {
        "endpoint": "add_robots_to_live_room",
        "server": "the embedded fake server",
        "calls": 3,
        "failed": 0,
        "throughput_calls_per_second": 2.5,
        "pace": 95.0,
        "documented_rate_limit": 100,
        "rate_limit_errors": 1,
        "latency_ms": {"p50": 2.0, "p90": 3.0, "p99": 4.0},
        "samples": {
            "start_s": [0.0, 0.5, 1.0, 1.2],
            "latency_ms": [1.0, 2.0, 3.0, 4.0],
            "attempt": [1, 1, 2, 1],
            "in_second": [1, 2, 2, 3],
            "arrival_s": [0.001, 0.502, 1.003, 1.25],
            "arrived_in_second": [1, 2, 2, 3],
        },
        **changes,
    }


def test_the_plot_draws_the_sliding_second_against_the_documented_rate() -> None:
    drawn = figure(plotted_report())
    rates = drawn.axes[0]
    lines = {line.get_label(): line for line in rates.get_lines()}
    # The limit holds for any second: drawn as it is documented, not per 100 ms.
    assert list(lines["documented limit 100 in any second"].get_ydata()) == [100, 100]
    assert list(lines["client pace 95/s"].get_ydata()) == [95, 95]
    started = lines["started (client), most 3"]
    assert list(started.get_xdata()) == [0.0, 0.5, 1.0, 1.2]
    assert list(started.get_ydata()) == [1, 2, 2, 3]
    arrived = lines["arrived (server), most 3"]
    assert list(arrived.get_xdata()) == [0.001, 0.502, 1.003, 1.25]
    assert list(arrived.get_ydata()) == [1, 2, 2, 3]
    retry = lines["retries (1)"]
    assert (list(retry.get_xdata()), list(retry.get_ydata())) == ([1.0], [2])
    (title,) = [text.get_text() for text in drawn.texts]
    assert "rate-limit errors (60007): 1" in title


def test_the_plot_of_a_real_server_has_no_arrivals() -> None:
    report = plotted_report(documented_rate_limit=200, pace=190.0)
    for key in ("arrival_s", "arrived_in_second"):
        del report["samples"][key]
    lines = {line.get_label() for line in figure(report).axes[0].get_lines()}
    assert "documented limit 200 in any second" in lines
    assert not any(label.startswith("arrived") for label in lines)


def test_rate_limit_errors_are_counted_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = spy_fakes(
        monkeypatch, _bench, lambda fake: fake.fail_next(Endpoint.GET_ALL_ROBOTS, 60007, times=2)
    )
    result = run_bench(
        "--json", "bench", "--endpoint", "get_all_robots", "--calls", "5", "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (fake,) = fakes
    refused = sum(1 for call in fake.calls if call.error_code == 60007)
    assert report["rate_limit_errors"] == refused == 2
    assert report["attempt_errors"] == {"RateLimitError": 2}
    assert saved(report)["rate_limit_errors"] == 2
    # Every attempt arrived, the refused ones too: the server counts them all.
    assert len(saved(report)["samples"]["arrival_s"]) == report["attempts"] == 7


def test_an_unwritable_output_folder_is_refused_before_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_bench(
        "bench", "--endpoint", "get_all_robots", "--calls", "5", "--out", str(blocker / "x")
    )
    assert result.exit_code == 2
    assert "cannot create" in result.output
    assert "calls/s" not in result.output  # nothing was run


class PeakFake(FakeTencentChat):
    """The fake, holding every request until ``n`` are on the wire at once; the peak.

    Then it holds none: :attr:`peak` is the most requests it ever had at once. Should
    fewer than ``n`` ever come together, it lets them through after ``GIVE_UP`` s.
    """

    GIVE_UP = 5.0  # under the client's 10 s time-out: a failing test ends, no retries

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.peak = self._now = 0
        self._full: asyncio.Event | None = None

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractAsyncContextManager[str]:
        return serve(self, host, port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._full is None:
            self._full = asyncio.Event()  # in the server's loop
        self._now += 1
        self.peak = max(self.peak, self._now)
        try:
            if self._now >= self.n:
                self._full.set()
            try:
                await asyncio.wait_for(self._full.wait(), self.GIVE_UP)
            except TimeoutError:
                self._full.set()
            await self.app(scope, receive, send)
        finally:
            self._now -= 1


@pytest.mark.parametrize("concurrency", [2, 32])
def test_concurrency_n_puts_n_requests_on_the_wire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    fakes: list[PeakFake] = []

    def make() -> PeakFake:  # the command's embedded fake
        fakes.append(PeakFake(concurrency))
        return fakes[-1]

    monkeypatch.setattr(_bench, "FakeTencentChat", make)
    result = run_bench(
        "--json",
        "bench",
        "--endpoint",
        "get_all_robots",
        "--calls",
        str(2 * concurrency),
        "--concurrency",
        str(concurrency),
        "--out",
        str(tmp_path),
    )

    assert result.exit_code == 0, result.output
    (fake,) = fakes
    assert fake.peak == concurrency  # every worker's request on the wire at once
    assert json.loads(result.stdout)["workers_max"] == concurrency


@pytest.mark.parametrize("n", [1, 2, 3, 15, 16, 17, 30, 31, 32, 33, 100, 255, 256, 10_000])
def test_slots_for_bulk_are_the_fewest_that_let_n_bulk_calls_in(n: int) -> None:
    def bulk_calls_in(size: int) -> int:
        slots = InFlightSlots(size, "e")
        taken = 0
        while taken <= n and slots.take(1):  # rank 1: the bulk class
            taken += 1
        return taken

    size = slots_for_bulk(n)
    assert bulk_calls_in(size) >= n
    assert size == 1 or bulk_calls_in(size - 1) < n


def test_sustained_rate_of_attempts_started_at_one_time_is_zero() -> None:
    # A coarse clock (Windows': 15.6 ms) gives a burst's starts one time.
    stats = EndpointStats("e", starts=[12.5, 12.5], latencies=[0.01, 0.01], tries=[1, 1])
    assert stats.sustained_rate == 0.0
    assert stats.as_dict()["sustained_rate"] == 0.0
    assert EndpointStats("e", starts=[1.0, 1.5, 2.0]).sustained_rate == 2.0

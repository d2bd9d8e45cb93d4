"""The service examples run against the fake: the FastAPI and aiohttp services in-process,
the SQLite provisioning script through its ``main`` (and as a process, for Ctrl-C)."""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from tencent_chat_robots.testing import FakeTencentChat

from ._echo_users import GROUP, ROBOT, TOKEN, assert_answered_once_as_the_robot, users_talk
from ._servers import fake_in_thread

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ADD_ROBOT = "room_engine_http_srv/add_robot"


def _load(name: str) -> ModuleType:
    """An example imported by its path (``examples`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic and dataclasses look their module up
    spec.loader.exec_module(module)
    return module


web_service = _load("web_service")
aiohttp_service = _load("aiohttp_service")
provision = _load("provision_from_sqlite")


def _path(robot: str) -> str:
    return quote(robot, safe="")  # "@RBT#echo" -> "%40RBT%23echo"


def _fake(*rooms: str) -> FakeTencentChat:
    fake = FakeTencentChat()
    fake.create_robot(ROBOT)
    for room in rooms:
        fake.create_room(room)
    return fake


def _added_rooms(fake: FakeTencentChat) -> list[str]:
    """The rooms of every add_robot request the fake received, in order."""
    return [call.body["RoomId"] for call in fake.calls if call.endpoint == ADD_ROBOT]


# -- examples/web_service.py (FastAPI) -----------------------------------------------------


@asynccontextmanager
async def _http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``app`` in-process (its lifespan is the test's to run)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        yield client


def _web_app(fake: FakeTencentChat, **settings: Any) -> Any:
    config = web_service.Settings(sdkappid=fake.sdkappid, callback_token=TOKEN, **settings)
    return web_service.create_app(config, make_chat=fake.client)


async def test_web_service_adds_robots_maps_errors_and_is_ready_until_shut_down() -> None:
    fake = _fake("room-1")
    app = _web_app(fake)
    async with _http(app) as http:
        assert (await http.get("/ready")).status_code == 503  # not started
        async with app.router.lifespan_context(app):
            ready = await http.get("/ready")
            assert ready.status_code == 200, ready.text
            health = ready.json()
            assert (health["ready"], health["closed"], health["limiter"]) == (True, False, "local")
            assert health["callbacks"]["ready"] is True

            answer = await http.post(f"/rooms/room-1/robots/{_path(ROBOT)}")
            assert answer.status_code == 200, answer.text
            assert answer.json()["request_id"]
            assert fake.room_members("room-1") == [ROBOT]

            fake.reset_calls()
            answer = await http.post("/rooms/room-1/robots/not-a-robot")
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] == "ValidationError"
            assert fake.calls == []  # refused before anything was sent

            answer = await http.post(f"/rooms/no-such-room/robots/{_path(ROBOT)}")
            assert answer.status_code == 502, answer.text
            assert (answer.json()["error"], answer.json()["code"]) == ("NotFoundError", 100004)
            assert answer.json()["request_id"]

        # Shut down: the client is closed and the probe says so.
        assert app.state.chat.closed
        ready = await http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["closed"] is True
        answer = await http.post(f"/rooms/room-1/robots/{_path(ROBOT)}")
        assert answer.status_code == 503


async def test_web_service_answers_503_when_a_call_misses_its_deadline() -> None:
    fake = _fake("room-1", "room-2")
    app = _web_app(fake, deadline=0.05, timeout=0.05)  # instead of 4 s: a quick test
    async with _http(app) as http, app.router.lifespan_context(app):
        fake.latency = 60  # far past the deadline: the call is cut short at it
        answer = await http.post(f"/rooms/room-1/robots/{_path(ROBOT)}")
        fake.latency = 0
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"] == "DeadlineExceededError"
        # The request reached the fake, which acts on receipt: the answer says it may
        # have been done, and it was.
        assert answer.json()["request_sent"] is True
        assert fake.room_members("room-1") == [ROBOT]
        # The client is still good for the next request.
        answer = await http.post(f"/rooms/room-2/robots/{_path(ROBOT)}")
        assert answer.status_code == 200, answer.text
        assert (await http.get("/ready")).status_code == 200


async def test_web_service_answers_callbacks_as_the_robot() -> None:
    fake = _fake()
    fake.create_group(GROUP, "Public", members=[ROBOT])
    app = _web_app(fake)
    fake.set_callback(app, token=TOKEN, path="/tencent/callback")  # in-process
    try:
        async with app.router.lifespan_context(app):
            deliveries, stale = await users_talk(fake)
    finally:
        await fake.aclose()
    assert_answered_once_as_the_robot(fake, deliveries, stale)
    assert app.state.bot.closed


async def test_web_service_provision_job_reports_every_room() -> None:
    rooms = [f"room-{i}" for i in range(5)]
    fake = _fake(*rooms)
    app = _web_app(fake)
    async with _http(app) as http, app.router.lifespan_context(app):
        refused = await http.post("/jobs/provision", json={"robot": "nobody", "rooms": rooms})
        assert refused.status_code == 422, refused.text
        assert (await http.post("/jobs/provision", json={"robot": ROBOT})).status_code == 422

        body = {"robot": ROBOT, "rooms": [*rooms, "no-such-room"]}
        started = await http.post("/jobs/provision", json=body)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        with anyio.fail_after(10):
            await app.state.jobs.get(job_id).task
        report = (await http.get(f"/jobs/{job_id}")).json()
        assert (await http.get("/jobs/nope")).status_code == 404
    assert report["state"] == "finished"
    assert (report["total"], report["succeeded"], report["failed"], report["pending"]) == (
        6,
        5,
        1,
        0,
    )
    assert report["not_done"] == []
    (failure,) = report["failures"]
    assert (failure["room"], failure["error"], failure["code"]) == (
        "no-such-room",
        "NotFoundError",
        100004,
    )
    assert all(fake.room_members(room) == [ROBOT] for room in rooms)


async def test_web_service_stops_a_running_job_at_shutdown_and_loses_no_room() -> None:
    rooms = [f"room-{i}" for i in range(300)]
    fake = _fake(*rooms)
    settings = web_service.Settings(sdkappid=fake.sdkappid, callback_token=TOKEN)
    # Paced at 50 calls a second, the job needs 6 s: it is still running at shutdown.
    app = web_service.create_app(settings, make_chat=lambda: fake.client(rate_limit=50))

    def placed() -> set[str]:
        return {room for room in rooms if fake.room_members(room)}

    async with _http(app) as http:
        async with app.router.lifespan_context(app):
            started = await http.post("/jobs/provision", json={"robot": ROBOT, "rooms": rooms})
            assert started.status_code == 202, started.text
            job_id = started.json()["id"]
            with anyio.fail_after(10):
                await fake.wait_until(lambda: len(placed()) >= 10)
            progress = (await http.get(f"/jobs/{job_id}")).json()
            assert progress["state"] == "running"
            assert progress["not_done"] is None
            assert progress["succeeded"] + progress["failed"] + progress["pending"] == 300
        # The lifespan stopped the job, then closed the client.
        assert app.state.chat.closed
        report = (await http.get(f"/jobs/{job_id}")).json()

    assert report["state"] == "stopped"
    assert report["error"] is None  # the run was over before the client closed
    assert report["failed"] == 0
    not_done = {entry["room"]: entry for entry in report["not_done"]}
    assert not_done, "the job ended before the shutdown: nothing was stopped"
    # Every room accounted for, once: succeeded, or not done (and why).
    assert report["succeeded"] + len(not_done) == 300
    assert all(entry.get("error") in (None, "BulkStoppedError") for entry in not_done.values())
    succeeded = set(rooms) - set(not_done)
    maybe_sent = {room for room, entry in not_done.items() if entry["maybe_sent"]}
    assert succeeded <= placed() <= succeeded | maybe_sent
    # Each room was asked for once: nothing was retried or sent twice.
    assert len(_added_rooms(fake)) == len(placed())


# -- examples/aiohttp_service.py -------------------------------------------------------------


def _aiohttp_app(fake: FakeTencentChat, **settings: Any) -> Any:
    config = aiohttp_service.Settings(sdkappid=fake.sdkappid, callback_token=TOKEN, **settings)
    return aiohttp_service.create_app(config, make_chat=fake.client)


async def test_aiohttp_service_adds_robots_answers_callbacks_and_is_ready_until_cleanup() -> None:
    fake = _fake("room-1")
    fake.create_group(GROUP, "Public", members=[ROBOT])
    app = _aiohttp_app(fake)
    try:
        async with TestClient(TestServer(app)) as client:
            ready = await client.get("/ready")
            assert ready.status == 200, await ready.text()
            health = await ready.json()
            assert (health["ready"], health["closed"], health["limiter"]) == (True, False, "local")

            answer = await client.post(f"/rooms/room-1/robots/{_path(ROBOT)}")
            assert answer.status == 200, await answer.text()
            assert fake.room_members("room-1") == [ROBOT]
            answer = await client.post("/rooms/room-1/robots/not-a-robot")
            assert answer.status == 422
            answer = await client.post(f"/rooms/no-such-room/robots/{_path(ROBOT)}")
            assert answer.status == 502
            assert (await answer.json())["code"] == 100004

            # The fake calls the service back over loopback, as Tencent would.
            fake.set_callback(str(client.make_url("/tencent/callback")), token=TOKEN)
            deliveries, stale = await users_talk(fake)
    finally:
        await fake.aclose()
    assert_answered_once_as_the_robot(fake, deliveries, stale)
    # Cleaned up: the receiver and the client are closed, and the probe says so.
    assert app[aiohttp_service.BOT].closed
    assert app[aiohttp_service.CHAT].closed
    ready = await aiohttp_service.ready(make_mocked_request("GET", "/ready", app=app))
    assert ready.status == 503


async def test_aiohttp_service_answers_503_when_a_call_misses_its_deadline() -> None:
    fake = _fake("room-1")
    app = _aiohttp_app(fake, deadline=0.05, timeout=0.05)  # instead of 4 s: a quick test
    async with TestClient(TestServer(app)) as client:
        fake.latency = 60
        answer = await client.post(f"/rooms/room-1/robots/{_path(ROBOT)}")
        fake.latency = 0
        assert answer.status == 503, await answer.text()
        assert answer.headers["Retry-After"] == "1"
        body = await answer.json()
        assert (body["error"], body["request_sent"]) == ("DeadlineExceededError", True)
        assert (await client.get("/ready")).status == 200


# -- examples/provision_from_sqlite.py ---------------------------------------------------------


@pytest.fixture
def served_fake(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[FakeTencentChat, dict[str, str]]]:
    """The fake on a loopback port, in a thread of its own (the script runs its own loop),
    and the environment that points a client at it (also set in this process's)."""
    fake = FakeTencentChat()
    fake.create_robot(provision.DEMO_ROBOT)
    with fake_in_thread(fake) as base_url:
        env = {
            "TENCENT_CHAT_SDKAPPID": str(fake.sdkappid),
            "TENCENT_CHAT_SECRET_KEY": fake.secret_key,
            "TENCENT_CHAT_ADMIN": fake.admin,
            "TENCENT_CHAT_BASE_URL": base_url,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield fake, env


def _demo_db(tmp_path: Path, fake: FakeTencentChat, rows: int) -> tuple[str, list[str]]:
    db = str(tmp_path / "placements.db")
    assert provision.main(["--db", db, "--create-demo-db", str(rows)]) == 0
    rooms = [room for room, _ in _table(db)]
    assert len(rooms) == rows
    for room in rooms:
        fake.create_room(room)
    return db, rooms


def _table(db: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(room_id, robot) -> (status, error) of every row."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT room_id, robot, status, error FROM placements ORDER BY rowid")
        return {(room, robot): (status, error) for room, robot, status, error in rows}
    finally:
        conn.close()


def _rooms(db: str, status: str) -> set[str]:
    return {room for (room, _), (s, _) in _table(db).items() if s == status}


def test_provision_from_sqlite_does_every_row_and_a_rerun_nothing(
    served_fake: tuple[FakeTencentChat, dict[str, str]], tmp_path: Path
) -> None:
    fake, _ = served_fake
    db, rooms = _demo_db(tmp_path, fake, 200)
    assert set(_table(db).values()) == {("pending", None)}

    assert provision.main(["--db", db, "--commit-every", "64"]) == 0
    assert set(_table(db).values()) == {("done", None)}
    assert all(fake.room_members(room) == [provision.DEMO_ROBOT] for room in rooms)
    assert sorted(_added_rooms(fake)) == rooms  # each row once

    fake.reset_calls()
    assert provision.main(["--db", db]) == 0
    assert fake.calls == []  # nothing left to do


def test_provision_from_sqlite_records_failures_and_retries_them_next_run(
    served_fake: tuple[FakeTencentChat, dict[str, str]], tmp_path: Path
) -> None:
    fake, _ = served_fake
    db, _ = _demo_db(tmp_path, fake, 20)
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO placements (room_id, robot) VALUES (?, ?)",
        [("room-later", provision.DEMO_ROBOT), ("room-00001", "not-a-robot")],
    )
    conn.commit()
    conn.close()

    assert provision.main(["--db", db]) == 1  # some rows failed
    table = _table(db)
    status, error = table["room-later", provision.DEMO_ROBOT]
    assert status == "failed"
    assert "NotFoundError" in str(error)
    assert "100004" in str(error)
    status, error = table["room-00001", "not-a-robot"]
    assert status == "failed"
    assert str(error).startswith("ValidationError")
    assert len(_rooms(db, "done")) == 20

    # The room exists now: the next run redoes the failed rows, and only them.
    fake.create_room("room-later")
    fake.reset_calls()
    assert provision.main(["--db", db]) == 1  # the bad robot id fails again, unsent
    assert _added_rooms(fake) == ["room-later"]
    assert _table(db)["room-later", provision.DEMO_ROBOT] == ("done", None)
    assert fake.room_members("room-later") == [provision.DEMO_ROBOT]


def test_provision_from_sqlite_stopped_by_ctrl_c_then_resumed_does_exactly_the_rest(
    served_fake: tuple[FakeTencentChat, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = served_fake
    db, rooms = _demo_db(tmp_path, fake, 200)

    def placed() -> set[str]:
        return {room for room in rooms if fake.room_members(room)}

    # At 20 calls a second the run needs 10 s: Ctrl-C comes once ten rooms are done.
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "provision_from_sqlite.py"), "--db", db, "--rate", "20"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        async def some_placed() -> None:
            with anyio.fail_after(30):
                await fake.wait_until(lambda: len(placed()) >= 10)

        anyio.run(some_placed)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == provision.EXIT_INTERRUPTED, output
    assert "stopping" in output
    assert "Traceback" not in output
    assert fake.secret_key not in output

    table = _table(db)
    done = _rooms(db, "done")
    maybe_sent = {
        room
        for (room, _), row in table.items()
        if row == ("pending", "stopped (may have been sent)")
    }
    assert 10 <= len(done) < 200
    # What finished was committed: every room the robot is in is recorded done, but for
    # a call cut short on the wire (redone next time).
    assert done <= placed() <= done | maybe_sent
    assert all(status in ("done", "pending") for status, _ in table.values())

    fake.reset_calls()
    assert provision.main(["--db", db]) == 0
    # Exactly the rest, each once.
    assert sorted(_added_rooms(fake)) == sorted(set(rooms) - done)
    assert set(_table(db).values()) == {("done", None)}
    assert placed() == set(rooms)

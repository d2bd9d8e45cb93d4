"""``provision --journal`` killed outright (SIGKILL) partway, then ``--resume``d.

The fake does the placements and keeps back its answers from a point on, so the killed
run has calls the server did that it never heard of. The journal, read after the kill,
names the calls in flight: started, never finished. Resumed, nothing is lost, every
placement is in place once, and only calls in flight at the kill were sent again.
"""

from __future__ import annotations

import json
import queue
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tencent_chat_robots import Endpoint

from .._servers import fake_in_thread
from ._process import TIMEOUT, CliProcess
from ._stalled_fake import StalledFake
from .conftest import invoke

ROBOTS = [f"@RBT#k{i}" for i in range(5)]
ROOMS = [f"room-{i}" for i in range(40)]
PLACEMENTS = {(room, robot) for room in ROOMS for robot in ROBOTS}
DONE_BEFORE_THE_KILL = 80  # of the 200 placements, answered


@pytest.fixture
def fake() -> Iterator[tuple[StalledFake, str]]:
    # No server limit: the client paces itself. 20 ms per answer: calls overlap, so
    # several are in flight when the run is killed.
    fake = StalledFake(rate_limit=None, latency=0.02)
    for room in ROOMS:
        fake.create_room(room)
    with fake_in_thread(fake) as base_url:
        try:
            yield fake, base_url
        finally:
            fake.release()


def connection(fake: StalledFake, base_url: str) -> list[str]:
    return [
        *("--base-url", base_url, "--sdkappid", str(fake.sdkappid)),
        *("--secret-key", fake.secret_key, "--admin", fake.admin),
    ]


def wait_for_a_stall(server: StalledFake, cli: CliProcess) -> None:
    """Until the server keeps an answer back; the run must not end before."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            server.stalled.get(timeout=0.05)
            return
        except queue.Empty:
            # Waiting on the queue, a while at a time, to see a run that ended early.
            assert cli.process.poll() is None, f"the run ended before the kill: {cli.finish()}"
            assert time.monotonic() < deadline, "no answer was kept back"


def in_flight(journal: Path) -> set[int]:
    """The items the journal records as started and not finished."""
    started, finished = set(), set()
    for line in journal.read_text(encoding="utf-8").splitlines()[1:]:
        record = json.loads(line)
        if "start" in record:
            started.add(record["start"])
        else:
            finished.add(record["i"])
    return started - finished


def test_a_run_killed_partway_loses_nothing_and_resends_only_what_was_in_flight(
    fake: tuple[StalledFake, str], tmp_path: Path
) -> None:
    server, base_url = fake
    plan = tmp_path / "plan.csv"  # one placement per row, as for a big plan
    rows = "".join(f"{robot},{room}\n" for room in ROOMS for robot in ROBOTS)
    plan.write_text(f"user_id,rooms\n{rows}", encoding="utf-8")
    journal = tmp_path / "journal.jsonl"
    server.stall(Endpoint.ROOM_ADD_ROBOT, after=DONE_BEFORE_THE_KILL)
    cli = CliProcess(
        *connection(server, base_url), "provision", str(plan), "--journal", str(journal)
    )
    try:
        wait_for_a_stall(server, cli)  # a placement done, its answer kept back
        cli.process.send_signal(signal.SIGKILL)
        assert cli.process.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        cli.kill()
    unfinished = in_flight(journal)  # the journal as the kill left it
    server.release()

    resumed = invoke(
        *connection(server, base_url), "--json", "provision", str(plan), "--resume", str(journal)
    )

    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.stdout)
    assert report["unfinished_earlier"] == len(unfinished) >= 1
    assert report["succeeded_earlier"] + report["succeeded"] == report["items"]
    # Nothing lost, each placement in place once.
    for room in ROOMS:
        members = server.room_members(room)
        assert sorted(members) == sorted(ROBOTS), room
    # Sent again: only calls in flight at the kill, at most one more time each.
    adds = [call for call in server.calls if call.endpoint == Endpoint.ROOM_ADD_ROBOT]
    assert {call.error_code for call in adds} == {0}
    received = Counter((call.body["RoomId"], call.body["Member_Account"]) for call in adds)
    assert set(received) == PLACEMENTS
    sent_again = sum(received.values()) - len(PLACEMENTS)
    assert 1 <= sent_again <= len(unfinished)
    resent_items = {
        tuple(record["call"][1:])
        for record in map(json.loads, journal.read_text(encoding="utf-8").splitlines()[1:])
        if record.get("i") in unfinished
    }
    assert {pair for pair, n in received.items() if n > 1} <= resent_items

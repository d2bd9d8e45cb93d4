"""Plans read in two passes: checked whole, then the room placements streamed from the file."""

from __future__ import annotations

import os
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from tencent_chat_robots import Call
from tencent_chat_robots.cli._plan import PlanError, load_plan

HEADER = "user_id,nick,face_url,self_signature,rooms,live_groups\n"
ROBOTS = [f"@RBT#{i:02d}" for i in range(20)]
ROWS = 200_000


def big_plan(path: Path, rows: int) -> Path:
    """One placement per row, 20 robots taking turns, every room a new one."""
    with path.open("w", encoding="utf-8") as file:
        file.write(HEADER)
        for i in range(rows):
            file.write(f"{ROBOTS[i % len(ROBOTS)]},,,,room-{i:07d},\n")
    return path


def peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_big_csv_plan_is_checked_and_streamed_without_holding_its_rows(tmp_path: Path) -> None:
    path = big_plan(tmp_path / "big.csv", ROWS)
    counted: list[int] = []

    def check_and_stream() -> None:
        plan = load_plan(path)  # the checking pass
        counted.append(sum(1 for _ in plan.room_placements()))  # the placements' pass

    peak = peak_bytes(check_and_stream)

    assert counted == [ROWS]
    # Holding the placements would take at least a string per room and a pair per row.
    held = ROWS * (sys.getsizeof("room-0000000") + sys.getsizeof(("room-0000000", ROBOTS[0])))
    assert held > 20_000_000
    assert peak < held / 20, (peak, held)


def test_a_robot_on_many_rows_is_one_robot(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(
        HEADER
        + "@RBT#1,,,,room-1,@TGS#a\n"
        + "@RBT#2,Two,,,room-1,\n"
        + "@RBT#1,One,,,room-2,@TGS#a\n"  # the profile on a later row
        + "@RBT#1,One,,hi,room-1,@TGS#b\n"  # the same nick again, and another field
        + "@RBT#2,,,,,@TGS#a\n",
        encoding="utf-8",
    )
    plan = load_plan(path)

    assert plan.creates == (
        Call.create_robot("@RBT#1", nick="One", self_signature="hi"),
        Call.create_robot("@RBT#2", nick="Two"),
    )
    # Every room placement, in file order: room-1 for @RBT#1 twice (one more call).
    assert list(plan.room_placements()) == [
        ("room-1", "@RBT#1"),
        ("room-1", "@RBT#2"),
        ("room-2", "@RBT#1"),
        ("room-1", "@RBT#1"),
    ]
    assert plan.placements == 4
    assert plan.rooms_per_robot == {"@RBT#1": 3, "@RBT#2": 1}
    assert plan.live_groups == {"@TGS#a": ("@RBT#1", "@RBT#2"), "@TGS#b": ("@RBT#1",)}
    assert plan.items == 2 + 4 + 2


def test_contradicting_profiles_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(HEADER + "@RBT#1,,x.png\n@RBT#2\n\n@RBT#1,,y.png\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(caught.value) == (
        f"{path}: line 5: face_url of @RBT#1 is 'y.png', but line 2 gives 'x.png'"
    )


def test_a_plan_that_changes_between_the_passes_is_refused(tmp_path: Path) -> None:
    path = big_plan(tmp_path / "plan.csv", 10)
    plan = load_plan(path)
    big_plan(path, 11)
    with pytest.raises(PlanError, match="the plan changed during the run"):
        list(plan.room_placements())
    big_plan(path, 9)
    with pytest.raises(PlanError, match="the plan changed during the run"):
        list(plan.room_placements())


def rewrite_unnoticed(path: Path, text: str) -> None:
    """Rewrite ``path`` in place, its size, time and inode kept: ``os.stat`` cannot tell."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


PLACED = "@RBT#1,,,,room-1,\n@RBT#1,,,,room-2,\n@RBT#2,,,,room-3,\n"


@pytest.mark.parametrize(
    ("edited", "read", "message"),
    [
        # A robot the first pass never saw: never created, never checked.
        (
            "@RBT#1,,,,room-1,\n@RBT#9,,,,room-2,\n@RBT#2,,,,room-3,\n",
            [("room-1", "@RBT#1")],
            "line 3: robot @RBT#9 was not in the plan checked",
        ),
        # A placement moved to another robot: one too many for it.
        (
            "@RBT#1,,,,room-1,\n@RBT#2,,,,room-2,\n@RBT#2,,,,room-3,\n",
            [("room-1", "@RBT#1"), ("room-2", "@RBT#2")],
            "line 4: @RBT#2 has more room placements than the 1 checked",
        ),
    ],
)
def test_a_row_changed_in_place_is_refused_where_it_is_read(
    tmp_path: Path, edited: str, read: list[tuple[str, str]], message: str
) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(HEADER + PLACED, encoding="utf-8")
    plan = load_plan(path)
    rewrite_unnoticed(path, HEADER + edited)

    placements = plan.room_placements()
    assert [next(placements) for _ in read] == read
    with pytest.raises(PlanError) as caught:
        next(placements)
    assert str(caught.value) == f"{path}: the plan changed during the run: {message}"


def test_fewer_placements_for_a_robot_are_refused_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(HEADER + PLACED, encoding="utf-8")
    plan = load_plan(path)
    rewrite_unnoticed(path, HEADER + "@RBT#1,,,,room-1,\n@RBT#2,,,,room-3,\n@RBT#1,,,,,      \n")

    with pytest.raises(PlanError, match="@RBT#1 has 1 room placements, not the 2 checked"):
        list(plan.room_placements())


def test_a_plan_modified_after_it_was_checked_is_refused_before_its_first_placement(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(HEADER + PLACED, encoding="utf-8")
    plan = load_plan(path)
    plan.check_unchanged()
    # Another room for each placement: the same robots, the same counts.
    path.write_text(HEADER + PLACED.replace("room-", "hall-"), encoding="utf-8")
    status = path.stat()  # a later time, even on a coarse clock
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 2_000_000_000))

    with pytest.raises(PlanError, match="the file was modified after it was checked"):
        plan.check_unchanged()
    placements = plan.room_placements()
    with pytest.raises(PlanError, match="the file was modified after it was checked"):
        next(placements)

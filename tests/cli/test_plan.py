"""Plans read in two passes: checked whole, then the room placements streamed from the file."""

from __future__ import annotations

import os
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from tencent_chat_robots import Call
from tencent_chat_robots.cli._plan import BLOCK, PlanError, load_plan

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
    "edited",
    [
        # A robot the first pass never saw: never created, never checked.
        "@RBT#1,,,,room-1,\n@RBT#9,,,,room-2,\n@RBT#2,,,,room-3,\n",
        # A placement moved to another robot.
        "@RBT#1,,,,room-1,\n@RBT#2,,,,room-2,\n@RBT#2,,,,room-3,\n",
        # Another room, the same robots and counts (the counts alone missed it).
        "@RBT#1,,,,room-1,\n@RBT#1,,,,hall-2,\n@RBT#2,,,,room-3,\n",
        # Two rows swapped.
        "@RBT#1,,,,room-2,\n@RBT#1,,,,room-1,\n@RBT#2,,,,room-3,\n",
        # A placement dropped, the size kept by a blank cell.
        "@RBT#1,,,,room-1,\n@RBT#2,,,,room-3,\n@RBT#1,,,,,      \n",
    ],
)
def test_a_row_changed_in_place_stops_its_block_before_any_of_its_placements(
    tmp_path: Path, edited: str
) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(HEADER + PLACED, encoding="utf-8")
    plan = load_plan(path)
    rewrite_unnoticed(path, HEADER + edited)

    placements = plan.room_placements()
    with pytest.raises(PlanError) as caught:
        next(placements)  # the block's rows are all read and compared before the first goes
    assert str(caught.value) == (
        f"{path}: the plan changed during the run: rows from line 2 on differ from the rows checked"
    )


def test_a_change_in_a_later_block_lets_only_the_blocks_before_it_go(tmp_path: Path) -> None:
    path = big_plan(tmp_path / "plan.csv", 3 * BLOCK)
    plan = load_plan(path)
    text = path.read_text(encoding="utf-8")
    # The room of the block's last row, on line 1 + 2 * BLOCK: same length, same robot.
    last = f"room-{2 * BLOCK - 1:07d}"
    rewrite_unnoticed(path, text.replace(last, last.replace("room-", "hall-")))

    placements = plan.room_placements()
    first_block = [next(placements) for _ in range(BLOCK)]
    assert first_block[-1] == (f"room-{BLOCK - 1:07d}", ROBOTS[(BLOCK - 1) % len(ROBOTS)])
    with pytest.raises(PlanError, match=f"rows from line {BLOCK + 2} on differ"):
        next(placements)


def test_rows_added_at_the_end_are_refused(tmp_path: Path) -> None:
    path = big_plan(tmp_path / "plan.csv", BLOCK)
    extra = "@RBT#00,,,,extra,\n"
    rows = path.read_text(encoding="utf-8").removeprefix(HEADER)
    # The header's names are read stripped: its padding makes room for the row added.
    padded = HEADER.replace("\n", " " * len(extra) + "\n")
    path.write_text(padded + rows, encoding="utf-8")
    plan = load_plan(path)
    rewrite_unnoticed(path, HEADER + rows + extra)

    placements = plan.room_placements()
    assert len([next(placements) for _ in range(BLOCK)]) == BLOCK
    with pytest.raises(PlanError, match=f"rows from line {BLOCK + 2} on were not in the plan"):
        next(placements)


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


def test_a_bad_byte_far_into_the_file_is_reported_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    rows = "".join(f"@RBT#1,,,,room-{i},\n" for i in range(5000))  # far past a read chunk
    path.write_bytes((HEADER + rows).encode() + b"@RBT#1,caf\xe9,,,room-x,\n")

    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(caught.value) == (
        f"{path}: line 5002: not UTF-8 text (byte 0xe9 at byte 11 of the line): save the"
        " plan as UTF-8 (in Excel: CSV UTF-8)"
    )


def test_gbk_text_that_passes_as_utf8_is_warned_of(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    # 小 in GBK is D0 A1, which is also UTF-8: for С (Cyrillic).
    path.write_bytes(HEADER.encode() + b"@RBT#1," + "小".encode("gbk") + b"bot,,,r,\n")

    plan = load_plan(path)
    assert plan.creates == (Call.create_robot("@RBT#1", nick="\u0421bot"),)
    assert plan.warnings == (
        "line 2: nick 'Сbot' reads as '小bot' in GBK: if the file was saved as GBK, re-save"
        " it as UTF-8",
    )


@pytest.mark.parametrize("nick", ["Café", "Привет", "小助手", "Σωκράτης", "plain"])
def test_real_text_is_not_taken_for_gbk(tmp_path: Path, nick: str) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(HEADER + f"@RBT#1,{nick},,,r,\n", encoding="utf-8")
    assert load_plan(path).warnings == ()


def test_unknown_columns_are_read_past_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("user_id,notes,rooms,owner\n@RBT#1,first one,room-1,ann\n", encoding="utf-8")

    plan = load_plan(path)
    assert list(plan.room_placements()) == [("room-1", "@RBT#1")]
    assert plan.warnings == (
        "line 1: column(s) 'notes', 'owner' ignored; known: user_id, nick, face_url,"
        " self_signature, rooms, live_groups",
    )


def test_a_plan_without_its_header_says_the_first_line_must_be_it(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("@RBT#001,Helper,,,room-1,\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(caught.value) == (
        f"{path}: the first line must be the header, naming the columns (user_id, nick,"
        " face_url, self_signature, rooms, live_groups; only user_id is required), not"
        " '@RBT#001,Helper,,,room-1,'"
    )

"""Reading a provisioning plan, a JSON or CSV file: checked whole before any call, then streamed.

A first pass reads every row and checks it with the SDK's own rules, keeping only what
is per robot (profiles, counts) and per live group (its robots: one call each, so they
are gathered). Robots and live groups per app are few; rooms are not, so the room
placements are not kept: :meth:`Plan.room_placements` reads the file again as the calls
go. A JSON plan is one document, parsed whole; JSON is for small plans.

The file must not change in between. The first pass keeps a digest of each block of
``BLOCK`` rows; the second pass reads a block, compares its digest and the file's
``os.stat`` (size, modification time, inode) with the first pass's, and only then lets
its placements go: a change stops the run within a block, and no row that was not
checked is sent.

A CSV plan is UTF-8 (a byte-order mark allowed): a line that is not is refused, by its
number. Columns the plan does not know are read past, with a warning.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, NamedTuple

import attrs

from .._calls import Call
from .._exceptions import ValidationError
from .._models import ActionResult, CreateRobotRequest, RoomRobotRequest

__all__ = ["BLOCK", "Plan", "PlanError", "load_plan"]

PROFILE_FIELDS = ("nick", "face_url", "self_signature")
LIST_FIELDS = ("rooms", "live_groups")
FIELDS = ("user_id", *PROFILE_FIELDS, *LIST_FIELDS)
BLOCK = 256  # rows per digest: the second pass holds one block, and sends none unchecked
WARNINGS = 20  # warnings kept; the rest counted


class PlanError(Exception):
    """The plan file is malformed; the message names the file and the place."""


class Row(NamedTuple):
    """One CSV row or JSON entry: a robot, part of its profile, some of its placements."""

    where: int | str  # a CSV row's line number, or a JSON entry's "robots[3]"
    user_id: str  # not checked yet: the first pass does it
    profile: Mapping[str, Any]  # the profile fields given
    rooms: tuple[str, ...]
    live_groups: tuple[str, ...]


Rows = Callable[["_Warnings"], Iterator[Row]]
Stamp = tuple[int, int, int]  # a file's size, modification time (ns) and inode
_NO_PROFILE: Mapping[str, Any] = MappingProxyType({})


def _place(row: Row) -> str:
    """Where ``row`` is, for a message."""
    return f"line {row.where}" if isinstance(row.where, int) else row.where


@attrs.frozen
class Plan:
    """A checked plan. Its items, in the order that indexes them: :attr:`creates`, the
    room placements (file order), then one call per live group."""

    path: Path
    creates: tuple[Call[ActionResult], ...]  # one per robot, in order of first mention
    placements: int  # room placements
    rooms_per_robot: Mapping[str, int]
    live_groups: Mapping[str, tuple[str, ...]]  # group -> its robots, in order of mention
    warnings: tuple[str, ...]  # what was read past (unknown columns, suspect text)
    _rows: Rows = attrs.field(repr=False, eq=False)
    _stamp: Stamp = attrs.field(repr=False, eq=False)  # the file's, before the first pass
    _streamed: bool = attrs.field(repr=False, eq=False)  # the second pass reads the file
    _blocks: tuple[bytes, ...] = attrs.field(repr=False, eq=False)  # digests, BLOCK rows each

    @property
    def items(self) -> int:
        return len(self.creates) + self.placements + len(self.live_groups)

    def changed(self, detail: str) -> PlanError:
        """The error for a plan file found changed since it was checked (``detail``: how)."""
        return PlanError(f"{self.path}: the plan changed during the run: {detail}")

    def check_unchanged(self) -> None:
        """Raise :meth:`changed` if the file is not as it was when it was checked."""
        if _stamp(self.path) != self._stamp:
            raise self.changed("the file was modified after it was checked")

    def room_placements(self) -> Iterator[tuple[str, str]]:
        """``(room, robot)`` per room placement, in file order, read lazily from the file.

        Rows are read a block at a time; a block's placements go only once its digest is
        the first pass's and the file's stamp is unchanged, else :meth:`changed` is
        raised (before any placement of that block).
        """
        block: list[Row] = []
        number = 0
        for row in _located(self.path, self._rows):
            block.append(row)
            if len(block) == BLOCK:
                yield from self._checked(number, block)
                number, block = number + 1, []
        if block:
            yield from self._checked(number, block)
            number += 1
        if number != len(self._blocks):
            raise self.changed(
                f"it has {number} blocks of rows, not the {len(self._blocks)} checked"
            )

    def _checked(self, number: int, block: list[Row]) -> Iterator[tuple[str, str]]:
        if self._streamed:
            self.check_unchanged()
        if number >= len(self._blocks):
            raise self.changed(f"rows from {_place(block[0])} on were not in the plan checked")
        if _digest(block) != self._blocks[number]:
            raise self.changed(f"rows from {_place(block[0])} on differ from the rows checked")
        for row in block:
            for room in row.rooms:
                yield room, row.user_id


def load_plan(path: Path) -> Plan:
    """Read and check a plan file; :class:`PlanError` says what is wrong and where."""
    stamp = _stamp(path)
    rows: Rows
    streamed = not _is_json(path)
    if streamed:
        rows = lambda warnings: _csv_rows(path, warnings)  # noqa: E731
    else:
        entries = _json_entries(path)
        rows = lambda _: _json_rows(entries)  # noqa: E731
    plan = _check(path, rows, stamp, streamed)
    if _stamp(path) != stamp:
        raise plan.changed("the file was modified while it was checked")
    return plan


def _digest(rows: list[Row]) -> bytes:
    text = repr([tuple(row) for row in rows])  # where, ids, profile: all of each row
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _stamp(path: Path) -> Stamp:
    try:
        status = os.stat(path)
    except OSError as err:
        raise PlanError(f"{path}: cannot read the plan: {err}") from None
    return status.st_size, status.st_mtime_ns, status.st_ino


def _located(path: Path, rows: Rows, warnings: _Warnings | None = None) -> Iterator[Row]:
    """``rows()``, any error in reading it a :class:`PlanError` naming ``path``.

    ``warnings``: the first pass's, which takes the reader's warnings (the second
    pass reads the same file, and would repeat them).
    """
    try:
        yield from rows(warnings or _Warnings())
    except PlanError as err:
        raise PlanError(f"{path}: {err}") from None
    except csv.Error as err:
        raise PlanError(f"{path}: not valid CSV: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"{path}: cannot read the plan: {err}") from None


def _check(path: Path, rows: Rows, stamp: Stamp, streamed: bool) -> Plan:
    """The first pass: every row checked, only what is per robot or per group kept."""
    profiles: dict[str, dict[str, tuple[Any, str]]] = {}  # robot -> field -> (value, where)
    rooms_per_robot: dict[str, int] = {}
    groups: dict[str, dict[str, None]] = {}
    placements = 0
    warnings = _Warnings()
    blocks: list[bytes] = []
    block: list[Row] = []
    for row in _located(path, rows, warnings):
        try:
            _merge_profile(profiles, row, warnings)
            _check_placements(row, groups)
        except PlanError as err:
            raise PlanError(f"{path}: {err}") from None
        placements += len(row.rooms)
        rooms_per_robot[row.user_id] = rooms_per_robot.get(row.user_id, 0) + len(row.rooms)
        block.append(row)
        if len(block) == BLOCK:
            blocks.append(_digest(block))
            block = []
    if block:
        blocks.append(_digest(block))
    if not profiles:
        raise PlanError(f"{path}: the plan lists no robots")
    creates = tuple(
        Call.create_robot(robot, **{name: value for name, (value, _) in profile.items()})
        for robot, profile in profiles.items()
    )
    live_groups = {group: tuple(robots) for group, robots in groups.items()}
    return Plan(
        path,
        creates,
        placements,
        rooms_per_robot,
        live_groups,
        warnings.listed(),
        rows,
        stamp,
        streamed,
        tuple(blocks),
    )


class _Warnings:
    """The first ``WARNINGS`` warnings of the first pass, and how many more there were."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.kept) < WARNINGS:
            self.kept.append(text)
        else:
            self.more += 1

    def listed(self) -> tuple[str, ...]:
        more = (f"and {self.more} more warnings",) if self.more else ()
        return (*self.kept, *more)


def _merge_profile(
    profiles: dict[str, dict[str, tuple[Any, str]]], row: Row, warnings: _Warnings
) -> None:
    """Add ``row``'s profile fields to its robot's: a field given twice must agree."""
    profile = profiles.get(row.user_id)
    if profile is None or row.profile:  # a robot's id is checked once, each field given
        _sdk_rules(CreateRobotRequest, row.user_id, where=_place(row), **row.profile)
        profile = profiles.setdefault(row.user_id, {})
        for name, value in row.profile.items():
            if isinstance(value, str) and (gbk := _as_gbk(value)) is not None:
                warnings.add(
                    f"{_place(row)}: {name} {value!r} reads as {gbk!r} in GBK: if the file"
                    " was saved as GBK, re-save it as UTF-8"
                )
    for name, value in row.profile.items():
        first, where = profile.setdefault(name, (value, _place(row)))
        if first != value:
            raise PlanError(
                f"{_place(row)}: {name} of {row.user_id} is {value!r}, but {where} gives {first!r}"
            )


def _check_placements(row: Row, groups: dict[str, dict[str, None]]) -> None:
    """Apply the SDK's rules to ``row``'s placements; gather each live group's robots."""
    for index, room in enumerate(row.rooms):
        try:
            RoomRobotRequest(room, row.user_id)  # the call's body: what a Call would check
        except ValidationError as err:
            raise PlanError(f"{_place(row)}.rooms[{index}]: {err}") from None
    for index, group in enumerate(row.live_groups):
        robots = groups.get(group)
        if robots is None:  # a group id is checked once; the robot id is, with the profile
            where = f"{_place(row)}.live_groups[{index}]"
            _sdk_rules(Call.add_robots_to_live_group, group, [row.user_id], where=where)
            robots = groups[group] = {}
        robots[row.user_id] = None


def _sdk_rules(build: Callable[..., object], *args: Any, where: str, **kwargs: Any) -> None:
    """Build a call or request only to apply the SDK's rules: a broken one is a PlanError."""
    try:
        build(*args, **kwargs)
    except ValidationError as err:
        raise PlanError(f"{where}: {err}") from None


def _id_list(value: Iterable[object], where: str) -> tuple[str, ...]:
    """Room or group ids: non-blank strings, a repeat in one list dropped."""
    ids: dict[str, None] = {}
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PlanError(f"{where}[{index}]: must be a non-empty string, got {item!r}")
        ids[item] = None
    return tuple(ids)


# -- JSON: {"robots": [{...}, ...]} ------------------------------------------------------


def _json_entries(path: Path) -> list[Any]:
    try:
        # utf-8-sig: editors on Windows may save a byte-order mark.
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise PlanError(f"{path}: not valid JSON: {err}") from None
    except RecursionError:
        raise PlanError(f"{path}: not a plan: its JSON is nested too deep to read") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"{path}: cannot read the plan: {err}") from None
    except ValueError as err:  # a number of thousands of digits
        raise PlanError(f"{path}: not a plan: {err}") from None
    if not isinstance(data, dict):
        raise PlanError(
            f'{path}: must be a JSON object {{"robots": [...]}}, got {type(data).__name__}'
        )
    if "robots" not in data:
        raise PlanError(f'{path}: missing key "robots"')
    unknown = sorted(set(data) - {"robots"})
    if unknown:
        raise PlanError(
            f'{path}: unknown key(s) {", ".join(map(repr, unknown))}; only "robots" is known'
        )
    entries = data["robots"]
    if not isinstance(entries, list):
        raise PlanError(f"{path}: robots: must be a list, got {type(entries).__name__}")
    return entries


def _json_rows(entries: list[Any]) -> Iterator[Row]:
    for number, entry in enumerate(entries):
        where = f"robots[{number}]"
        if not isinstance(entry, dict):
            raise PlanError(f"{where}: must be an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise PlanError(
                f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
            )
        lists = {}
        for name in LIST_FIELDS:
            value = entry.get(name)
            # A bare string would otherwise be walked character by character.
            if value is not None and not isinstance(value, list):
                raise PlanError(f"{where}.{name}: must be a list, got {type(value).__name__}")
            lists[name] = _id_list(value or (), f"{where}.{name}")
        if entry.get("user_id") is None:
            raise PlanError(f"{where}: user_id is required")
        profile = {name: entry[name] for name in PROFILE_FIELDS if entry.get(name) is not None}
        yield Row(where, entry["user_id"], profile, lists["rooms"], lists["live_groups"])


# -- CSV: a header row, then a robot per row -----------------------------------------------


def _csv_rows(path: Path, warnings: _Warnings) -> Iterator[Row]:
    """A row per non-blank data row, after checking the header."""
    with path.open("rb") as file:
        # strict: an unterminated quote is an error, not a robot named '@RBT#x,'.
        reader = csv.reader(_utf8_lines(file), strict=True)
        header = _csv_header(next(reader, []), warnings)
        # Each field's cell; a column the header lacks reads the empty cell past the end.
        columns = [header.index(name) if name in header else len(header) for name in FIELDS]
        while True:
            line = reader.line_num + 1  # where the row starts (a quoted cell may span lines)
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                hint = ""
                if "field larger than field limit" in str(err):
                    hint = "; put the rooms of a robot on rows of their own, one or a few a row"
                raise PlanError(f"line {line}: not valid CSV ({err}){hint}") from None
            if len(cells) > len(header):
                raise PlanError(
                    f"line {line}: {len(cells)} cells, but the header has {len(header)}"
                )
            # Short rows leave the trailing optional columns empty, as spreadsheets write them.
            fields = [cells[column] if column < len(cells) else "" for column in columns]
            if fields[0].strip() or "".join(cells).strip():  # a blank row is no row
                yield _csv_row(line, fields)


def _utf8_lines(file: BinaryIO) -> Iterator[str]:
    """The file's lines as text, each checked as UTF-8 (a byte-order mark first dropped)."""
    for number, line in enumerate(file, start=1):
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PlanError(
                f"line {number}: not UTF-8 text (byte 0x{line[err.start]:02x} at byte"
                f" {err.start + 1} of the line): save the plan as UTF-8 (in Excel: CSV UTF-8)"
            ) from None


def _csv_header(cells: list[str], warnings: _Warnings) -> list[str]:
    header = [name.strip() for name in cells]
    if not header:
        raise PlanError("empty CSV: expected a header row")
    known = [name for name in header if name in FIELDS]
    if not known:
        raise PlanError(
            f"the first line must be the header, naming the columns ({', '.join(FIELDS)};"
            f" only user_id is required), not {','.join(cells)!r}"
        )
    if "user_id" not in header:
        raise PlanError(f"missing column 'user_id' in the header; known: {', '.join(FIELDS)}")
    if len(set(known)) != len(known):
        raise PlanError("a column appears twice in the header")
    unknown = [name for name in header if name not in FIELDS]
    if unknown:
        warnings.add(
            f"line 1: column(s) {', '.join(map(repr, unknown))} ignored; known: {', '.join(FIELDS)}"
        )
    return header


def _csv_row(line: int, fields: list[str]) -> Row:
    """The row of a CSV line's cells, in the order of FIELDS."""
    user_id, nick, face_url, self_signature, rooms, groups = fields
    user_id = user_id.strip()
    if not user_id:
        raise PlanError(f"line {line}: user_id is required")
    profile = _NO_PROFILE
    if nick or face_url or self_signature:  # most rows of a big plan have none
        given = zip(PROFILE_FIELDS, (nick, face_url, self_signature), strict=True)
        profile = {name: value.strip() for name, value in given if value.strip()}
    return Row(line, user_id, profile, _cell_ids(rooms), _cell_ids(groups))


def _cell_ids(cell: str) -> tuple[str, ...]:
    """The ids of a list cell: only ";" separates (an id may contain spaces); a repeat dropped."""
    if ";" not in cell:  # the common case, one placement per row: made quick
        cell = cell.strip()
        return (cell,) if cell else ()
    return tuple(dict.fromkeys(item.strip() for item in cell.split(";") if item.strip()))


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_GREEK_OR_CYRILLIC = re.compile(r"[\u0370-\u04ff]+")
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]+")


def _as_gbk(text: str) -> str | None:
    """``text`` read as GBK, when that is likely what it was: else None.

    A guess, for a warning. GBK's two-byte characters are sometimes valid UTF-8 (小 is
    D0 A1, UTF-8 for С): a GBK file with little Chinese in it can pass as UTF-8, its
    Chinese turned Greek or Cyrillic a letter or two at a time. Text whose non-ASCII
    runs are all such letters, one or two long, and whose bytes read as GBK give
    Chinese in their place, is flagged; a Greek or Russian word is longer.
    """
    runs = _NON_ASCII_RUN.findall(text)
    if not runs or not all(len(run) <= 2 and _GREEK_OR_CYRILLIC.fullmatch(run) for run in runs):
        return None
    try:
        gbk = text.encode("utf-8").decode("gbk")
    except UnicodeDecodeError:
        return None
    return gbk if all(_CJK.fullmatch(run) for run in _NON_ASCII_RUN.findall(gbk)) else None


def _is_json(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix == ".json"
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as file:
            head = file.read(4096)
    except OSError as err:
        raise PlanError(f"{path}: cannot read the plan: {err}") from None
    return head.lstrip().startswith(("{", "["))

"""The journal of a ``provision`` run: a line per item as it goes, for ``--resume``.

One JSON object per line, UTF-8. The first line says which plan the journal is of::

    {"journal":"tencent-chat-robots provision","version":1,"plan":"/abs/plan.csv",
     "size":1234,"sha256":"...","items":1100}

then, as the run goes::

    {"start":17}                          item 17 was taken: its call may go out
    {"i":17,"ok":true,"call":["add_robot_to_room","room-1","@RBT#001"]}
    {"i":18,"ok":false,"call":[...],"error":"NotFoundError","code":100004,"message":"..."}

``i`` is the item's index in the plan's order (the robots' creations, the room
placements in file order, the live-group calls) and ``call`` its ``Call.key()``; ``code``
is there when the server gave one. Each line is flushed as it is written (to the system,
not to the disk: a killed process loses nothing written, a power cut may), so a run
killed outright loses at most the ends of the calls in flight: they keep a start line
without an end line, and a resumed run counts them as perhaps sent. A kill may also cut
the last line short, before its newline: ``--resume`` drops it; any other bad line
(one with its newline, the last one too) makes the journal unusable.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

import attrs

from .._calls import Call
from .._exceptions import TencentChatError

__all__ = ["Bits", "Earlier", "Fingerprint", "Journal", "JournalError"]

FORMAT = "tencent-chat-robots provision"
VERSION = 1


class JournalError(Exception):
    """The journal cannot be used; the message names the file and says why."""


@attrs.frozen
class Fingerprint:
    """What a journal records of its plan, so that a changed plan is noticed."""

    path: str
    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return cls(str(path.resolve()), size, digest.hexdigest())


class Bits:
    """A bitmap by item index: a million items take 125 kB, where a set would take 50 MB."""

    def __init__(self, size: int) -> None:
        self._bytes = bytearray((size + 7) // 8)

    def __getitem__(self, index: int) -> bool:
        return bool(self._bytes[index >> 3] & (1 << (index & 7)))

    def set(self, index: int, value: bool = True) -> None:
        if value:
            self._bytes[index >> 3] |= 1 << (index & 7)
        else:
            self._bytes[index >> 3] &= ~(1 << (index & 7)) & 0xFF

    def count(self) -> int:
        return int.from_bytes(self._bytes, "little").bit_count()

    def clear(self, other: Bits) -> None:
        """Clear every bit that is set in ``other`` (of the same size)."""
        kept = int.from_bytes(self._bytes, "little") & ~int.from_bytes(other._bytes, "little")
        self._bytes = bytearray(kept.to_bytes(len(self._bytes), "little"))


@attrs.define
class Earlier:
    """What the journal says of the earlier runs of a plan."""

    done: Bits  # succeeded
    # Started, and neither succeeded nor failed since. A live group's item may also be
    # done (for some of its robots: see _provision._added_to_groups, which settles it).
    unfinished: Bits
    ok_keys: dict[int, list[Any]] = attrs.Factory(dict)  # see Journal.resume's keys_from

    @classmethod
    def nothing(cls, items: int) -> Earlier:
        """A first run's: nothing done."""
        return cls(Bits(items), Bits(items))


def _line(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate (a server's message may hold one) becomes the JSON escape \udXXX.
    return text.encode("utf-8", "backslashreplace") + b"\n"


class Journal:
    """An open journal; :meth:`started` and :meth:`finished` append to it."""

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file

    @classmethod
    def create(cls, path: Path, plan: Fingerprint, items: int) -> Journal:
        """A new journal at ``path``, refused if a non-empty file is there already."""
        _not_the_plan(path, plan)
        try:
            if path.exists() and path.stat().st_size > 0:
                raise JournalError(
                    f"{path} exists and is not empty; to carry on the run it records, use "
                    f"--resume {path}"
                )
            journal = cls(path, path.open("ab"))
        except OSError as err:
            raise JournalError(f"{path}: cannot write the journal: {err}") from None
        journal._write(
            {
                "journal": FORMAT,
                "version": VERSION,
                "plan": plan.path,
                "size": plan.size,
                "sha256": plan.sha256,
                "items": items,
            }
        )
        return journal

    @classmethod
    def resume(
        cls, path: Path, plan: Fingerprint, items: int, *, keys_from: int
    ) -> tuple[Journal, Earlier]:
        """The journal at ``path``, read, and opened to append to.

        The call keys of the items from index ``keys_from`` on that succeeded are kept
        (in :attr:`Earlier.ok_keys`): a live group's call does not list the same robots
        in every run. A last line cut short by a kill (no newline at its end) is
        dropped, and cut off the file; any other bad line is a :class:`JournalError`.
        """
        _not_the_plan(path, plan)
        earlier = Earlier.nothing(items)
        try:
            with path.open("rb") as file:
                kept = _read(path, file, plan, items, keys_from, earlier)
            if kept < path.stat().st_size:
                os.truncate(path, kept)
            return cls(path, path.open("ab")), earlier
        except OSError as err:
            raise JournalError(f"{path}: cannot read the journal: {err}") from None

    def started(self, index: int) -> None:
        """Item ``index`` is taken: written before its call can go out."""
        self._write({"start": index})

    def finished(self, index: int, call: Call[Any], error: TencentChatError | None) -> None:
        """Item ``index`` has its outcome."""
        record: dict[str, Any] = {"i": index, "ok": error is None, "call": call.key()}
        if error is not None:
            record["error"] = type(error).__name__
            code = getattr(error, "code", None)
            if code is not None:
                record["code"] = code
            record["message"] = str(error)
        self._write(record)

    def close(self) -> None:
        self._file.close()

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(_line(record))
        self._file.flush()


def _not_the_plan(path: Path, plan: Fingerprint) -> None:
    """Refuse the plan file itself as its journal, before any other check."""
    try:
        same = os.path.samefile(path, plan.path)
    except OSError:  # no file there yet (or none to compare): not the plan
        same = False
    if same:
        raise JournalError(
            f"{path} is the plan itself: the journal is a file of its own (a new one"
            " for --journal, the first run's for --resume)"
        )


def _read(
    path: Path, file: BinaryIO, plan: Fingerprint, items: int, keys_from: int, earlier: Earlier
) -> int:
    """Apply the journal's lines to ``earlier``; the length of its sound part, in bytes."""
    first = file.readline()
    header = _parse(first) if first.endswith(b"\n") else None
    if not isinstance(header, dict) or header.get("journal") != FORMAT:
        raise JournalError(f"{path} is not a provision journal (no journal header first)")
    if header.get("version") != VERSION:
        raise JournalError(
            f"{path} is a version {header.get('version')!r} journal; this version of"
            f" tencent-chat-robots reads version {VERSION}"
        )
    if (header.get("size"), header.get("sha256")) != (plan.size, plan.sha256):
        raise JournalError(
            f"{path} is the journal of another plan, or of this one before it changed: it is"
            f" of {header.get('plan')!r} ({header.get('size')} bytes, sha256"
            f" {header.get('sha256')}), and the plan {plan.path} has {plan.size} bytes,"
            f" sha256 {plan.sha256}"
        )
    kept = len(first)
    for number, line in enumerate(file, start=2):
        # Only the last line can lack its newline: a kill cut it short. It is dropped.
        # A whole line (with its newline) must be sound, the last one as any other.
        if not line.endswith(b"\n"):
            break
        if not _apply(line, items, keys_from, earlier):
            raise JournalError(f"{path}, line {number}: not a journal record: {line!r}")
        kept += len(line)
    return kept


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:  # UnicodeDecodeError too
        return None


def _apply(line: bytes, items: int, keys_from: int, earlier: Earlier) -> bool:
    """Apply one item line to ``earlier``; false if it is not one."""
    record = _parse(line)
    if not isinstance(record, dict):
        return False
    if record.keys() == {"start"}:
        index = record["start"]
        if not _is_index(index, items):
            return False
        # Unfinished until an end line comes, even if done before: a live group's call
        # may go again for the robots an earlier call of its left out.
        earlier.unfinished.set(index)
        return True
    index, ok, key = record.get("i"), record.get("ok"), record.get("call")
    if not _is_index(index, items) or not isinstance(ok, bool) or not isinstance(key, list):
        return False
    earlier.unfinished.set(index, False)
    if ok:
        earlier.done.set(index)
        if index >= keys_from:
            earlier.ok_keys.setdefault(index, []).append(key)
    return True


def _is_index(value: object, items: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < items

"""The journal of a ``provision`` run: a line per item as it goes, for ``--resume``.

One JSON object per line, UTF-8. The first line says which plan the journal is of::

    {"journal":"tencent-chat-robots provision","version":2,"plan":"/abs/plan.csv",
     "size":1234,"sha256":"...","items":1100,"sum":"..."}

then, as the run goes::

    {"start":17,"sum":"..."}              item 17 was taken: its call may go out
    {"i":17,"ok":true,"call":["add_robot_to_room","room-1","@RBT#001"],"sum":"..."}
    {"i":18,"ok":false,"call":[...],"error":"NotFoundError","code":100004,"message":"...",
     "sum":"..."}

``i`` is the item's index in the plan's order (the robots' creations, the room
placements in file order, the live-group calls) and ``call`` its ``Call.key()``; ``code``
is there when the server gave one. ``sum`` closes every line: a digest of the line
before it, so a line edited by hand is refused (by its number) rather than believed.
A resumed run also checks that each success line is its plan item's own call (see
:meth:`Earlier.check`).

Each line is written straight to the system as it comes (not to the disk: a killed
process loses nothing written, a power cut may), so a run killed outright loses at
most the ends of the calls in flight: they keep a start line without an end line, and
a resumed run counts them as perhaps sent. A kill may also cut the last line short,
before its newline: ``--resume`` drops it; any other bad line (one with its newline,
the last one too) makes the journal unusable.

A journal is held by one run at a time: an OS lock on the file, taken before it is
read or written and kept until the run ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

import attrs

from .._calls import Call
from .._exceptions import TencentChatError

__all__ = ["Bits", "Earlier", "Fingerprint", "Journal", "JournalError", "reason_of"]

FORMAT = "tencent-chat-robots provision"
VERSION = 2
_SUM = b',"sum":"'
DIGEST = 8  # bytes of an item's call digest, kept per item on resume


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


def call_digest(key: Any) -> bytes:
    """A call key's digest, as :attr:`Earlier.digests` keeps it."""
    text = json.dumps(key, separators=(",", ":"))  # ASCII: the same bytes whatever read it
    return hashlib.blake2b(text.encode(), digest_size=DIGEST).digest()


@attrs.define
class Earlier:
    """What the journal says of the earlier runs of a plan."""

    done: Bits  # succeeded
    # Started, and neither succeeded nor failed since. A live group's item may also be
    # done (for some of its robots: see _provision._added_to_groups, which settles it).
    unfinished: Bits
    ok_keys: dict[int, list[Any]] = attrs.Factory(dict)  # see Journal.resume's keys_from
    # The digest of the call each item before keys_from succeeded with, DIGEST bytes an
    # item (8 MB a million): checked against the plan's own before anything is sent.
    digests: bytearray = attrs.Factory(bytearray)
    path: Path | None = None  # the journal read

    @classmethod
    def nothing(cls, items: int) -> Earlier:
        """A first run's: nothing done."""
        return cls(Bits(items), Bits(items))

    def check(self, items: Iterable[tuple[int, Any]]) -> None:
        """Refuse the journal if a success line is not its item's call.

        ``items``: ``(index, call key)`` of the plan's items before ``keys_from``.
        """
        for index, key in items:
            if self.done[index] and self._digest(index) != call_digest(key):
                raise self.refused(index, None, f"is {json.dumps(key, ensure_ascii=False)}")

    def refused(self, index: int, key: Any, planned: str) -> JournalError:
        """The error for the success line of item ``index`` as call ``key``, not ``planned``."""
        number, text = _line_of(self.path, index, key)
        return JournalError(
            f"{self.path}, line {number}: item {index} succeeded as {text}, but the plan's"
            f" item {index} {planned}: the journal was edited, or is of another plan;"
            " start anew with --journal"
        )

    def _digest(self, index: int) -> bytes:
        return bytes(self.digests[index * DIGEST : (index + 1) * DIGEST])


def _line(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate (a server's message may hold one) becomes the JSON escape \udXXX.
    body = text.encode("utf-8", "backslashreplace")[:-1]  # the closing brace comes last
    return body + _SUM + _sum(body) + b'"}\n'


def _sum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=6).hexdigest().encode()


def _sound(line: bytes) -> Any:
    """The record of a whole line whose sum is right; None if it is not one."""
    body, sep, rest = line.rpartition(_SUM)
    if not sep or rest != _sum(body) + b'"}\n':
        return None
    return _parse(line)


def _line_of(path: Path | None, index: int, key: Any = None) -> tuple[int, str]:
    """The number and call of the last success line of item ``index`` (of call ``key``,
    if given): an error's detail."""
    found = (0, "?")
    if path is None:
        return found
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            record = _parse(line)
            if not isinstance(record, dict) or record.get("i") != index or not record.get("ok"):
                continue
            if key is None or record.get("call") == key:
                found = (number, json.dumps(record.get("call"), ensure_ascii=False))
    return found


class Journal:
    """An open journal, held by this run; :meth:`started` and :meth:`finished` append to it.

    A write that fails raises ``OSError``: the caller stops the run (see _provision).
    """

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file

    @classmethod
    def create(cls, path: Path, plan: Fingerprint, items: int) -> Journal:
        """A new journal at ``path``, refused if a non-empty file is there already."""
        _not_the_plan(path, plan)
        journal = cls(path, _open_held(path))
        try:
            if os.fstat(journal._file.fileno()).st_size > 0:
                raise JournalError(
                    f"{path} exists and is not empty; to carry on the run it records, use "
                    f"--resume {path}"
                )
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
        except OSError as err:
            journal.close()
            raise JournalError(f"{path}: cannot write the journal: {reason_of(err)}") from None
        except JournalError:
            journal.close()
            raise
        return journal

    @classmethod
    def resume(
        cls, path: Path, plan: Fingerprint, items: int, *, keys_from: int
    ) -> tuple[Journal, Earlier]:
        """The journal at ``path``, held, read, and open to append to.

        The call keys of the items from index ``keys_from`` on that succeeded are kept
        (in :attr:`Earlier.ok_keys`): a live group's call does not list the same robots
        in every run; of the items before, a digest. A last line cut short by a kill
        (no newline at its end) is dropped, and cut off the file; any other bad line is
        a :class:`JournalError`.
        """
        _not_the_plan(path, plan)
        journal = cls(path, _open_held(path))
        earlier = Earlier.nothing(items)
        earlier.digests = bytearray(keys_from * DIGEST)
        earlier.path = path
        try:
            # Read through a buffer of its own: the held handle is unbuffered (so that
            # each line is written whole), and reading it would take a call a byte.
            with path.open("rb") as reading:
                kept = _read(path, reading, plan, items, keys_from, earlier)
            file = journal._file
            if kept < os.fstat(file.fileno()).st_size:
                file.truncate(kept)
        except OSError as err:
            journal.close()
            raise JournalError(f"{path}: cannot read the journal: {reason_of(err)}") from None
        except JournalError:
            journal.close()
            raise
        return journal, earlier

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
        """Let the journal go (and its lock); nothing is buffered, so nothing can fail."""
        self._file.close()

    def _write(self, record: dict[str, Any]) -> None:
        line = _line(record)
        written = self._file.write(line)  # unbuffered: one system call, or an OSError
        if written != len(line):  # a short write: the disk filled up mid-line
            raise OSError(28, "No space left on device (a line cut short)")


def reason_of(err: OSError) -> str:
    """What the system says of ``err`` (its message without the errno and path)."""
    return err.strerror or str(err)


def _open_held(path: Path) -> BinaryIO:
    """``path`` opened to read and append, unbuffered, and locked for this run alone."""
    try:
        file: BinaryIO = open(path, "a+b", buffering=0)  # noqa: SIM115 - kept for the run
    except OSError as err:
        raise JournalError(f"{path}: cannot open the journal: {reason_of(err)}") from None
    try:
        _lock(file)
    except OSError:
        file.close()
        raise JournalError(
            f"{path} is in use by another provision run: one run at a time writes a journal"
            " (wait for that run to end, or stop it, then --resume)"
        ) from None
    return file


def _lock_posix(file: BinaryIO) -> None:
    import fcntl

    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _lock_windows(file: BinaryIO) -> None:
    import msvcrt

    file.seek(0)
    msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]


_lock: Callable[[BinaryIO], None] = _lock_windows if sys.platform == "win32" else _lock_posix


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
    if header.get("version") == VERSION and _sound(first) is None:
        raise JournalError(f"{path}, line 1: the header's sum is wrong: it was edited")
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
        record = _sound(line)
        if record is None:
            raise JournalError(
                f"{path}, line {number}: not a journal line as written (edited, or not"
                f" a journal's): {_shown(line)}"
            )
        if not _apply(record, items, keys_from, earlier):
            raise JournalError(f"{path}, line {number}: not a journal record: {_shown(line)}")
        kept += len(line)
    return kept


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError; too many digits; too deep
        return None


def _shown(line: bytes) -> str:
    """A line, for a message: at most its first 200 bytes."""
    return repr(line) if len(line) <= 200 else f"{line[:200]!r}... ({len(line)} bytes)"


def _apply(record: Any, items: int, keys_from: int, earlier: Earlier) -> bool:
    """Apply one item line's record to ``earlier``; false if it is not one."""
    if not isinstance(record, dict):
        return False
    record.pop("sum", None)
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
    if ok and record.keys() != {"i", "ok", "call"}:
        return False  # a success with an error's fields: no run writes one
    earlier.unfinished.set(index, False)
    if ok:
        if index >= keys_from:
            earlier.ok_keys.setdefault(index, []).append(key)
        else:
            digest = call_digest(key)
            if earlier.done[index] and earlier._digest(index) != digest:
                return False  # two different calls succeeded as one item
            earlier.digests[index * DIGEST : (index + 1) * DIGEST] = digest
        earlier.done.set(index)
    return True


def _is_index(value: object, items: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < items

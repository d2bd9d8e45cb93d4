"""Reading a provisioning plan, a JSON or CSV file, and checking it whole before any call."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._exceptions import ValidationError
from .._models import CreateRobotRequest

__all__ = ["PlanError", "RobotPlan", "load_plan"]

PROFILE_FIELDS = ("nick", "face_url", "self_signature")
LIST_FIELDS = ("rooms", "live_groups")
FIELDS = ("user_id", *PROFILE_FIELDS, *LIST_FIELDS)


class PlanError(Exception):
    """The plan file is malformed; the message names the file and the place."""


@attrs.frozen
class RobotPlan:
    """One robot of a plan: its profile (already checked by the SDK) and where it goes."""

    request: CreateRobotRequest
    rooms: tuple[str, ...] = ()
    live_groups: tuple[str, ...] = ()

    @property
    def user_id(self) -> str:
        return self.request.user_id


def _id_list(value: Iterable[object], where: str) -> tuple[str, ...]:
    """Room or group ids: non-blank strings, duplicates dropped (adding twice is a no-op)."""
    ids: dict[str, None] = {}
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PlanError(f"{where}[{index}]: must be a non-empty string, got {item!r}")
        ids[item] = None
    return tuple(ids)


def _robot(fields: dict[str, Any], where: str) -> RobotPlan:
    """Build one robot from already-typed fields, with the SDK's rules for the profile."""
    if fields.get("user_id") is None:
        raise PlanError(f"{where}: user_id is required")
    profile = {name: fields.get(name) for name in PROFILE_FIELDS}
    try:
        request = CreateRobotRequest(fields["user_id"], **profile)
    except ValidationError as err:
        raise PlanError(f"{where}: {err}") from None
    return RobotPlan(
        request,
        rooms=_id_list(fields.get("rooms") or (), f"{where}.rooms"),
        live_groups=_id_list(fields.get("live_groups") or (), f"{where}.live_groups"),
    )


def _json_robot(entry: object, where: str) -> RobotPlan:
    if not isinstance(entry, dict):
        raise PlanError(f"{where}: must be an object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise PlanError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
        )
    for name in LIST_FIELDS:
        value = entry.get(name)
        # A bare string would otherwise be walked character by character.
        if value is not None and not isinstance(value, list):
            raise PlanError(f"{where}.{name}: must be a list, got {type(value).__name__}")
    return _robot(entry, where)


def _parse_json(text: str) -> list[RobotPlan]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlanError(f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise PlanError(f'must be a JSON object {{"robots": [...]}}, got {type(data).__name__}')
    if "robots" not in data:
        raise PlanError('missing key "robots"')
    unknown = sorted(set(data) - {"robots"})
    if unknown:
        raise PlanError(f'unknown key(s) {", ".join(map(repr, unknown))}; only "robots" is known')
    entries = data["robots"]
    if not isinstance(entries, list):
        raise PlanError(f"robots: must be a list, got {type(entries).__name__}")
    return [_json_robot(entry, f"robots[{i}]") for i, entry in enumerate(entries)]


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, cells) per non-blank data row, after checking the header."""
    # strict: an unterminated quote is an error, not a robot named '@RBT#x,'.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = [name.strip() for name in next(reader, [])]
    if not header:
        raise PlanError("empty CSV: expected a header row")
    unknown = [name for name in header if name not in FIELDS]
    if unknown:
        raise PlanError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(FIELDS)}"
        )
    if "user_id" not in header:
        raise PlanError("missing column 'user_id'")
    if len(set(header)) != len(header):
        raise PlanError("a column appears twice in the header")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise PlanError(f"line {reader.line_num}: not valid CSV ({err})") from None
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            raise PlanError(
                f"line {reader.line_num}: {len(cells)} cells, but the header has {len(header)}"
            )
        # Short rows leave the trailing optional columns empty, as spreadsheets write them.
        yield reader.line_num, dict(zip(header, cells, strict=False))


def _parse_csv(text: str) -> list[RobotPlan]:
    plans = []
    for line, cells in _csv_rows(text):
        fields: dict[str, Any] = {
            name: value.strip() or None for name, value in cells.items() if name not in LIST_FIELDS
        }
        for name in LIST_FIELDS:
            # Only ";" separates: an id may contain spaces.
            cell = cells.get(name, "")
            fields[name] = [item.strip() for item in cell.split(";") if item.strip()]
        plans.append(_robot(fields, f"line {line}"))
    return plans


def _looks_like_json(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix == ".json"
    return text.lstrip().startswith(("{", "["))


def _check_unique(plans: Sequence[RobotPlan]) -> None:
    seen: set[str] = set()
    for plan in plans:
        if plan.user_id in seen:
            raise PlanError(f"robot {plan.user_id} is listed twice")
        seen.add(plan.user_id)


def load_plan(path: Path) -> list[RobotPlan]:
    """Read and check a plan file; :class:`PlanError` says what is wrong and where."""
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
        plans = _parse_json(text) if _looks_like_json(path, text) else _parse_csv(text)
        if not plans:
            raise PlanError("the plan lists no robots")
        _check_unique(plans)
    except PlanError as err:
        raise PlanError(f"{path}: {err}") from None
    except csv.Error as err:
        raise PlanError(f"{path}: not valid CSV: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"{path}: cannot read the plan: {err}") from None
    return plans

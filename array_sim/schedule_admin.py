"""Snapshot schedules of the group: their rows in the catalog, created, changed, enabled and deleted.

Rules of this module:

1. When a schedule runs is decided only by ``schedule_times`` (pure); this
   module keeps schedules in the catalog (``schedules``: one row each, with
   ``next_run``, its first run not yet accounted for) and writes their rows.
   Elsewhere only the runner moves ``next_run`` (``schedule_runner``, which
   also takes their snapshots and moves the simulated clock), and a deleted
   volume or collection takes its schedules with it.
2. A change (``change_schedule``) is checked exactly as a new schedule is
   (``schedule_times``: the options its type takes, the ranges, the end after
   the start), with the settings not given kept as they are; a schedule that
   would never run after the change is refused. Nothing is half changed.
3. A change of its times makes the schedule go on from its first run after
   now (as ``enable`` does); runs that fall between are not taken. A change
   of max-keep alone keeps its next run, and the snapshots it already made
   count against the new max-keep from its next run on (the oldest beyond it
   are deleted then, as at any run). Its type, name and owner do not change
   (delete it and create another).
4. Deleting a schedule keeps its snapshots, as ordinary snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from .errors import AlreadyExists, InvalidRequest, NotFound
from .naming import check_text
from .schedule_times import KINDS, ScheduleKind, ScheduleTimes, next_run, schedule_times

if TYPE_CHECKING:
    from .catalog import Catalog
    from .collection_admin import SnapshotCollection, VolumeCollection
    from .records import Snapshot, Volume

__all__ = ["ScheduleAdmin", "Schedule", "DEFAULT_MAX_KEEP", "MAX_KEEP_MOST", "SCHEDULES_MOST"]

#: ``max-keep`` when none is given, and its largest value: the array's 512 snapshots per volume
#: (Dell BP1027 3.4, supported configuration limits of firmware 9.0.x); the default of 10 is inferred.
DEFAULT_MAX_KEEP = 10
MAX_KEEP_MOST = 512
#: "Snapshot schedules per volume or collection: 64" (BP1027 3.4).
SCHEDULES_MOST = 64
#: The columns of ``schedules`` in ``Schedule``'s order (``schedule_row`` reads a row of them).
SCHEDULE_COLUMNS = (
    "id, volume_id, collection_id, name, kind, start, end_date, end_time, repeat_minutes, every_days, max_keep,"
    " enabled, next_run, created"
)


@dataclass
class Schedule:
    """One row of ``schedules``: a volume's (``volume_id``) or a collection's (``collection_id``)."""

    id: int
    volume_id: int | None
    collection_id: int | None
    name: str
    kind: str
    #: The first run, ISO ``YYYY-MM-DDTHH:MM:SS``.
    start: str
    #: ISO date, or "" for none.
    end_date: str
    #: ``HH:MM``, or "" for none.
    end_time: str
    #: 0: no repeat interval.
    repeat_minutes: int
    every_days: int
    max_keep: int
    enabled: bool
    #: The first run not yet taken or skipped (ISO), "" when the schedule has no run left.
    next_run: str
    created: str

    @property
    def times(self) -> ScheduleTimes:
        return ScheduleTimes(
            ScheduleKind(self.kind),
            datetime.fromisoformat(self.start),
            date.fromisoformat(self.end_date) if self.end_date else None,
            time.fromisoformat(self.end_time) if self.end_time else None,
            timedelta(minutes=self.repeat_minutes) if self.repeat_minutes else None,
            self.every_days,
        )


def iso_seconds(when: datetime) -> str:
    """The form of every time in a schedule's row: ISO, to the second."""
    return when.isoformat(timespec="seconds")


def _check_max_keep(max_keep: int) -> None:
    if not 1 <= max_keep <= MAX_KEEP_MOST:
        raise InvalidRequest(f"max-keep must be from 1 to {MAX_KEEP_MOST}.")


def _time_columns(times: ScheduleTimes) -> tuple[str, str, str, int, int]:
    """``start, end_date, end_time, repeat_minutes, every_days`` as a row holds them."""
    return (
        iso_seconds(times.start),
        times.end_date.isoformat() if times.end_date else "",
        f"{times.end_time:%H:%M}" if times.end_time else "",
        times.repeat // timedelta(minutes=1) if times.repeat else 0,
        times.every_days,
    )


def schedule_row(values: tuple[object, ...]) -> Schedule:
    """A ``Schedule`` from a row of ``SCHEDULE_COLUMNS``."""
    schedule = Schedule(*values)  # type: ignore[arg-type]
    schedule.enabled = bool(schedule.enabled)
    return schedule


class ScheduleAdmin:
    """The schedules' rows; mixed into ``Group``, whose state they use."""

    if TYPE_CHECKING:
        catalog: Catalog
        snapshots: dict[int, Snapshot]

        def clock(self) -> datetime: ...
        def volume(self, name: str) -> Volume: ...
        def collection(self, name: str) -> VolumeCollection: ...
        def _snapcol_with_id(self, snapcol_id: int) -> SnapshotCollection: ...

    def create_schedule(
        self,
        volume: str,
        name: str,
        kind: str,
        start_time: time,
        start_date: date | None = None,
        end_date: date | None = None,
        end_time: time | None = None,
        repeat: timedelta | None = None,
        every_days: int | None = None,
        max_keep: int = DEFAULT_MAX_KEEP,
        enabled: bool = True,
    ) -> Schedule:
        """A snapshot schedule of a volume (``volume select V schedule create``).

        Without ``start_date`` the schedule starts today; a ``once`` schedule whose time
        of day has passed then runs tomorrow.

        Raises:
            InvalidRequest: options its type does not take, values out of range, or a
                schedule that would never run.
            AlreadyExists: the volume has a schedule of that name.
        """
        vol = self.volume(volume)
        return self._create_schedule(("volume_id", vol.id, f"volume {vol.name}"), name, kind, start_time, start_date,
                                     end_date, end_time, repeat, every_days, max_keep, enabled)  # fmt: skip

    def _create_schedule(
        self, owner: tuple[str, int, str], name: str, kind: str, start_time: time, start_date: date | None,
        end_date: date | None, end_time: time | None, repeat: timedelta | None, every_days: int | None,
        max_keep: int, enabled: bool,
    ) -> Schedule:  # fmt: skip
        column, owner_id, label = owner
        check_text("schedule_name", name)
        existing = self._schedules_of(column, owner_id)
        if any(s.name == name for s in existing):
            raise AlreadyExists(f"Schedule {name} already exists for {label}.")
        if len(existing) >= SCHEDULES_MOST:
            raise InvalidRequest(f"The {label} already has {SCHEDULES_MOST} schedules, the most it may have.")
        _check_max_keep(max_keep)
        try:
            schedule_kind = ScheduleKind(kind)
        except ValueError:
            raise InvalidRequest(f"Bad schedule type '{kind}'; expected once, hourly or daily.") from None
        now = self.clock()
        start = datetime.combine(start_date or now.date(), start_time)
        if schedule_kind is ScheduleKind.ONCE and start_date is None and start <= now:
            start += timedelta(days=1)
        times = schedule_times(schedule_kind, start, end_date, end_time, repeat, every_days)
        first = next_run(times, now)
        if first is None:
            raise InvalidRequest(f"Schedule {name} would never run: its last run time has passed.")
        schedule = Schedule(0, None, None, name, kind, *_time_columns(times), max_keep, enabled,
                            iso_seconds(first) if enabled else "", iso_seconds(now))  # fmt: skip
        setattr(schedule, column, owner_id)
        with self.catalog.transaction() as db:
            cursor = db.execute(
                f"INSERT INTO schedules ({SCHEDULE_COLUMNS.removeprefix('id, ')}) VALUES ({', '.join('?' * 13)})",
                (schedule.volume_id, schedule.collection_id, schedule.name, schedule.kind, schedule.start,
                 schedule.end_date, schedule.end_time, schedule.repeat_minutes, schedule.every_days,
                 schedule.max_keep, int(schedule.enabled), schedule.next_run, schedule.created),
            )  # fmt: skip
            schedule.id = int(cursor.lastrowid or 0)
        return schedule

    def create_collection_schedule(
        self,
        collection: str,
        name: str,
        kind: str,
        start_time: time,
        start_date: date | None = None,
        end_date: date | None = None,
        end_time: time | None = None,
        repeat: timedelta | None = None,
        every_days: int | None = None,
        max_keep: int = DEFAULT_MAX_KEEP,
        enabled: bool = True,
    ) -> Schedule:
        """A schedule of a volume collection (``collection select C schedule create``): each run takes a
        snapshot collection (``create_snapshot_collection``); max-keep counts snapshot collections.
        Otherwise as ``create_schedule``."""
        found = self.collection(collection)
        return self._create_schedule(("collection_id", found.id, f"collection {found.name}"), name, kind, start_time,
                                     start_date, end_date, end_time, repeat, every_days, max_keep, enabled)  # fmt: skip

    def collection_schedules(self, collection: str) -> list[Schedule]:
        """The collection's schedules, by name."""
        return self._schedules_of("collection_id", self.collection(collection).id)

    def collection_schedule(self, collection: str, name: str) -> Schedule:
        return self._find_schedule(self.collection_schedules(collection), name, f"collection {collection}")

    def schedules(self, volume: str) -> list[Schedule]:
        """The volume's schedules, by name."""
        return self._schedules_of("volume_id", self.volume(volume).id)

    def schedule(self, volume: str, name: str) -> Schedule:
        return self._find_schedule(self.schedules(volume), name, f"volume {volume}")

    def _schedules_of(self, column: str, owner_id: int) -> list[Schedule]:
        rows = self.catalog.db.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE {column} = ? ORDER BY name", (owner_id,)
        ).fetchall()
        return [schedule_row(row) for row in rows]

    @staticmethod
    def _find_schedule(schedules: list[Schedule], name: str, label: str) -> Schedule:
        for schedule in schedules:
            if schedule.name == name:
                return schedule
        raise NotFound(f"Schedule {name} does not exist for {label}.")

    def set_schedule_enabled(self, schedule: Schedule, enabled: bool) -> None:
        """Enable (runs missed while disabled are not taken: it goes on from now) or disable."""
        following = next_run(schedule.times, self.clock()) if enabled else None
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE schedules SET enabled = ?, next_run = ? WHERE id = ?",
                (int(enabled), iso_seconds(following) if following else "", schedule.id),
            )

    def change_schedule(
        self,
        schedule: Schedule,
        start_time: time | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        end_time: time | None = None,
        repeat: timedelta | None = None,
        every_days: int | None = None,
        max_keep: int | None = None,
    ) -> None:
        """Change the settings given (None: kept as they are) of a schedule after its creation
        (``schedule select S <setting> <value>``), rules 2 and 3.

        Raises:
            InvalidRequest: a setting its type does not take, a value out of range, or a schedule
                that would never run after the change; nothing is changed.
        """
        if max_keep is not None:
            _check_max_keep(max_keep)
        keep = max_keep if max_keep is not None else schedule.max_keep
        if all(value is None for value in (start_time, start_date, end_date, end_time, repeat, every_days)):
            with self.catalog.transaction() as db:
                db.execute("UPDATE schedules SET max_keep = ? WHERE id = ?", (keep, schedule.id))
            return
        old, rule = schedule.times, KINDS[schedule.times.kind]
        start = datetime.combine(start_date or old.start.date(), start_time or old.start.time())
        times = schedule_times(
            old.kind, start,
            end_date if end_date is not None else old.end_date if rule.end_date else None,
            end_time if end_time is not None else old.end_time if rule.end_time else None,
            repeat if repeat is not None else old.repeat if rule.repeat else None,
            every_days if every_days is not None else old.every_days if rule.frequency else None,
        )  # fmt: skip
        following = next_run(times, self.clock())
        if following is None:
            raise InvalidRequest(f"Schedule {schedule.name} would never run: its last run time has passed.")
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE schedules SET start = ?, end_date = ?, end_time = ?, repeat_minutes = ?, every_days = ?,"
                " max_keep = ?, next_run = ? WHERE id = ?",
                (*_time_columns(times), keep, iso_seconds(following) if schedule.enabled else "", schedule.id),
            )

    def delete_schedule(self, schedule: Schedule) -> None:
        """Delete the schedule; the snapshots it made stay, as ordinary snapshots (rule 4)."""
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM schedules WHERE id = ?", (schedule.id,))

    def schedule_snapshots(self, schedule: Schedule) -> list[Snapshot]:
        """The snapshots the schedule made that still exist, oldest first."""
        rows = self.catalog.db.execute(
            "SELECT snapshot_id FROM schedule_snapshots WHERE schedule_id = ? ORDER BY snapshot_id", (schedule.id,)
        ).fetchall()
        return [self.snapshots[snapshot_id] for (snapshot_id,) in rows if snapshot_id in self.snapshots]

    def schedule_snapshot_collections(self, schedule: Schedule) -> list[SnapshotCollection]:
        """The snapshot collections a collection's schedule made that still have a snapshot, oldest first."""
        rows = self.catalog.db.execute(
            "SELECT DISTINCT l.snapcol_id FROM schedule_snapshots l JOIN snapcols c ON c.id = l.snapcol_id"
            " WHERE l.schedule_id = ? ORDER BY l.snapcol_id",
            (schedule.id,),
        ).fetchall()
        return [self._snapcol_with_id(snapcol_id) for (snapcol_id,) in rows]

    def made_by_schedule(self, snapshot: Snapshot) -> str:
        """The name of the schedule that made the snapshot, "" if none did (or it is gone)."""
        row = self.catalog.db.execute(
            "SELECT s.name FROM schedule_snapshots l JOIN schedules s ON s.id = l.schedule_id WHERE l.snapshot_id = ?",
            (snapshot.id,),
        ).fetchone()
        return str(row[0]) if row else ""

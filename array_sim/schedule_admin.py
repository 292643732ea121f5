"""Snapshot schedules of the group, the runner that takes their snapshots, and the simulated clock.

Rules of this module:

1. When a schedule runs is decided only by ``schedule_times`` (pure); this
   module keeps schedules in the catalog (``schedules``: one row each, with
   ``next_run``, its first run not yet accounted for) and acts on them.
2. ``run_schedules()`` is the runner: given the group's time now, it takes
   every due snapshot. It runs on the engine owner, from ``background_step``
   (``serve`` calls that about once a second), never on a thread of its own.
3. Catch-up: a schedule whose runs were missed (due more than ``ON_TIME``
   ago: the group was not running, or its clock jumped) takes one snapshot
   for all of them, at the time it runs, and says so in a warning event;
   then it goes on from its next run after now. Missed runs are not replayed one by one: a group that was off
   for a month must not wake up to 720 snapshots of the same data (the
   array's own behaviour is not public; this is inferred).
4. Moving the simulated clock forward (``advance_clock``) is time the group
   lives through: it stops at every run in between, in order, and the runner
   takes each snapshot at its scheduled time (timestamp, default name and
   events carry it), applying ``max-keep`` as it goes.
5. A snapshot a schedule takes is recorded as made by it
   (``schedule_snapshots``); ``max-keep`` counts only those. When a new one
   passes ``max-keep``, the oldest (first made) of them are deleted; a
   schedule's snapshot deleted by hand or by the snapshot-reserve policy
   simply leaves the count. Deleting a schedule keeps its snapshots.
6. A run that cannot take its snapshot (no snapshot reserve, a member
   off-line) is an event; the schedule goes on with its next run.
7. The simulated time is kept in the catalog (``group_params.simulated_clock``)
   each time it moves, so ``serve --clock simulated`` after a restart resumes
   where it stood; the simulated clock never moves by itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from .clock import SimulatedClock, format_clock_time
from .errors import AlreadyExists, EngineError, InvalidRequest, NotFound
from .naming import check_text
from .schedule_times import ScheduleKind, ScheduleTimes, next_run, schedule_times

if TYPE_CHECKING:
    from .catalog import Catalog
    from .collection_admin import SnapshotCollection, VolumeCollection
    from .records import Snapshot, Volume

__all__ = ["ScheduleAdmin", "Schedule", "DEFAULT_MAX_KEEP", "MAX_KEEP_MOST", "SCHEDULES_MOST", "MAX_STEPPED_RUNS"]

log = logging.getLogger("array_sim.schedules")

#: ``max-keep`` when none is given, and its largest value: the array's 512 snapshots per volume
#: (Dell BP1027 3.4, supported configuration limits of firmware 9.0.x); the default of 10 is inferred.
DEFAULT_MAX_KEEP = 10
MAX_KEEP_MOST = 512
#: "Snapshot schedules per volume or collection: 64" (BP1027 3.4).
SCHEDULES_MOST = 64
#: The most scheduled runs one move of the simulated clock may step through (more: move it in smaller steps).
MAX_STEPPED_RUNS = 2000
#: A run taken within this of its time is on time; later, it was missed (rule 3).
ON_TIME = timedelta(minutes=1)
#: Missed runs an event counts, at most.
MISSED_COUNTED = 100_000
_PARAM = "simulated_clock"
_COLUMNS = (
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


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _row(values: tuple[object, ...]) -> Schedule:
    schedule = Schedule(*values)  # type: ignore[arg-type]
    schedule.enabled = bool(schedule.enabled)
    return schedule


class ScheduleAdmin:
    """Schedules and the simulated clock; mixed into ``Group``, whose state they use."""

    if TYPE_CHECKING:
        catalog: Catalog
        volumes: dict[int, Volume]
        snapshots: dict[int, Snapshot]

        def clock(self) -> datetime: ...
        def volume(self, name: str) -> Volume: ...
        def create_snapshot(self, volume: str, name: str | None = None, description: str = "") -> Snapshot: ...
        def _delete_snapshot(self, snapshot: Snapshot) -> None: ...
        def log_event(self, level: str, message: str, member: str = "") -> None: ...
        def collection(self, name: str) -> VolumeCollection: ...
        def collection_with_id(self, collection_id: int) -> VolumeCollection: ...
        def create_snapshot_collection(
            self, collection: str, name: str | None = None, description: str = ""
        ) -> SnapshotCollection: ...
        def delete_snapshot_collection(self, collection: str, name: str) -> None: ...
        def _snapcol_with_id(self, snapcol_id: int) -> SnapshotCollection: ...

    #: False until the runner has looked once since the group opened (then stale runs are resynced).
    _schedules_resynced = False

    # ------------------------------------------------------------ schedules

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
        if not 1 <= max_keep <= MAX_KEEP_MOST:
            raise InvalidRequest(f"max-keep must be from 1 to {MAX_KEEP_MOST}.")
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
        schedule = Schedule(
            0, None, None, name, kind, _iso(times.start),
            times.end_date.isoformat() if times.end_date else "",
            f"{times.end_time:%H:%M}" if times.end_time else "",
            times.repeat // timedelta(minutes=1) if times.repeat else 0,
            times.every_days, max_keep, enabled, _iso(first) if enabled else "", _iso(now),
        )  # fmt: skip
        setattr(schedule, column, owner_id)
        with self.catalog.transaction() as db:
            cursor = db.execute(
                f"INSERT INTO schedules ({_COLUMNS.removeprefix('id, ')}) VALUES ({', '.join('?' * 13)})",
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
            f"SELECT {_COLUMNS} FROM schedules WHERE {column} = ? ORDER BY name", (owner_id,)
        ).fetchall()
        return [_row(row) for row in rows]

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
                (int(enabled), _iso(following) if following else "", schedule.id),
            )

    def delete_schedule(self, schedule: Schedule) -> None:
        """Delete the schedule; the snapshots it made stay, as ordinary snapshots (rule 5)."""
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

    # --------------------------------------------------------------- runner

    def run_schedules(self) -> int:
        """Take every snapshot due by the group's time now (rule 2); returns how many schedules ran."""
        now = self.clock()
        if not self._schedules_resynced:
            self._resync_schedules(now)
        due = self.catalog.db.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE enabled = 1 AND next_run != '' AND next_run <= ?"
            " ORDER BY next_run, id",
            (_iso(now),),
        ).fetchall()
        for values in due:
            self._run(_row(values), now)
        return len(due)

    def _resync_schedules(self, now: datetime) -> None:
        """Once after opening: a clock set back since the catalog was written (a simulated group served
        on real time again, or the other way) leaves runs in its future; they come back to now's next run."""
        self._schedules_resynced = True
        rows = self.catalog.db.execute(f"SELECT {_COLUMNS} FROM schedules WHERE enabled = 1 AND next_run != ''")
        for values in rows.fetchall():
            schedule = _row(values)
            expected = next_run(schedule.times, now)
            if expected is not None and _iso(expected) < schedule.next_run:
                self._set_next_run(schedule, expected)

    def _run(self, schedule: Schedule, now: datetime) -> None:
        """One due schedule: one snapshot (rule 3), max-keep (rule 5), its next run."""
        times = schedule.times
        first_due = datetime.fromisoformat(schedule.next_run)
        missed = self._missed(times, first_due, now)
        following = next_run(times, now)
        # The snapshot and the next run commit together: a kill -9 between them cannot take a run twice.
        try:
            with self.catalog.transaction():
                self._take(schedule, missed)
                self._set_next_run(schedule, following)
            return
        except EngineError as error:
            self.log_event("WARNING", f"Schedule {schedule.name} of {self._label(schedule)} took no snapshot: {error}")
        except Exception:  # a bug must not stop the background loop (RAID, data moves) for good
            log.exception("schedule %s failed", schedule.name)
            self.log_event("ERROR", f"Schedule {schedule.name} of {self._label(schedule)} failed; see the log.")
        self._set_next_run(schedule, following)

    def _set_next_run(self, schedule: Schedule, following: datetime | None) -> None:
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE schedules SET next_run = ? WHERE id = ?", (_iso(following) if following else "", schedule.id)
            )

    @staticmethod
    def _missed(times: ScheduleTimes, first_due: datetime, now: datetime) -> str:
        """Empty when the due run is on time, else which runs were missed (rule 3), for the event."""
        if now - first_due <= ON_TIME:
            return ""
        count, last, when = 0, first_due, first_due
        while when is not None and when <= now and count < MISSED_COUNTED:
            count, last = count + 1, when
            when = next_run(times, when)
        if count == 1:
            return f"its run at {format_clock_time(first_due)}"
        more = "more than " if count == MISSED_COUNTED else ""
        return f"{more}{count} runs, from {format_clock_time(first_due)} to {format_clock_time(last)}"

    def _label(self, schedule: Schedule) -> str:
        if schedule.volume_id is not None:
            volume = self.volumes.get(schedule.volume_id)
            return f"volume {volume.name if volume else schedule.volume_id}"
        try:
            return f"collection {self.collection_with_id(schedule.collection_id or 0).name}"
        except NotFound:
            return f"collection {schedule.collection_id}"

    def _take(self, schedule: Schedule, missed: str) -> None:
        """The run's snapshot (a volume's) or snapshot collection (a collection's), then max-keep."""
        if schedule.volume_id is not None:
            owner = f"volume {self.volumes[schedule.volume_id].name}"
            snapshot = self.create_snapshot(self.volumes[schedule.volume_id].name)
            what, name, made = "snapshot", snapshot.name, [(snapshot.id, None)]
        else:
            collection = self.collection_with_id(schedule.collection_id or 0).name
            owner = f"collection {collection}"
            snapcol = self.create_snapshot_collection(collection)
            what, name = "snapshot collection", snapcol.name
            made = [(snapshot_id, snapcol.id) for snapshot_id in snapcol.snapshot_ids]
        self.catalog.db.executemany(
            "INSERT INTO schedule_snapshots (snapshot_id, schedule_id, snapcol_id) VALUES (?, ?, ?)",
            [(snapshot_id, schedule.id, snapcol_id) for snapshot_id, snapcol_id in made],
        )
        if missed:
            self.log_event(
                "WARNING",
                f"Schedule {schedule.name} of {owner} missed {missed} (the group was not running);"
                f" one {what}, {name}, was taken now instead.",
            )
        else:
            self.log_event("INFO", f"Schedule {schedule.name} of {owner} created {what} {name}.")
        self._apply_max_keep(schedule, owner)

    def _apply_max_keep(self, schedule: Schedule, owner: str) -> None:
        """Delete the oldest of the schedule's own snapshots (or snapshot collections) beyond max-keep (rule 5)."""
        keep = schedule.max_keep
        if schedule.volume_id is not None:
            for old in self.schedule_snapshots(schedule)[:-keep]:
                self._delete_snapshot(old)
                self.log_event("INFO", f"Snapshot {old.name} of {owner} deleted by schedule {schedule.name}"
                                       f" (max-keep {keep}).")  # fmt: skip
            return
        collection = self.collection_with_id(schedule.collection_id or 0).name
        for old_set in self.schedule_snapshot_collections(schedule)[:-keep]:
            self.delete_snapshot_collection(collection, old_set.name)
            self.log_event("INFO", f"Snapshot collection {old_set.name} of {owner} deleted by schedule"
                                   f" {schedule.name} (max-keep {keep}).")  # fmt: skip

    # -------------------------------------------------------------- the clock

    def start_simulated_clock(self, start: datetime | None = None) -> datetime:
        """``serve --clock simulated [--clock-start T]``: the clock at ``start``, else where the catalog kept it
        (rule 7), else where it stands; returns the time it shows."""
        clock = self._simulated_clock()
        kept = self.catalog.param(_PARAM)
        if start is not None:
            clock.set(start)
        elif kept:
            clock.set(datetime.fromisoformat(kept))
        self.catalog.set_param(_PARAM, _iso(clock()))
        return clock()

    @property
    def clock_is_simulated(self) -> bool:
        return isinstance(self.clock, SimulatedClock)

    def _simulated_clock(self) -> SimulatedClock:
        clock = self.clock
        if not isinstance(clock, SimulatedClock):
            raise InvalidRequest("The group runs on real time; start it with 'array-sim serve --clock simulated'.")
        return clock

    def advance_clock(self, by: timedelta) -> int:
        """Move the simulated clock forward by ``by`` (rule 4); returns how many scheduled runs it passed."""
        clock = self._simulated_clock()
        try:
            to = clock() + by
        except OverflowError:
            raise InvalidRequest("The clock cannot go that far.") from None
        return self.set_clock(to)

    def set_clock(self, to: datetime) -> int:
        """Set the simulated clock. Forward, every run in between is taken at its time (rule 4); back,
        schedules go on from their next run after the new time. Returns how many runs were taken.

        Raises:
            InvalidRequest: the clock is real time, or the move would step through more than
                ``MAX_STEPPED_RUNS`` runs (nothing is changed).
        """
        clock = self._simulated_clock()
        before = clock()
        if to < before:
            with self.catalog.transaction():
                clock.set(to)
                self._schedules_resynced = False
                self.run_schedules()
                self.catalog.set_param(_PARAM, _iso(to))
            return 0
        runs = self._runs_until(to)
        if runs > MAX_STEPPED_RUNS:
            raise InvalidRequest(
                f"Moving the clock to {format_clock_time(to)} passes more than {MAX_STEPPED_RUNS} scheduled runs;"
                " move it in smaller steps."
            )
        taken = 0
        try:
            with self.catalog.transaction() as db:
                while taken <= MAX_STEPPED_RUNS:
                    (due,) = db.execute(
                        "SELECT min(next_run) FROM schedules WHERE enabled = 1 AND next_run != '' AND next_run <= ?",
                        (_iso(to),),
                    ).fetchone()
                    if due is None:
                        break
                    clock.set(datetime.fromisoformat(due))
                    taken += self.run_schedules()
                clock.set(to)
                self.catalog.set_param(_PARAM, _iso(to))
        except BaseException:
            clock.set(before)
            raise
        return taken

    def _runs_until(self, to: datetime) -> int:
        """How many runs the enabled schedules have up to ``to`` (counting stops past ``MAX_STEPPED_RUNS``)."""
        count = 0
        rows = self.catalog.db.execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE enabled = 1 AND next_run != '' AND next_run <= ?", (_iso(to),)
        ).fetchall()
        for values in rows:
            schedule = _row(values)
            when: datetime | None = datetime.fromisoformat(schedule.next_run)
            while when is not None and when <= to and count <= MAX_STEPPED_RUNS:
                count += 1
                when = next_run(schedule.times, when)
        return count

"""The runner that takes the schedules' snapshots, and the simulated clock it follows.

Rules of this module:

1. ``run_schedules()`` is the runner: given the group's time now, it takes
   every due snapshot. It runs on the engine owner, from ``background_step``
   (``serve`` calls that about once a second), never on a thread of its own.
   It writes only a schedule's ``next_run`` (the rest of the row is
   ``schedule_admin``'s) and the ``schedule_snapshots`` it made.
2. Catch-up: a schedule whose runs were missed (due more than ``ON_TIME``
   ago: the group was not running, or its clock jumped) takes one snapshot
   for all of them, at the time it runs, and says so in a warning event;
   then it goes on from its next run after now. Missed runs are not replayed one by one: a group that was off
   for a month must not wake up to 720 snapshots of the same data (the
   array's own behaviour is not public; this is inferred).
3. Moving the simulated clock forward (``advance_clock``) is time the group
   lives through: it stops at every run in between, in order, and the runner
   takes each snapshot at its scheduled time (timestamp, default name and
   events carry it), applying ``max-keep`` as it goes.
4. A snapshot a schedule takes is recorded as made by it
   (``schedule_snapshots``); ``max-keep`` counts only those. When a new one
   passes ``max-keep``, the oldest (first made) of them are deleted; a
   schedule's snapshot deleted by hand or by the snapshot-reserve policy
   simply leaves the count.
5. A run that cannot take its snapshot (no snapshot reserve, a member
   off-line) is an event; the schedule goes on with its next run.
6. The simulated time is kept in the catalog (``group_params.simulated_clock``)
   each time it moves, so ``serve --clock simulated`` after a restart resumes
   where it stood; the simulated clock never moves by itself.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .clock import SimulatedClock, format_clock_time
from .errors import EngineError, InvalidRequest, NotFound
from .schedule_admin import SCHEDULE_COLUMNS, Schedule, iso_seconds, schedule_row
from .schedule_times import ScheduleTimes, next_run

if TYPE_CHECKING:
    from .catalog import Catalog
    from .collection_admin import SnapshotCollection, VolumeCollection
    from .records import Snapshot, Volume

__all__ = ["ScheduleRunner", "MAX_STEPPED_RUNS"]

log = logging.getLogger("array_sim.schedules")

#: The most scheduled runs one move of the simulated clock may step through (more: move it in smaller steps).
MAX_STEPPED_RUNS = 2000
#: A run taken within this of its time is on time; later, it was missed (rule 2).
ON_TIME = timedelta(minutes=1)
#: Missed runs an event counts, at most.
MISSED_COUNTED = 100_000
_PARAM = "simulated_clock"


class ScheduleRunner:
    """The runner and the simulated clock; mixed into ``Group`` (with ``ScheduleAdmin``), whose state they use."""

    if TYPE_CHECKING:
        catalog: Catalog
        volumes: dict[int, Volume]

        def clock(self) -> datetime: ...
        def create_snapshot(self, volume: str, name: str | None = None, description: str = "") -> Snapshot: ...
        def _delete_snapshot(self, snapshot: Snapshot) -> None: ...
        def log_event(self, level: str, message: str, member: str = "") -> None: ...
        def collection_with_id(self, collection_id: int) -> VolumeCollection: ...
        def create_snapshot_collection(
            self, collection: str, name: str | None = None, description: str = ""
        ) -> SnapshotCollection: ...
        def delete_snapshot_collection(self, collection: str, name: str) -> None: ...
        def schedule_snapshots(self, schedule: Schedule) -> list[Snapshot]: ...
        def schedule_snapshot_collections(self, schedule: Schedule) -> list[SnapshotCollection]: ...

    #: False until the runner has looked once since the group opened (then stale runs are resynced).
    _schedules_resynced = False

    def run_schedules(self) -> int:
        """Take every snapshot due by the group's time now (rule 1); returns how many schedules ran."""
        now = self.clock()
        if not self._schedules_resynced:
            self._resync_schedules(now)
        due = self.catalog.db.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE enabled = 1 AND next_run != '' AND next_run <= ?"
            " ORDER BY next_run, id",
            (iso_seconds(now),),
        ).fetchall()
        for values in due:
            self._run(schedule_row(values), now)
        return len(due)

    def _resync_schedules(self, now: datetime) -> None:
        """Once after opening: a clock set back since the catalog was written (a simulated group served
        on real time again, or the other way) leaves runs in its future; they come back to now's next run."""
        self._schedules_resynced = True
        rows = self.catalog.db.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE enabled = 1 AND next_run != ''"
        )
        for values in rows.fetchall():
            schedule = schedule_row(values)
            expected = next_run(schedule.times, now)
            if expected is not None and iso_seconds(expected) < schedule.next_run:
                self._set_next_run(schedule, expected)

    def _run(self, schedule: Schedule, now: datetime) -> None:
        """One due schedule: one snapshot (rule 2), max-keep (rule 4), its next run."""
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
                "UPDATE schedules SET next_run = ? WHERE id = ?",
                (iso_seconds(following) if following else "", schedule.id),
            )

    @staticmethod
    def _missed(times: ScheduleTimes, first_due: datetime, now: datetime) -> str:
        """Empty when the due run is on time, else which runs were missed (rule 2), for the event."""
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
        """Delete the oldest of the schedule's own snapshots (or snapshot collections) beyond max-keep (rule 4)."""
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
        (rule 6), else where it stands; returns the time it shows."""
        clock = self._simulated_clock()
        kept = self.catalog.param(_PARAM)
        if start is not None:
            clock.set(start)
        elif kept:
            clock.set(datetime.fromisoformat(kept))
        self.catalog.set_param(_PARAM, iso_seconds(clock()))
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
        """Move the simulated clock forward by ``by`` (rule 3); returns how many scheduled runs it passed."""
        clock = self._simulated_clock()
        try:
            to = clock() + by
        except OverflowError:
            raise InvalidRequest("The clock cannot go that far.") from None
        return self.set_clock(to)

    def set_clock(self, to: datetime) -> int:
        """Set the simulated clock. Forward, every run in between is taken at its time (rule 3); back,
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
                self.catalog.set_param(_PARAM, iso_seconds(to))
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
                        (iso_seconds(to),),
                    ).fetchone()
                    if due is None:
                        break
                    clock.set(datetime.fromisoformat(due))
                    taken += self.run_schedules()
                clock.set(to)
                self.catalog.set_param(_PARAM, iso_seconds(to))
        except BaseException:
            clock.set(before)
            raise
        return taken

    def _runs_until(self, to: datetime) -> int:
        """How many runs the enabled schedules have up to ``to`` (counting stops past ``MAX_STEPPED_RUNS``)."""
        count = 0
        rows = self.catalog.db.execute(
            f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE enabled = 1 AND next_run != '' AND next_run <= ?",
            (iso_seconds(to),),
        ).fetchall()
        for values in rows:
            schedule = schedule_row(values)
            when: datetime | None = datetime.fromisoformat(schedule.next_run)
            while when is not None and when <= to and count <= MAX_STEPPED_RUNS:
                count += 1
                when = next_run(schedule.times, when)
        return count

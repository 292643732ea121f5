"""Data moved between members online: vacate and delete a member, move a member or a volume to
another pool, merge pools, and cancel.

Rules of this module (research/next-capabilities.md 2; the MIB's member states on-line, off-line,
vacate, vacated and its operations movePool / vacate with CompletePct):

1. A move is a row of ``moves`` (kind ``delete``, ``member-pool`` or ``volume-pool``). What is left
   to move is derived from the catalog, never stored, so a move resumes after a restart or a
   ``kill -9`` exactly where the catalog says it is, and the pages go one at a time through the
   page mover (``page_mover``): every page is always complete in one place. Which pages a move
   still has to move, and what counts as leaving a pool meanwhile, is ``move_plans``.
2. Moving a member (``member select M delete``, ``member select M pool P``) starts by taking it out
   of its pool's figures and its volumes' spreads (state ``vacate``): it takes no new page, and
   every page on it goes to the best member of the spread of a volume that uses it (the pool's
   best if none can take it). Refused, changing nothing, when the rest of the pool lacks the space.
   Once nothing is left on it, a deleted member leaves the group (``vacated``, then gone, its files
   removed); a moved one joins the new pool and its spreads.
3. Moving a volume (``volume select V pool P``) puts it in the new pool at once (its reserve is
   taken there, new pages go there) and moves every page of the volume and its snapshots that is
   outside that pool; until they have left, those pages still count against the old pool's free
   space (``pages_leaving``: only the pages no other volume uses). Refused when the new pool lacks
   space for its reserve. A page the volume shares with a volume outside its own snapshots (a clone
   made from it, or it from another) stays for the other volume: the moving volume and its snapshots
   get a private copy of what they read through it, in the new pool (``page_mover.PageSplit``), as
   the array's clones are independent copies. A volume cannot be cloned while it moves (its clone
   would share pages in both pools).
4. ``pool merge P Q`` moves no data: P's members and volumes join Q, and P is deleted. Refused for
   the pool ``default``, while a move concerns P, and past a pool's member limit.
5. Moves run one at a time in ``moves_step`` slices beside the I/O; a move whose members are not
   all on-line waits. ``member select M cancel-operation`` ends a member's move where it is: the
   member is back on-line in its pool, and what already moved stays where it went.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from .errors import InvalidRequest, NoSpace
from .member_admin import FILE_LAYOUT
from .move_plans import Move, MovePlans
from .page_mover import PageMove, PageSplit
from .pool import DEFAULT_POOL, MAX_SPREAD, Member, pool_named
from .pool_admin import MAX_POOL_MEMBERS
from .records import Snapshot, Volume, update_row

if TYPE_CHECKING:
    from .catalog import Catalog
    from .member_admin import MemberAdmin
    from .pages import PageTables
    from .pool import Placement
    from .space import SpaceAccounting
    from .spreads import Spreads

__all__ = ["DataMoves", "Move"]

#: Progress events are logged as each of these percentages is passed.
_PROGRESS_EVENTS = (25, 50, 75)


class DataMoves(MovePlans):
    """The data-move half of ``Group`` (a mixin on the group's state)."""

    catalog: Catalog
    placement: Placement
    tables: PageTables
    member_admin: MemberAdmin
    spreads: Spreads
    space: SpaceAccounting
    volumes: dict[int, Volume]
    snapshots: dict[int, Snapshot]
    pools: dict[int, str]
    moves: dict[int, Move]

    if TYPE_CHECKING:

        def snapshots_of(self, volume: Volume) -> list[Snapshot]: ...
        def log_event(self, level: str, message: str, member: str = "") -> None: ...
        def pool_free(self, pool_id: int) -> int: ...
        def volume(self, name: str) -> Volume: ...
        def balance_step(self, budget: int) -> bool: ...
        def offline_members(self) -> set[int]: ...
        def maps_on(self, member_ids: set[int]) -> set[int]: ...

    # ---------------------------------------------------------------- loading

    def _load_moves(self) -> None:
        self.tables.on_freed = self._page_freed
        for move in self.moves.values():
            if move.page is not None:
                move.page.cancel()
        rows = self.catalog.db.execute(
            "SELECT id, kind, member_id, volume_id, pool_id, total_pages FROM moves ORDER BY id"
        ).fetchall()
        self.moves = {row[0]: Move(row) for row in rows}
        for member in self.placement.members.values():
            member.vacating = any(m.member_id == member.id for m in self.moves.values())

    def move_of_member(self, member_id: int) -> Move | None:
        return next((m for m in self.moves.values() if m.member_id == member_id), None)

    def move_of_volume(self, volume_id: int) -> Move | None:
        return next((m for m in self.moves.values() if m.volume_id == volume_id), None)

    # ---------------------------------------------------------------- starting

    def delete_member(self, name: str) -> None:
        """``member select M delete``: vacate it, then it leaves the group (rule 2)."""
        member_id = self.member_admin.member_id(name)
        (members,) = self.catalog.db.execute("SELECT COUNT(*) FROM members").fetchone()
        if members == 1:
            raise InvalidRequest(f"Member {name} is the only member of the group; it cannot be deleted.")
        if member_id not in self.placement.members:  # unconfigured: nothing on it
            self._remove_member(member_id, name)
            return
        self._start_member_move(member_id, "delete", self.placement.members[member_id].pool_id)

    def move_member(self, name: str, pool: str) -> None:
        """``member select M pool P``: its data moves to the rest of its pool, then it joins P (rule 2)."""
        member_id = self.member_admin.member_id(name)
        pool_id = pool_named(self.pools, pool)
        (old_pool,) = self.catalog.db.execute("SELECT pool_id FROM members WHERE id = ?", (member_id,)).fetchone()
        if pool_id == old_pool:
            raise InvalidRequest(f"Member {name} is already in pool {pool}.")
        (in_pool,) = self.catalog.db.execute("SELECT COUNT(*) FROM members WHERE pool_id = ?", (pool_id,)).fetchone()
        if in_pool >= MAX_POOL_MEMBERS:
            raise InvalidRequest(f"Pool {pool} already has {MAX_POOL_MEMBERS} members, the most a pool can have.")
        if member_id not in self.placement.members:
            with self.catalog.transaction() as db:
                db.execute("UPDATE members SET pool_id = ? WHERE id = ?", (pool_id, member_id))
            return
        self._start_member_move(member_id, "member-pool", pool_id)

    def _start_member_move(self, member_id: int, kind: str, pool_id: int) -> None:
        member = self.placement.members[member_id]
        if self.move_of_member(member_id) is not None:
            raise InvalidRequest(f"Member {member.name} is already being vacated; cancel that first.")
        if not member.online:
            raise InvalidRequest(f"Member {member.name} is offline; its data cannot be moved.")
        used = member.capacity_pages - member.free_pages
        pool = self.pools[member.pool_id]
        member.vacating = True  # out of the pool's figures, to see whether the rest holds its data
        others = sum(m.free_pages for m in self.placement.pool_members(member.pool_id) if m.counts)
        if self.pool_free(member.pool_id) < 0 or others < used:
            member.vacating = False
            raise NoSpace(f"Not enough free space in pool {pool} for the data of member {member.name}.")
        for watcher in list(self.tables.watchers.values()):
            if isinstance(watcher, PageMove) and watcher.dest[0] == member_id:
                watcher.cancel()  # a page on its way onto the member goes elsewhere
        used = member.capacity_pages - member.free_pages
        with self.catalog.transaction() as db:
            db.execute(
                "INSERT INTO moves (kind, member_id, volume_id, pool_id, total_pages, started)"
                " VALUES (?, ?, NULL, ?, ?, datetime('now'))",
                (kind, member_id, pool_id, used),
            )
            self.spreads.member_left(member_id)
            what = "deleted" if kind == "delete" else f"moved to pool {self.pools[pool_id]}"
            self.log_event(
                "INFO", f"Member {member.name} is being vacated: its data moves to the rest of pool {pool}, then it is {what}.",
                member.name,
            )
        self._load_moves()
        if not used:
            move = self.move_of_member(member_id)
            assert move is not None
            self._step(move, 0)

    def move_volume(self, name: str, pool: str) -> None:
        """``volume select V pool P`` (rule 3)."""
        volume = self.volume(name)
        pool_id = pool_named(self.pools, pool)
        if pool_id == volume.pool_id:
            raise InvalidRequest(f"Volume {name} is already in pool {pool}.")
        if self.move_of_volume(volume.id) is not None:
            raise InvalidRequest(f"Volume {name} is already moving to another pool.")
        old_pool = volume.pool_id
        volume.pool_id = pool_id
        short = self.pool_free(pool_id) < 0
        volume.pool_id = old_pool
        if short:
            raise NoSpace(f"Not enough free space in pool {pool} for volume {name}.")
        with self.catalog.transaction() as db:
            update_row(db, volume, pool_id=pool_id)
            self.spreads.set(volume.id, pool_id, self.placement.choose_spread(pool_id))
            db.execute(
                "INSERT INTO moves (kind, member_id, volume_id, pool_id, total_pages, started)"
                " VALUES ('volume-pool', NULL, ?, ?, ?, datetime('now'))",
                (volume.id, pool_id, len(self._volume_pages(volume))),
            )
            self.log_event("INFO", f"Volume {name} is moving from pool {self.pools[old_pool]} to pool {pool}.")
        self.space.forget(volume)
        self._load_moves()

    def merge_pools(self, source: str, destination: str) -> None:
        """``pool merge P Q`` (rule 4)."""
        src, dst = pool_named(self.pools, source), pool_named(self.pools, destination)
        if source == DEFAULT_POOL:
            raise InvalidRequest("The default pool cannot be merged into another pool.")
        if src == dst:
            raise InvalidRequest("A pool cannot be merged into itself.")
        if any(m.pool_id == src or (m.member_id is not None and self._member_pool(m.member_id) == src)
               for m in self.moves.values()):
            raise InvalidRequest(f"Data is moving in pool {source}; wait for it or cancel it first.")
        counts = dict(self.catalog.db.execute("SELECT pool_id, COUNT(*) FROM members GROUP BY pool_id").fetchall())
        arriving = sum(1 for m in self.moves.values() if m.kind == "member-pool" and m.pool_id == dst)
        if counts.get(src, 0) + counts.get(dst, 0) + arriving > MAX_POOL_MEMBERS:
            raise InvalidRequest(f"Pool {destination} would have more than {MAX_POOL_MEMBERS} members.")
        with self.catalog.transaction() as db:
            db.execute("UPDATE members SET pool_id = ? WHERE pool_id = ?", (dst, src))
            for volume in self.volumes.values():
                if volume.pool_id == src:
                    update_row(db, volume, pool_id=dst)
                    self.spreads.of(volume.id).pool_id = dst
            db.execute("DELETE FROM pools WHERE id = ?", (src,))
            for member in self.placement.members.values():
                if member.pool_id == src:
                    member.pool_id = dst
            self.log_event("INFO", f"Pool {source} was merged into pool {destination}.")
        del self.pools[src]

    def cancel_member_operation(self, name: str) -> None:
        """``member select M cancel-operation`` (rule 5)."""
        member_id = self.member_admin.member_id(name)
        move = self.move_of_member(member_id)
        if move is None:
            raise InvalidRequest(f"Member {name} has no operation in progress.")
        member = self.placement.members[member_id]
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM moves WHERE id = ?", (move.id,))
            member.vacating = False
            self.spreads.member_joined(member_id, member.pool_id)
            self.log_event("INFO", f"Member {name}: the vacate was cancelled at {move.percent}%.", name)
        self._load_moves()

    # -------------------------------------------------------------- the work

    def moves_step(self, budget: int) -> bool:
        """One slice of the first move that can make progress, else of the capacity balancer; True if
        one did (rule 5). False while every move waits (a member off-line, no room) and nothing needs
        balancing: the caller looks again later instead of spinning."""
        for move in list(self.moves.values()):
            if self._can_run(move) and self._step(move, budget):
                return True
        return self.balance_step(budget)

    def _can_run(self, move: Move) -> bool:
        """A member's move needs the member on-line; a volume's, the volume not held offline by a member."""
        if move.member_id is not None:
            return self.placement.members[move.member_id].online
        volume = self.volumes[move.volume_id]  # type: ignore[index]
        family = {volume.map_id, *(s.map_id for s in self.snapshots_of(volume))}
        offline = self.offline_members()
        return not offline or not family & self.maps_on(offline)

    def _step(self, move: Move, budget: int) -> bool:
        """Copy on; False if the move cannot go on now."""
        page = move.page
        if page is not None and not self.placement.members[page.dest[0]].online:
            page.cancel()  # its destination went off-line: another one is chosen
        if page is None or page.ended:
            move.page = page = self._next_page(move)
            if page is None:
                if move.plan:
                    return False
                self._finish(move)
                return True
        if page.step(budget) and not page.ended:
            page.switch()
            move.page = None
            before = move.percent
            move.left -= 1
            for mark in _PROGRESS_EVENTS:
                if before < mark <= move.percent:
                    self.log_event("INFO", f"{self._what(move)}: {mark}% complete.")
        return True

    def _next_page(self, move: Move) -> PageMove | None:
        while True:
            if not move.plan:
                move.plan = self._plan(move)
                move.left = len(move.plan)
                if not move.plan:
                    return None
            pid = next(reversed(move.plan))
            volume_id = move.plan[pid]
            page = self.tables.phys.get(pid)
            split = pid in move.splits
            if page is None or not (self._outside(move, pid) if split else self._still_to_move(move, page.address[0])):
                del move.plan[pid]  # gone, or moved meanwhile
                continue
            if pid in self.tables.watchers:
                return None  # another move is copying it (one copy at a time): wait for that one
            target = self._destination(move, volume_id if volume_id in self.volumes else None)
            if target is None:
                return None  # no room anywhere: the move waits, its plan kept (the check at its start makes this rare)
            del move.plan[pid]
            if split:
                return PageSplit(self.tables, self.placement, self.catalog, pid, target.id, self._family(move))
            return PageMove(self.tables, self.placement, self.catalog, pid, target.id)

    def _destination(self, move: Move, volume_id: int | None) -> Member | None:
        pool_id = self.volumes[volume_id].pool_id if volume_id is not None else self._member_pool(move.member_id)
        spread = self.spreads.of(volume_id) if volume_id is not None else None
        best = self.placement.best([self.placement.members[m] for m in spread.members]) if spread else None
        if best is None:
            best = self.placement.best(self.placement.pool_members(pool_id))
            if best is not None and spread is not None and len(spread.members) < MAX_SPREAD and best.id not in spread.members:
                with self.catalog.transaction():
                    spread.members.append(best.id)
                    spread.on_join(best.id)
        return best

    def _page_freed(self, pid: int) -> None:
        """A freed page leaves every plan: its id may soon name another volume's new page."""
        for move in self.moves.values():
            move.plan.pop(pid, None)
            move.splits.discard(pid)

    def _finish(self, move: Move) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM moves WHERE id = ?", (move.id,))
            if move.kind == "volume-pool":
                assert move.volume_id is not None
                volume = self.volumes[move.volume_id]
                self.log_event("INFO", f"Volume {volume.name} moved to pool {self.pools[move.pool_id]}.")
            else:
                assert move.member_id is not None
                member = self.placement.members[move.member_id]
                if move.kind == "delete":
                    self.log_event("INFO", f"Member {member.name} is vacated; it leaves the group.", member.name)
                    self._remove_member(member.id, member.name)  # in the same transaction (kill -9 safe)
                else:
                    db.execute("UPDATE members SET pool_id = ? WHERE id = ?", (move.pool_id, member.id))
                    member.pool_id, member.vacating = move.pool_id, False
                    self.spreads.member_joined(member.id, move.pool_id)
                    self.log_event("INFO", f"Member {member.name} moved to pool {self.pools[move.pool_id]}.", member.name)
        del self.moves[move.id]

    def _remove_member(self, member_id: int, name: str) -> None:
        """A vacated (or unconfigured) member leaves the group: its rows, then (once committed) its files."""
        store, layout = self.catalog.db.execute("SELECT store, layout FROM members WHERE id = ?", (member_id,)).fetchone()

        def remove_files() -> None:
            member = self.placement.members.pop(member_id, None)
            if member is not None:
                member.store.close()
                self.tables.chunk_maps.pop(member_id).close()
            path = self.member_admin.directory / store
            if layout == FILE_LAYOUT:
                path.unlink(missing_ok=True)
                path.with_suffix(".chunks").unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)

        with self.catalog.transaction() as db:
            db.execute("DELETE FROM volume_members WHERE member_id = ?", (member_id,))
            db.execute("DELETE FROM member_ports WHERE member_id = ?", (member_id,))
            db.execute("DELETE FROM members WHERE id = ?", (member_id,))
            self.log_event("INFO", f"Member {name} was removed from the group.")
            self.catalog.after_commit(remove_files)

    # -------------------------------------------------------------- queries

    def _what(self, move: Move) -> str:
        if move.volume_id is not None:
            return f"Moving volume {self.volumes[move.volume_id].name} to pool {self.pools[move.pool_id]}"
        return f"Vacating member {self.placement.members[move.member_id].name}"  # type: ignore[index]

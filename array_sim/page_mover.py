"""The page mover: one physical page copied to another member while it stays in use, then switched.

Rules of this module (research/next-capabilities.md 2, "a page mover"):

1. A move copies the page's chunks in order, at most a budget of bytes per step, into a slot taken
   on the destination member: for each run of chunks, the data of a present run and then its
   presence bits, or the absence of an absent run. Until the switch the catalog names the old slot,
   so every read and write goes there.
2. What changes under the copy is copied again: the page tables tell the move of every change of
   the page's data or chunk presence (``pages`` rule 5), and the chunks of that change below the
   copy's cursor are re-copied at once. So when the cursor reaches the end, the copy equals the
   page, whatever was written meanwhile.
3. The switch: the destination member's data and chunk map are made durable, ``phys_pages`` names
   the new (member, slot) in one transaction, the catalog is checkpointed, and only then is the old
   slot freed (freed earlier, it could be reused and overwritten while a power loss brings back a
   catalog that still names it). Page tables, snapshots, clones and overlays name the page by id,
   so none of them notices.
4. ``kill -9`` before the switch commits leaves the old slot in charge, and the destination slot
   free (nothing in the catalog names it; its chunk bits are forgotten when it is next taken);
   after it, the new slot is in charge and the old one is free. One complete copy is always in charge.
5. A page freed while it is copied ends its move (``gone``); a cancelled move gives its
   destination slot back, and so does a move whose source or destination goes off-line under
   it. None of them changes the page. A page has at most one move at a time (the movers skip a
   page that has a watcher).
6. A split (``PageSplit``) copies what a page reads, through its backing pages, into a slot of
   another member, as a move copies the page; at the end the entries of one family of page tables
   (a volume and its snapshots) that map the page name the copy, a new page with no backing, and
   every other table keeps the old page. The copy is written and flushed before the catalog names
   it, so ``kill -9`` before that commit leaves the family on the old page and the slot free.
"""

from __future__ import annotations

from .block import DeviceOffline
from .catalog import Catalog
from .pages import PageTables
from .pool import PageAddress, Placement
from .units import CHUNK_SIZE, CHUNKS_PER_PAGE

__all__ = ["PageMove", "PageSplit"]


class PageMove:
    """The move of one physical page to a slot of another member (a ``pages.PageWatcher``)."""

    def __init__(self, tables: PageTables, placement: Placement, catalog: Catalog, pid: int, member_id: int) -> None:
        self.tables, self.placement, self.catalog = tables, placement, catalog
        self.pid = pid
        self.source: PageAddress = tables.phys[pid].address
        self.dest: PageAddress = (member_id, placement.members[member_id].take_slot())
        tables.chunk_maps[member_id].forget(self.dest[1])
        #: Chunks below this are copied and kept equal to the page (rule 2).
        self.cursor = 0
        #: True once the page was freed (rule 5).
        self.ended = False
        #: Bytes of data copied, for the mover's MB/s.
        self.copied = 0
        tables.watchers[pid] = self

    # -------------------------------------------------------------- PageWatcher

    def changed(self, first: int, last: int) -> None:
        if first < self.cursor and not self.ended:
            try:
                self._copy(first, min(last, self.cursor))
            except DeviceOffline:
                self.cancel()  # the destination went off-line: the write that came in stands, the move ends

    def gone(self) -> None:
        self.ended = True
        self.placement.release(self.dest)

    # ---------------------------------------------------------------- the move

    def step(self, budget: int) -> bool:
        """Copy on from the cursor, about ``budget`` bytes; True once the whole page is copied (rule 1)."""
        if self.ended:
            return True
        done = 0
        while self.cursor < CHUNKS_PER_PAGE and done < budget:
            start, stop, here = self._runs(self.cursor, CHUNKS_PER_PAGE)[0]
            if here:
                stop = min(stop, start + max(1, (budget - done) // CHUNK_SIZE))
                done += (stop - start) * CHUNK_SIZE
            try:
                self._copy(start, stop)
            except DeviceOffline:
                self.cancel()  # a member went off-line: the mover picks the page again later
                return True
            self.cursor = stop
        return self.cursor >= CHUNKS_PER_PAGE

    def _runs(self, first: int, last: int) -> list[tuple[int, int, bool]]:
        """Runs of present and absent chunks of what is copied."""
        return self.tables.chunk_maps[self.source[0]].runs(self.source[1], first, last)

    def _read(self, offset: int, length: int) -> bytes | bytearray:
        return self.placement.store(self.source[0]).read(self.source[1], offset, length)

    def _copy(self, first: int, last: int) -> None:
        dest_chunks = self.tables.chunk_maps[self.dest[0]]
        dest_store = self.placement.store(self.dest[0])
        for start, stop, here in self._runs(first, last):
            if here:
                offset, length = start * CHUNK_SIZE, (stop - start) * CHUNK_SIZE
                dest_store.write(self.dest[1], offset, self._read(offset, length))
                dest_chunks.mark(self.dest[1], start, stop)
                self.copied += length
            else:
                dest_chunks.forget(self.dest[1], start, stop)

    def switch(self) -> None:
        """Make the copy the page (rule 3); call once ``step`` returned True and the page lives."""
        assert not self.ended and self.cursor >= CHUNKS_PER_PAGE
        assert self.tables.phys[self.pid].address == self.source and self.tables.watchers.get(self.pid) is self
        self.placement.store(self.dest[0]).flush()
        self.tables.chunk_maps[self.dest[0]].flush()
        with self.catalog.transaction() as db:
            db.execute("UPDATE phys_pages SET member_id = ?, slot = ? WHERE id = ?", (*self.dest, self.pid))
            self.tables.phys[self.pid].address = self.dest
        del self.tables.watchers[self.pid]
        self.catalog.checkpoint()
        self.placement.release(self.source)

    def cancel(self) -> None:
        """Stop, leaving the page where it is (rule 5)."""
        if not self.ended:
            del self.tables.watchers[self.pid]
            self.ended = True
            self.placement.release(self.dest)


class PageSplit(PageMove):
    """A private copy of what one page reads, for the page tables of one volume family (rule 6).

    The copy is of the page's view: its own chunks and, where it lacks one, its backing pages'. That
    view changes only when the page itself is written or cleared in place (a write to a page below it
    first gives the page its own copy of those chunks, ``pages`` rule 2), and every such change is
    reported to the watcher, so the copy follows as a move's does.
    """

    def __init__(
        self, tables: PageTables, placement: Placement, catalog: Catalog, pid: int, member_id: int, map_ids: set[int]
    ) -> None:
        super().__init__(tables, placement, catalog, pid, member_id)
        self.map_ids = map_ids

    def _runs(self, first: int, last: int) -> list[tuple[int, int, bool]]:
        return self.tables.view_runs(self.pid, first, last)

    def _read(self, offset: int, length: int) -> bytes | bytearray:
        return self.tables.read_view(self.pid, offset, length)

    def switch(self) -> None:
        """The family's entries that still map the page map the copy instead (rule 6)."""
        assert not self.ended and self.cursor >= CHUNKS_PER_PAGE and self.tables.watchers.get(self.pid) is self
        self.placement.store(self.dest[0]).flush()
        self.tables.chunk_maps[self.dest[0]].flush()
        del self.tables.watchers[self.pid]  # the split may free the page: that is not this copy's end
        self.ended = True
        if self.tables.split(self.pid, self.dest, self.map_ids) is None:
            self.placement.release(self.dest)  # the family stopped using the page meanwhile

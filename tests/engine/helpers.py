"""What the engine tests share: a fingerprint of a group's whole state, for "a refused request changed nothing"."""

from __future__ import annotations

from dataclasses import asdict

from array_sim import Group

__all__ = ["CATALOG_TABLES", "catalog_rows", "state"]

#: Every catalog table but the event log (a refused request may log an event).
CATALOG_TABLES = (
    "group_params", "pools", "members", "volumes", "snapshots", "phys_pages",
    "page_map", "access_records", "chap_users", "cli_settings",
)  # fmt: skip


def catalog_rows(group: Group) -> dict[str, list[tuple[object, ...]]]:
    db = group.catalog.db
    return {table: sorted(db.execute(f"SELECT * FROM {table}").fetchall()) for table in CATALOG_TABLES}


def state(group: Group) -> tuple[object, ...]:
    """Catalog rows (but the event log) and the in-memory records."""
    volumes = [asdict(v) for v in group.volume_list()]
    snapshots = sorted((asdict(s) for s in group.snapshots.values()), key=lambda s: s["id"])
    maps = {m: dict(t) for m, t in group.tables.maps.items() if t}
    pools = {p: group.pool_free(p) for p in group.pools}
    return catalog_rows(group), volumes, snapshots, maps, pools, group.members()

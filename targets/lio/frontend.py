"""``serve --frontend lio``: the group's volumes and snapshots as targets of the kernel's own iSCSI stack.

The embedded target's inventory (``targets.portal``: which objects are online, their logical
units, their access records) is planned (``plan``) and applied to LIO (``gateway``); every
export's TCMU device is opened (``targets.tcmu.uio``) and its ring served by a ``TcmuHandler``
over the same ``LogicalUnit`` the embedded target would use. Rules of this module:

1. ``sync`` runs after every CLI command and group event, as the embedded target's refresh does,
   one at a time: inventory on the engine owner (with the group IP: a new one becomes every
   target's only portal), then the gateway (rtslib writes configfs; it runs
   on the owner too, so no second thread touches LIO or the group), then the devices follow: a
   new export's device is opened, a gone one closed.
2. A device's ring is read on the event loop when its fd wakes; its commands run as one batch on
   the engine owner (the SCSI layer is not thread-safe, ``targets.scsi.logical_unit``), their
   completions are written on the loop, and the kernel is woken once per batch.
3. A device whose fd reports EIO was deleted: it is closed. A corrupt ring (``RingError``) is
   logged, and the device is reopened (the reopen sequence resets the ring).
4. A clean stop removes our exports (``LioGateway.close``) and closes the devices; a ``kill -9``
   leaves them, and the next start keeps the targets and reopens the devices, so initiators'
   I/O in flight completes after the restart (lio.md rule 3).
5. Beside it, ``org.kernel.TCMUService1`` answers on the system bus (``targets.tcmu.dbus_service``)
   so ``targetcli ls`` lists our ``user:arraysim`` storage objects; serving never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from array_sim.records import Snapshot, Volume

from ..engine_owner import EngineOwner
from ..portal import GroupPortal
from ..scsi import LogicalUnit
from ..tcmu import Ring, RingError, TcmuHandler
from ..tcmu.dbus_service import serve_bus
from ..tcmu.netlink import TcmuNetlink
from ..tcmu.uio import UioDevice, find_devices
from .gateway import LioGateway
from .plan import HANDLER, Export, plan_export

__all__ = ["LioFrontend", "LioUnavailable"]

log = logging.getLogger("array_sim.lio")


class LioUnavailable(Exception):
    """This host cannot serve through LIO: no rtslib-fb, no configfs, no target modules, not root."""


@dataclass
class _Open:
    device: UioDevice
    handler: TcmuHandler


class LioFrontend:
    """The LIO front end of one group (header)."""

    def __init__(self, portal: GroupPortal, owner: EngineOwner, host: str, port: int) -> None:
        self.portal = portal
        self.owner = owner
        self.host, self.port = host, port
        self.gateway: LioGateway | None = None
        self.netlink: TcmuNetlink | None = None
        #: Handler config (``arraysim/<serial>``) -> the opened device.
        self.devices: dict[str, _Open] = {}
        self._units: dict[str, LogicalUnit] = {}
        self._syncing = asyncio.Lock()
        self._bus: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Reach LIO, or say in one line why not (``LioUnavailable``)."""
        loop = asyncio.get_running_loop()
        try:
            self.gateway = await self.owner.run(LioGateway, self.host, self.port)
            self.netlink = TcmuNetlink()
        except ImportError:
            raise LioUnavailable("serve --frontend lio needs rtslib-fb (Debian: python3-rtslib-fb)") from None
        except Exception as error:  # rtslib's RTSLibError, or OSError from configfs or netlink
            raise LioUnavailable(f"serve --frontend lio needs the kernel's LIO (target_core_user, iscsi_target_mod,"
                                 f" configfs mounted, root): {error}") from None  # fmt: skip
        loop.add_reader(self.netlink.fileno(), self.netlink.drain)
        self._bus = asyncio.create_task(serve_bus(HANDLER))  # rule 5

    async def sync(self) -> None:
        """Rule 1."""
        async with self._syncing:
            inventory = await self.owner.run(self.portal.inventory)
            self.portal.apply(inventory)
            exports, units = await self.owner.run(self._plan, inventory)
            assert self.gateway is not None
            if inventory.group_ip is not None and inventory.group_ip != self.gateway.portal_ip:
                log.info("the group IP moved from %s to %s: every target's portal follows",
                         self.gateway.portal_ip, inventory.group_ip)  # fmt: skip
                self.gateway.portal_ip = self.host = inventory.group_ip
            await self.owner.run(self.gateway.reconcile, exports)
            self._units = units
            self._follow()

    # ------------------------------------------------------------ the CLI's view (``Live``)

    @property
    def live(self) -> LioFrontend:
        """What the CLI asks a running target (on the owner): here, the kernel's sessions."""
        return self

    def connections(self, volume: Volume, snapshot: Snapshot | None = None) -> list[tuple[str, str]]:
        """(initiator address, initiator name) of each connection LIO has to the volume or snapshot."""
        return self.gateway.connections((snapshot or volume).iqn) if self.gateway is not None else []

    def port_sessions(self, address: str) -> int:
        return 0  # LIO listens on the group IP only: no session is on a member port

    def port_address(self, address: str) -> str:
        return self.portal.port_address(address)

    def _plan(self, inventory) -> tuple[dict[str, Export], dict[str, LogicalUnit]]:  # noqa: ANN001 - Inventory
        """The exports and, by handler config, their logical units (on the owner: it reads the group)."""
        group = self.portal.group
        exports, units = {}, {}
        for iqn, (volume, snapshot, unit) in inventory.targets.items():
            export = plan_export(
                iqn, group.unit_identity(snapshot or volume), unit.device.num_blocks * unit.device.block_size,
                unit.write_protected, inventory.records.get(volume.name, []), snapshot is not None,
                inventory.chap_users, inventory.credentials,
            )  # fmt: skip
            exports[iqn] = export
            units[export.config] = unit
        return exports, units

    def _follow(self) -> None:
        """Open the devices of new exports, close those of exports that went (rule 1)."""
        for config in [c for c in self.devices if c not in self._units]:
            self._close(config)
        for name in find_devices(HANDLER):
            unit = self._units.get(name.config)
            if unit is None:
                continue
            opened = self.devices.get(name.config)
            if opened is not None:
                opened.handler.lu = unit  # the same object, or the one made when it came back online
                continue
            device = UioDevice(name)
            self.devices[name.config] = _Open(device, TcmuHandler(Ring(device.mapping), unit))
            asyncio.get_running_loop().add_reader(device.fd, self._ready, name.config)
            log.info("TCMU device %s (%s) opened", name.uio, name.config)
            self._serve(name.config)  # what queued while nobody listened (a restart)

    def _ready(self, config: str) -> None:
        opened = self.devices.get(config)
        if opened is None:
            return
        try:
            opened.device.wait()
        except OSError:  # rule 3: deleted
            self._close(config)
            return
        self._serve(config)

    def _serve(self, config: str) -> None:
        """Rule 2."""
        opened = self.devices[config]
        handler = opened.handler
        try:
            batch = handler.commands()
        except RingError as error:
            self._reopen(config, error)
            return
        self._wake(opened)
        if not batch:
            return

        def done(results: list[object]) -> None:
            if self.devices.get(config) is not opened:
                return  # closed meanwhile: the kernel has failed or requeued these
            try:
                for (ring_command, _), result in zip(batch, results, strict=True):
                    handler.finish(ring_command, result)  # type: ignore[arg-type]
            except RingError as error:
                self._reopen(config, error)
                return
            self._wake(opened)

        self.owner.submit_batch([lambda c=command: handler.execute(c) for _, command in batch], done)

    @staticmethod
    def _wake(opened: _Open) -> None:
        ring = opened.handler.ring
        if ring.notify_due:
            opened.device.notify()
            ring.notified()

    def _reopen(self, config: str, error: RingError) -> None:
        log.error("TCMU ring of %s is corrupt (%s); reopening the device", config, error)
        self._close(config)
        self._follow()

    def _close(self, config: str) -> None:
        opened = self.devices.pop(config)
        asyncio.get_running_loop().remove_reader(opened.device.fd)
        opened.handler.ring.release()
        opened.device.close()
        log.info("TCMU device %s (%s) closed", opened.device.name.uio, config)

    async def stop(self) -> None:
        """Rule 4: a clean stop."""
        async with self._syncing:
            if self._bus is not None:
                self._bus.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._bus
            if self.gateway is not None:
                await self.owner.run(self.gateway.close)
            for config in list(self.devices):
                self._close(config)
            if self.netlink is not None:
                asyncio.get_running_loop().remove_reader(self.netlink.fileno())
                self.netlink.close()

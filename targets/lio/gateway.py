"""Applies the plan to the kernel's LIO with rtslib-fb: idempotent, and only ever on array-sim's objects.

Rules of this module (research/lio.md 1 rules 1, 2, 4, 9; research/next-capabilities.md 4.1):

1. Only objects array-sim made are touched: ``user:`` storage objects named ``asim-...``
   (``plan.STORAGE_PREFIX``) and the iSCSI targets whose LUNs use them. Every other LIO object on
   the host survives a start, a stop and a ``kill -9``. ``RTSRoot.clear_existing()`` and
   ``restore_from_file()`` are never called: they would destroy other people's configuration.
2. Create order: storage object (its ``control`` string sets ``nl_reply_supported=-1``, a small
   ring and a 16 MiB data area), then target, TPG 1, portal, LUN 0, ACLs with their mapped LUN,
   TPG attributes, and last ``enable``. Delete order: LUN, target, storage object.
3. ``reconcile`` brings LIO to exactly the exports given, in place: an export that exists keeps
   its storage object and target (so its sessions, and a restarted handler's ring, live on); its
   ACLs, CHAP, attributes and size follow the plan. A size change is written to ``dev_size``,
   which the kernel accepts only while a socket listens on TCM-USER netlink (``targets.tcmu``).
4. A resize or an ACL change never recreates an export. Nothing here runs SCSI.
5. Discovery answers as the group's does: a SendTargets lists a target only to an initiator its
   access records let in (``demo_mode_discovery`` off unless a record admits anyone; LIO's default
   lists every target to everybody).
"""

from __future__ import annotations

import logging

from .plan import STORAGE_PREFIX, Export

__all__ = ["CONTROL", "LioGateway", "MAX_SECTORS"]

log = logging.getLogger("array_sim.lio")

#: Rule 2 (lio.md rule 4 and risk 2): no netlink replies, a 1 MiB ring, a 16 MiB data area.
CONTROL = "max_data_area_mb=16,cmd_ring_size_mb=1,nl_reply_supported=-1"
#: hw_max_sectors: 512 KiB per command, well inside the data area (lio.md rule 6).
MAX_SECTORS = 1024


class LioGateway:
    """LIO's targets for one group, through rtslib-fb (header)."""

    def __init__(self, portal_ip: str, port: int) -> None:
        import rtslib_fb  # only where LIO is: the embedded target never needs it

        self.rtslib = rtslib_fb
        self.portal_ip = portal_ip
        self.port = port
        self.root = rtslib_fb.RTSRoot()
        self.iscsi = rtslib_fb.FabricModule("iscsi")

    # ------------------------------------------------------------ what is there

    def _our_objects(self) -> dict[str, object]:
        """Storage object name -> object, for ours only (rule 1)."""
        return {
            so.name: so
            for so in self.root.storage_objects
            if so.plugin == "user" and so.name.startswith(STORAGE_PREFIX)
        }

    def _our_targets(self, objects: dict[str, object]) -> dict[str, object]:
        """IQN -> target, for targets whose LUNs use one of our storage objects (rule 1)."""
        found = {}
        for target in self.iscsi.targets:
            for tpg in target.tpgs:
                if any(lun.storage_object.name in objects for lun in tpg.luns):
                    found[target.wwn] = target
        return found

    # ------------------------------------------------------------ reconcile

    def reconcile(self, exports: dict[str, Export]) -> None:
        """Rule 3."""
        objects = self._our_objects()
        targets = self._our_targets(objects)
        wanted_objects = {e.storage_object for e in exports.values()}
        for iqn, target in targets.items():
            if iqn not in exports:
                self._delete_target(target)
        for name, so in objects.items():
            if name not in wanted_objects:
                so.delete()
                log.info("LIO storage object %s deleted", name)
        for export in exports.values():
            so = objects.get(export.storage_object)
            so = self._storage_object(export, so)
            self._target(export, so)

    def _delete_target(self, target) -> None:  # noqa: ANN001 - rtslib Target
        for tpg in target.tpgs:  # rule 2: LUN, then target
            tpg.enable = False
            for lun in list(tpg.luns):
                lun.delete()
        target.delete()
        log.info("LIO target %s deleted", target.wwn)

    def _storage_object(self, export: Export, so):  # noqa: ANN001, ANN202 - rtslib objects
        if so is None:
            so = self.rtslib.UserBackedStorageObject(
                export.storage_object, config=export.config, size=export.size, wwn=export.wwn,
                hw_max_sectors=MAX_SECTORS, control=CONTROL,
            )  # fmt: skip
            log.info("LIO storage object %s (%s, %d bytes) created", export.storage_object, export.config, export.size)
        elif int(so.get_attribute("dev_size")) != export.size:
            so.set_attribute("dev_size", str(export.size))
            log.info("LIO storage object %s resized to %d bytes", export.storage_object, export.size)
        return so

    def _target(self, export: Export, so) -> None:  # noqa: ANN001 - rtslib UserBackedStorageObject
        rts = self.rtslib
        target = rts.Target(self.iscsi, export.iqn)
        tpg = rts.TPG(target, 1)
        for portal in list(tpg.network_portals):  # the group IP moved (grpparams group-ipaddress)
            if (portal.ip_address, portal.port) != (self.portal_ip, self.port):
                portal.delete()
        if not any(p.ip_address == self.portal_ip and p.port == self.port for p in tpg.network_portals):
            rts.NetworkPortal(tpg, self.portal_ip, self.port)
        lun = next((lun for lun in tpg.luns if lun.lun == 0), None) or rts.LUN(tpg, 0, so)
        wanted = {acl.initiator.lower(): acl for acl in export.acls}
        for node in list(tpg.node_acls):
            if node.node_wwn.lower() not in wanted:
                node.delete()
        present = {node.node_wwn.lower(): node for node in tpg.node_acls}
        for key, acl in wanted.items():
            node = present.get(key) or rts.NodeACL(tpg, acl.initiator)
            user, secret = acl.chap or ("", "")
            node.chap_userid, node.chap_password = user, secret
            mutual_user, mutual_secret = acl.mutual or ("", "")
            node.chap_mutual_userid, node.chap_mutual_password = mutual_user, mutual_secret
            for mapped in list(node.mapped_luns):
                if mapped.write_protect != export.write_protect:
                    mapped.delete()
            if not any(m.mapped_lun == 0 for m in node.mapped_luns):
                rts.MappedLUN(node, 0, lun, write_protect=export.write_protect)
        demo_user, demo_secret = export.demo_chap or ("", "")
        tpg.chap_userid, tpg.chap_password = demo_user, demo_secret
        tpg.set_attribute("generate_node_acls", "1" if export.any_initiator else "0")
        tpg.set_attribute("cache_dynamic_acls", "1" if export.any_initiator else "0")
        # Rule 5: SendTargets names the target only to initiators with a node ACL (demo mode: to all).
        tpg.set_attribute("demo_mode_discovery", "1" if export.any_initiator else "0")
        tpg.set_attribute("demo_mode_write_protect", "1" if export.write_protect else "0")
        tpg.set_attribute("authentication", "1" if export.authentication else "0")
        tpg.enable = True
        for warning in export.warnings:
            log.warning("LIO target %s: %s", export.iqn, warning)

    # ------------------------------------------------------------ sessions

    def connections(self, iqn: str) -> list[tuple[str, str]]:
        """(initiator address, initiator name) of each connection logged in to our target ``iqn``, from
        the kernel's session reports: a node ACL's ``info``, and for initiators let in without one
        (``generate_node_acls``) the TPG's ``dynamic_sessions``, which names them but not their address.
        A node ACL's ``info`` reports one session, the latest: an initiator logged in over two paths
        shows once (the kernel counts both in ``fabric_statistics/iscsi_instance/sessions``)."""
        found: list[tuple[str, str]] = []
        for target in self.iscsi.targets:
            if target.wwn != iqn:
                continue
            for tpg in target.tpgs:
                for node in tpg.node_acls:
                    session = node.session
                    if session and session.get("state") == "LOGGED_IN":
                        found += [(c.get("address", ""), node.node_wwn) for c in session["connections"]]
                try:
                    with open(f"{tpg.path}/dynamic_sessions") as listing:
                        found += [("", name) for name in listing.read().split()]
                except OSError:
                    pass
        return found

    def close(self) -> None:
        """Remove every export of ours: a clean stop (after a ``kill -9`` they stay, and the next
        start reopens them, rule 3)."""
        self.reconcile({})

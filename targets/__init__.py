"""The front ends that make the group's volumes and snapshots reachable: ``iscsi`` (our embedded
userspace iSCSI target), ``scsi`` (the transport-free SCSI layer they share) and ``portal``
(the group as a set of targets, with its access control)."""

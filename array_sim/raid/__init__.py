"""RAID for a member's disks: parity arithmetic (``parity``: RAID 5 P, RAID 6 P+Q in the Linux md /
ISA-L layout over GF(2^8), read-modify-write and recovery of up to two lost strips, in plain numpy)
and the modules built on it that stripe a member's data across several disk files."""

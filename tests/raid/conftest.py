"""The ``disk_writes`` fixture: the RAID store tests run on both ways of issuing disk writes.

``aio`` (one ``io_submit`` per RAID write, ``array_sim.raid.aio``) is what a served member uses on
Linux and runs in the fast loop; ``pwritev`` (``ARRAY_SIM_AIO=off``: one call per run of strips of a
disk) is the fallback where AIO is not available, and runs in the whole suite. Both must leave the
same bytes on the disks.
"""

from __future__ import annotations

import pytest

from array_sim.raid.aio import AioWriter


@pytest.fixture(params=["aio", pytest.param("pwritev", marks=pytest.mark.slow)])
def disk_writes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the stores a test opens write their disks (``aio`` rule 3)."""
    if request.param == "aio":
        monkeypatch.delenv("ARRAY_SIM_AIO", raising=False)
        writer = AioWriter.open()
        assert writer is not None, "Linux AIO (io_setup) is not available here"
        writer.close()
    else:
        monkeypatch.setenv("ARRAY_SIM_AIO", "off")
    return str(request.param)

"""PDU codec: golden bytes from RFC 7143's figures, and decode(encode(p)) == p for every type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from targets.iscsi.framing import DigestError, Framer, FramingError, digest, encode_pdu
from targets.iscsi.pdu import (
    PDU_TYPES,
    DataIn,
    LoginRequest,
    Reject,
    ScsiCommand,
    ScsiResponse,
)

# (pdu, the 48-byte BHS as hex) laid out by hand from the RFC 7143 section 11 figures.
GOLDEN = [
    (
        ScsiCommand(flags=0xC1, lun=0, itt=5, expected_length=4096, cmd_sn=1, exp_stat_sn=2,
                    cdb=bytes([0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0]) + bytes(6)),
        "01c10000" "00000000" "0000000000000000" "00000005" "00001000" "00000001" "00000002"
        "28000000000800000800" "000000000000",
    ),
    (
        ScsiResponse(flags=0x82, response=0, status=0, itt=7, stat_sn=3, exp_cmd_sn=4, max_cmd_sn=131,
                     exp_data_sn=1, residual=512),
        "21820000" "00000000" "0000000000000000" "00000007" "00000000" "00000003" "00000004" "00000083"
        "00000001" "00000000" "00000200",
    ),
    (
        LoginRequest(flags=0x87, immediate=True, isid=bytes.fromhex("400001370000"), tsih=0, itt=1, cid=0,
                     cmd_sn=9, exp_stat_sn=0, data=b"InitiatorName=iqn.x\0"),
        "43870000" "00000014" "400001370000" "0000" "00000001" "0000" "0000" "00000009" "00000000"
        "00000000000000000000000000000000",
    ),
    (
        Reject(reason=4, stat_sn=1, exp_cmd_sn=2, max_cmd_sn=3, data=bytes(48)),
        "3f800400" "00000030" "0000000000000000" "ffffffff" "00000000" "00000001" "00000002" "00000003"
        "00000000" "0000000000000000",
    ),
]


@pytest.mark.parametrize(("pdu", "bhs"), GOLDEN)
def test_golden_both_ways(pdu, bhs):
    assert pdu.encode().hex() == bhs
    decoded = type(pdu).decode(bytes.fromhex(bhs), b"", pdu.data)
    assert decoded == pdu


@given(st.sampled_from(sorted(PDU_TYPES)), st.binary(min_size=48, max_size=48), st.binary(max_size=300))
def test_decode_then_encode_keeps_every_defined_field(opcode, raw, data):
    cls = PDU_TYPES[opcode]
    pdu = cls.decode(raw, b"", data)
    again = cls.decode(pdu.encode(), b"", data)
    assert again == pdu


def test_data_in_status_fields():
    pdu = DataIn(flags=0x81, status=0, itt=9, data_sn=2, buffer_offset=8192, residual=0, data=b"x" * 10)
    raw = pdu.encode()
    assert raw[0] == 0x25 and raw[1] == 0x81 and int.from_bytes(raw[5:8], "big") == 10


def _stream(pdus, header_digest=False, data_digest=False):
    return b"".join(bytes(piece) for pdu in pdus for piece in encode_pdu(pdu, header_digest, data_digest))


@pytest.mark.parametrize("digests", [(False, False), (True, False), (False, True), (True, True)])
def test_framer_reassembles_pdus_fed_one_byte_at_a_time(digests):
    pdus = [g[0] for g in GOLDEN] + [DataIn(itt=1, data=b"abcde")]
    stream = _stream(pdus, *digests)
    framer = Framer(size=64)
    framer.header_digest, framer.data_digest = digests
    seen = []
    for i in range(len(stream)):
        framer.feed(stream[i : i + 1])
        seen += [(f.decode(), bytes(f.data)) for f in framer.frames()]
    assert [type(p) for p, _ in seen] == [type(p) for p in pdus]
    assert [d for _, d in seen] == [bytes(p.data) for p in pdus]


def test_header_digest_mismatch_is_fatal():
    stream = bytearray(_stream([GOLDEN[0][0]], header_digest=True))
    stream[48] ^= 1
    framer = Framer()
    framer.header_digest = True
    framer.feed(stream)
    with pytest.raises(FramingError):
        list(framer.frames())


def test_data_digest_mismatch_consumes_the_pdu_and_keeps_the_stream():
    stream = bytearray(_stream([DataIn(itt=1, data=b"abcd"), DataIn(itt=2, data=b"efgh")], data_digest=True))
    stream[48 + 4] ^= 1  # first PDU's digest
    framer = Framer()
    framer.data_digest = True
    framer.feed(stream)
    with pytest.raises(DigestError):
        list(framer.frames())
    assert [f.decode().itt for f in framer.frames()] == [2]


def test_oversized_data_segment_is_fatal():
    framer = Framer()
    framer.max_data_segment = 8192
    framer.feed(_stream([DataIn(itt=1, data=bytes(8196))]))
    with pytest.raises(FramingError):
        list(framer.frames())


def test_crc32c_matches_rfc_example():
    # RFC 3720 appendix B.4: 32 bytes of zeros.
    assert digest(bytes(32)) == bytes.fromhex("aa36918a")

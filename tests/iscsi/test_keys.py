"""Text keys: parsing, and negotiation answered from the key table (RFC 7143 section 13)."""

from __future__ import annotations

import hashlib

import pytest

from targets.iscsi.chap import ChapError, ChapExchange, decode_binary
from targets.iscsi.keys import NegotiationError, defaults, encode_text, negotiate, parse_text


def test_parse_and_encode_round_trip():
    pairs = [("HeaderDigest", "CRC32C,None"), ("MaxBurstLength", "262144")]
    assert parse_text(encode_text(pairs)) == pairs


@pytest.mark.parametrize("raw", [b"novalue\0", b"=x\0", b"\xff\xfe=1\0"])
def test_malformed_text_is_refused(raw):
    with pytest.raises(NegotiationError):
        parse_text(raw)


def negotiated(offers, discovery=False):
    values = defaults()
    answers = dict(negotiate(offers, values, discovery))
    return answers, values


def test_each_kind_of_key():
    answers, values = negotiated(
        [
            ("HeaderDigest", "None,CRC32C"),  # list: the initiator's first that we support
            ("DataDigest", "CRC32C"),
            ("MaxBurstLength", "4194304"),  # min
            ("FirstBurstLength", "8192"),
            ("DefaultTime2Wait", "0"),  # max
            ("InitialR2T", "No"),  # or
            ("ImmediateData", "No"),  # and
            ("MaxConnections", "8"),
            ("ErrorRecoveryLevel", "2"),
            ("MaxRecvDataSegmentLength", "65536"),  # declarative
            ("X-com.example.Vendor", "1"),
        ]
    )
    assert answers["HeaderDigest"] == "None" and answers["DataDigest"] == "CRC32C"
    assert answers["MaxBurstLength"] == "1048576" and values["MaxBurstLength"] == 1048576
    assert answers["FirstBurstLength"] == "8192"
    assert answers["DefaultTime2Wait"] == "2"
    assert answers["InitialR2T"] == "No" and answers["ImmediateData"] == "No"
    assert answers["MaxConnections"] == "1" and answers["ErrorRecoveryLevel"] == "0"
    assert answers["MaxRecvDataSegmentLength"] == "262144"
    assert values["InitiatorMaxRecvDataSegmentLength"] == 65536
    assert answers["X-com.example.Vendor"] == "NotUnderstood"


def test_defaults_are_the_rfc_defaults():
    values = defaults()
    assert values["MaxRecvDataSegmentLength"] == 8192 and values["MaxBurstLength"] == 262144
    assert values["FirstBurstLength"] == 65536 and values["InitialR2T"] == "Yes"
    assert values["ImmediateData"] == "Yes" and values["MaxOutstandingR2T"] == 1


def test_session_keys_are_irrelevant_in_discovery():
    answers, _ = negotiated([("MaxBurstLength", "8192"), ("HeaderDigest", "None")], discovery=True)
    assert answers == {"MaxBurstLength": "Irrelevant", "HeaderDigest": "None"}


@pytest.mark.parametrize(
    "offer", [("MaxBurstLength", "100"), ("MaxBurstLength", "x"), ("InitialR2T", "Maybe"), ("MaxConnections", "0")]
)
def test_out_of_range_values_are_refused(offer):
    with pytest.raises(NegotiationError):
        negotiated([offer])


def test_unsupported_list_value_is_rejected():
    answers, _ = negotiated([("HeaderDigest", "MD5")])
    assert answers["HeaderDigest"] == "Reject"


def test_first_burst_never_exceeds_max_burst():
    _, values = negotiated([("MaxBurstLength", "16384"), ("FirstBurstLength", "65536")])
    assert values["FirstBurstLength"] == 16384


def md5(*parts: bytes) -> bytes:
    return hashlib.md5(b"".join(parts)).digest()


def test_chap_one_way_and_mutual():
    chap = ChapExchange({"alice": "alice-secret-12"}.get, ("group-0", "target-secret-1"))
    offer = dict(chap.offer("7,5"))
    identifier, challenge = int(offer["CHAP_I"]), decode_binary(offer["CHAP_C"])
    response = md5(bytes([identifier]), b"alice-secret-12", challenge)
    mine = b"\x01" * 16
    keys = {"CHAP_N": "alice", "CHAP_R": "0x" + response.hex(), "CHAP_I": "9", "CHAP_C": "0x" + mine.hex()}
    answer = dict(chap.verify(keys))
    assert chap.user == "alice"
    assert answer["CHAP_N"] == "group-0"
    assert decode_binary(answer["CHAP_R"]) == md5(bytes([9]), b"target-secret-1", mine)


@pytest.mark.parametrize(
    "keys",
    [
        {"CHAP_N": "alice", "CHAP_R": "0x" + "00" * 16},
        {"CHAP_N": "mallory", "CHAP_R": "0x" + "00" * 16},
        {"CHAP_N": "alice"},
        {"CHAP_N": "alice", "CHAP_R": "0xzz"},
    ],
)
def test_chap_failures(keys):
    chap = ChapExchange({"alice": "alice-secret-12"}.get, None)
    chap.offer("5")
    with pytest.raises(ChapError):
        chap.verify(keys)


def test_chap_refuses_a_reflected_challenge_and_md5_only():
    chap = ChapExchange({"alice": "alice-secret-12"}.get, ("group-0", "target-secret-1"))
    with pytest.raises(ChapError):
        ChapExchange({}.get, None).offer("6,7")
    offer = dict(chap.offer("5"))
    response = md5(bytes([int(offer["CHAP_I"])]), b"alice-secret-12", decode_binary(offer["CHAP_C"]))
    with pytest.raises(ChapError):
        chap.verify({"CHAP_N": "alice", "CHAP_R": "0x" + response.hex(), "CHAP_I": "1", "CHAP_C": offer["CHAP_C"]})


def test_binary_values_in_hex_and_base64():
    assert decode_binary("0x0a0B") == b"\x0a\x0b" and decode_binary("0x1") == b"\x01"
    assert decode_binary("0bAQI=") == b"\x01\x02"

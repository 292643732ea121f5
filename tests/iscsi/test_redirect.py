"""Login redirection at the group IP (RFC 7143 11.13.5), sans-IO against a real group of two members.

Connections are made as the server makes them, each knowing the address it came in at: the group
IP 127.0.0.1 or a member port (``array_sim.member_ports``: member-1 has 127.0.0.11 and .12, m2 has
.13 and .14). The portal is told which member ports are listened on, as the server tells it.
"""

from __future__ import annotations

import pytest

from array_sim import Group
from array_sim.units import PAGE_SIZE, GiB
from targets.iscsi.connection import Connection
from targets.iscsi.keys import parse_text
from targets.iscsi.pdu import AsyncMessage, LoginResponse, TextResponse
from targets.portal import GroupPortal

from .initiator import Initiator, MemoryLink

INITIATOR = "iqn.2026-12.test:redirected"
GROUP_IP = "127.0.0.1"


@pytest.fixture
def group(tmp_path):
    with Group.init(tmp_path / "g", member_size=GiB, raid_policy="file") as group:
        group.add_member("m2", GiB, "default", raid_policy="file")
        group.create_volume("v1", 4 * PAGE_SIZE)
        group.create_access("v1", ipaddress="*.*.*.*")
        device = group.device("v1")
        for page in range(4):  # pages alternate between the two members (equal free percentage)
            device.write(page * PAGE_SIZE // 512, b"x" * 4096)
        yield group


def make_portal(group: Group, redirecting: bool = True) -> GroupPortal:
    portal = GroupPortal(group, f"{GROUP_IP}:3260", redirecting=redirecting)
    portal.listening = portal.member_hosts()
    return portal


def connect(portal: GroupPortal, local_ip: str = GROUP_IP, isid: str = "400001370001") -> Initiator:
    connection = Connection(portal, "127.0.0.1", portal.new_tsih(), local_ip=local_ip)
    return Initiator(MemoryLink(connection), name=INITIATOR, isid=bytes.fromhex(isid))


def first_response(ini: Initiator, target: str | None, discovery: bool = False) -> LoginResponse:
    replies = ini.login(target, discovery=discovery)
    response = replies[0] if replies[0].status_class else replies[-1]
    assert isinstance(response, LoginResponse)
    return response


def test_the_member_ports_are_in_the_catalog(group: Group) -> None:
    assert [(p.member, p.eth, p.address, p.up) for p in group.member_ports()] == [
        ("member-1", 0, "127.0.0.11", True), ("member-1", 1, "127.0.0.12", True),
        ("m2", 0, "127.0.0.13", True), ("m2", 1, "127.0.0.14", True),
    ]  # fmt: skip


def test_a_login_at_the_group_ip_is_redirected_to_a_member_port(group: Group) -> None:
    portal = make_portal(group)
    iqn = group.volume("v1").iqn
    ini = connect(portal)
    response = first_response(ini, iqn)
    assert (response.status_class, response.status_detail) == (1, 1)  # target moved temporarily
    assert response.flags & 0x80 == 0  # not transiting: the login ends here
    address = dict(parse_text(response.data))["TargetAddress"]
    assert address in ("127.0.0.11:3260,1", "127.0.0.13:3260,1")  # eth0 of a member holding its data
    assert ini.link.closed
    at_port = connect(portal, address.split(":")[0])
    replies = at_port.login(iqn)
    assert replies[-1].status_class == 0  # served at the member port
    assert portal.port_sessions(address.split(":")[0]) == 1


def test_the_least_loaded_port_of_the_member_with_most_data_wins(group: Group) -> None:
    group.configure_volume("v1", multihost=True)
    portal = make_portal(group)
    iqn = group.volume("v1").iqn
    addresses = []
    for n in range(4):  # each session logs in where it was sent, so the next one sees the load
        response = first_response(connect(portal, isid=f"40000137000{n}"), iqn)
        address = dict(parse_text(response.data))["TargetAddress"].split(":")[0]
        session = connect(portal, address, isid=f"40000137000{n}")
        assert session.login(iqn)[-1].status_class == 0
        addresses.append(address)
    assert sorted(addresses) == ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]  # spread over every port


def test_discovery_is_answered_at_the_group_ip_and_lists_it(group: Group) -> None:
    portal = make_portal(group)
    ini = connect(portal)
    assert first_response(ini, None, discovery=True).status_class == 0
    reply = ini.text([("SendTargets", "All")])[-1]
    assert isinstance(reply, TextResponse)
    assert [v for k, v in parse_text(reply.data) if k == "TargetAddress"] == ["127.0.0.1:3260,1"]
    at_port = connect(portal, "127.0.0.13")
    assert first_response(at_port, None, discovery=True).status_class == 0
    reply = at_port.text([("SendTargets", "All")])[-1]
    assert [v for k, v in parse_text(reply.data) if k == "TargetAddress"] == ["127.0.0.13:3260,1"]


def test_no_redirect_serves_the_login_where_it_arrives(group: Group) -> None:
    portal = make_portal(group, redirecting=False)
    assert connect(portal).login(group.volume("v1").iqn)[-1].status_class == 0


def test_ports_not_listened_on_are_never_redirected_to(group: Group) -> None:
    portal = make_portal(group)
    portal.listening = {"127.0.0.14"}
    response = first_response(connect(portal), group.volume("v1").iqn)
    assert dict(parse_text(response.data))["TargetAddress"] == "127.0.0.14:3260,1"
    portal.listening = set()
    assert connect(portal).login(group.volume("v1").iqn)[-1].status_class == 0  # nowhere to go: served here


def test_a_port_taken_down_is_left_out_and_a_powered_off_members_ports_too(group: Group) -> None:
    group.set_member_port("member-1", 0, False)
    group.set_member_port("member-1", 1, False)
    portal = make_portal(group)
    assert portal.member_hosts() == {"127.0.0.13", "127.0.0.14"}
    with pytest.raises(Exception, match="already down"):
        group.set_member_port("member-1", 1, False)
    with pytest.raises(Exception, match="eth0 to eth1"):
        group.set_member_port("member-1", 2, True)
    group.set_member_port("member-1", 0, True)
    group.power_member("m2", False)
    assert make_portal(group).member_hosts() == {"127.0.0.11"}


def test_unknown_targets_are_not_redirected(group: Group) -> None:
    response = first_response(connect(make_portal(group)), "iqn.2001-05.com.equallogic:nothing")
    assert (response.status_class, response.status_detail) == (2, 3)


def test_a_login_at_a_port_of_a_member_being_vacated_is_sent_to_one_that_stays(group: Group) -> None:
    iqn = group.volume("v1").iqn
    group.delete_member("m2")  # its data starts moving to member-1: m2 is no home of v1 any more
    portal = make_portal(group)
    response = first_response(connect(portal, "127.0.0.13"), iqn)
    assert (response.status_class, response.status_detail) == (1, 1)
    assert dict(parse_text(response.data))["TargetAddress"] == "127.0.0.11:3260,1"
    assert connect(portal, "127.0.0.11").login(iqn)[-1].status_class == 0  # at home: served


def test_a_session_left_on_a_member_without_its_data_is_asked_to_log_out(group: Group) -> None:
    portal = make_portal(group)
    iqn = group.volume("v1").iqn
    staying, leaving = connect(portal, "127.0.0.11"), connect(portal, "127.0.0.13", isid="400001370002")
    group.configure_volume("v1", multihost=True)
    portal.refresh()
    assert staying.login(iqn)[-1].status_class == 0 and leaving.login(iqn)[-1].status_class == 0
    assert portal.misplaced() == []
    group.delete_member("m2")
    portal.refresh()
    assert [(c.local_ip, member) for c, member in portal.misplaced()] == [("127.0.0.13", "m2")]
    connection = portal.misplaced()[0][0]
    assert connection.request_logout(10) and not connection.request_logout(10)  # asked once
    (message,) = leaving.exchange()
    assert isinstance(message, AsyncMessage) and (message.async_event, message.parameter3) == (1, 10)
    assert leaving.logout()[-1].response == 0  # RFC 7143 11.9.1: the initiator logs out, then in at the group IP
    assert not staying.exchange()  # the session on member-1 is left alone


def test_with_no_redirect_nobody_is_asked_to_move(group: Group) -> None:
    portal = make_portal(group, redirecting=False)
    session = connect(portal, "127.0.0.13")
    assert session.login(group.volume("v1").iqn)[-1].status_class == 0
    group.delete_member("m2")
    portal.refresh()
    assert portal.misplaced() == []

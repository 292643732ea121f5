"""The Vagrant lab's ``Vagrantfile`` (README.md, "The Vagrant lab"), checked without a provider or a box:

* ``ruby -c``: it parses;
* ``vagrant validate --ignore-provider`` (Debian's vagrant, offline: no box is fetched, no provider needed):
  Vagrant's own checks of what it configures, such as every shell provisioner's script existing;
* ``vagrantfile_probe.rb``: the file loaded under a stand-in for Vagrant that records what it sets, including
  the provider blocks that ``--ignore-provider`` skips, so the lab's shape is asserted here: a storage node and
  two initiators, each on both SAN networks, both providers sized, provisioned by the scripts in scripts/lab/
  with arguments that agree (the storage node's access records admit the initiators' names).

Here the provisioning scripts only get ``bash -n``: they have not yet run in the LIO test guest (the
issue's rule that the guest runs the lab's scripts is still open). Nothing starts a machine or touches a network: the lab's 192.168.56.x addresses are only read.
Skipped, with the reason, where ruby or vagrant is missing (``./scripts/test`` installs both).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VAGRANTFILE = REPO / "Vagrantfile"
PROBE = Path(__file__).resolve().parent / "vagrantfile_probe.rb"
LAB = REPO / "scripts" / "lab"

needs_ruby = pytest.mark.skipif(shutil.which("ruby") is None, reason="no ruby (Debian's ruby package)")
needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None, reason="no vagrant (Debian's vagrant package)")


def vagrant(tmp_path: Path, directory: Path, *words: str) -> subprocess.CompletedProcess[str]:
    """``vagrant WORDS`` on the Vagrantfile in ``directory``, its state and home in ``tmp_path`` (no ``.vagrant``
    in the checkout, no ``~/.vagrant.d``), without the version check that would go to the network."""
    env = dict(os.environ, VAGRANT_CWD=str(directory), VAGRANT_HOME=str(tmp_path / "home"),
               VAGRANT_DOTFILE_PATH=str(tmp_path / "dotfile"), VAGRANT_CHECKPOINT_DISABLE="1",
               VAGRANT_NO_COLOR="1")  # fmt: skip
    return subprocess.run(["vagrant", *words], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def probe(vagrantfile: Path) -> dict:
    done = subprocess.run(["ruby", str(PROBE), str(vagrantfile)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_ruby
def test_the_vagrantfile_and_the_probe_parse() -> None:
    for path in (VAGRANTFILE, PROBE):
        done = subprocess.run(["ruby", "-c", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "Syntax OK" in done.stdout, done.stdout + done.stderr


@needs_vagrant
def test_vagrant_validates_the_vagrantfile_offline(tmp_path: Path) -> None:
    done = vagrant(tmp_path, REPO, "validate", "--ignore-provider")
    assert done.returncode == 0 and "Vagrantfile validated successfully" in done.stdout, done.stdout + done.stderr
    for machine in ("storage", "init1", "init2"):
        assert f"{machine}: Ignoring provider config" in done.stdout, done.stdout


@needs_vagrant
def test_vagrant_validate_catches_a_provisioning_script_that_is_not_there(tmp_path: Path) -> None:
    """The check above is worth something: the same file away from scripts/lab/ is refused."""
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(VAGRANTFILE, alone / "Vagrantfile")
    done = vagrant(tmp_path, alone, "validate", "--ignore-provider")
    assert done.returncode != 0 and "scripts/lab/provision-storage" in done.stdout + done.stderr, done.stdout


@needs_ruby
def test_the_lab_is_a_storage_node_and_two_initiators_on_two_san_networks() -> None:
    lab = probe(VAGRANTFILE)
    assert lab["box"] == "debian/bookworm64"
    machines = lab["machines"]
    assert set(machines) == {"storage", "init1", "init2"}
    assert [name for name, machine in machines.items() if machine["primary"]] == ["storage"]
    subnets: list[set[ipaddress.IPv4Network]] = []
    hosts = set()
    for name, machine in machines.items():
        assert machine["hostname"] == name
        assert set(machine["providers"]) == {"libvirt", "virtualbox"}, name
        for settings in machine["providers"].values():
            assert settings["cpus"] >= 1 and settings["memory"] >= 1024, (name, settings)
        nets = [net for net in machine["networks"] if net["kind"] == "private_network"]
        assert len(nets) == 2, (name, machine["networks"])
        interfaces = [ipaddress.IPv4Interface(f"{net['ip']}/{net['netmask']}") for net in nets]
        subnets.append({interface.network for interface in interfaces})
        hosts |= {interface.ip for interface in interfaces}
        # libvirt: isolated networks of the lab's own, no DHCP (the addresses are static).
        assert all(net["libvirt__forward_mode"] == "none" and net["libvirt__dhcp_enabled"] is False for net in nets)
        assert len({net["libvirt__network_name"] for net in nets}) == 2
    assert all(found == subnets[0] and len(found) == 2 for found in subnets), subnets  # the same two SANs
    assert len(hosts) == 6, hosts  # no address twice
    # VirtualBox allows host-only networks only in 192.168.56.0/21 unless told otherwise.
    assert all(network.subnet_of(ipaddress.IPv4Network("192.168.56.0/21")) for network in subnets[0])
    assert machines["storage"]["providers"]["virtualbox"]["memory"] >= 2048  # serve, LIO and RAID 6 in Python


@needs_ruby
def test_provisioning_is_the_scripts_in_scripts_lab_with_arguments_that_agree() -> None:
    lab = probe(VAGRANTFILE)
    (folder,) = lab["synced_folders"]
    assert folder["source"] == "." and folder["type"] == "rsync"  # the box has no VirtualBox guest additions
    project = folder["target"]
    provisioners = {name: machine["provisioners"] for name, machine in lab["machines"].items()}
    assert all(len(found) == 1 and found[0]["kind"] == "shell" for found in provisioners.values()), provisioners
    storage = provisioners["storage"][0]
    assert storage["path"] == "scripts/lab/provision-storage"
    assert storage["args"][0] == project
    host_iqn, backup_iqn = storage["args"][2:]
    for name, iqn in (("init1", host_iqn), ("init2", backup_iqn)):
        (initiator,) = provisioners[name]
        assert initiator["path"] == "scripts/lab/provision-initiator"
        assert initiator["args"] == [project, iqn]  # the name the storage node's access record admits
    for found in provisioners.values():
        script = REPO / found[0]["path"]
        assert script.is_file() and os.access(script, os.X_OK), script


@needs_ruby
def test_the_probe_refuses_what_vagrant_would_not_take(tmp_path: Path) -> None:
    """A misspelt call fails the probe (it knows only the calls the lab makes), so its JSON is what Vagrant got."""
    broken = tmp_path / "Vagrantfile"
    broken.write_text(VAGRANTFILE.read_text().replace("node.vm.hostname = name", "node.vm.hostnme = name"))
    done = subprocess.run(["ruby", str(PROBE), str(broken)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "hostnme" in done.stderr, done.stdout + done.stderr


def test_the_lab_scripts_are_bash_that_parses() -> None:
    scripts = [path for path in sorted(LAB.iterdir()) if path.read_bytes().startswith(b"#!/usr/bin/env bash")]
    assert {path.name for path in scripts} >= {"install-project", "lio-setup", "storage-group", "initiator-config",
                                               "provision-storage", "provision-initiator"}  # fmt: skip
    for path in scripts:
        assert os.access(path, os.X_OK), path
        done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{path.name}: {done.stderr}"
    done = subprocess.run(["bash", "-n", str(LAB / "packages")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

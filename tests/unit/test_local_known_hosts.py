"""The local provider reads every VM's host key side by side and writes the environment's
known_hosts once: other addresses' keys stay, a reused address gets the new key only."""

from mlops_vm import paths
from mlops_vm.paths import known_hosts_file
from mlops_vm.provision.local import ssh_access


def test_record_host_keys_replaces_reused_addresses_and_keeps_the_others(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path)
    path = known_hosts_file("kh")
    path.parent.mkdir(parents=True)
    path.write_text("10.0.0.2 ssh-ed25519 OLD2\n10.0.0.9 ssh-ed25519 KEEP9\n")

    ssh_access.record_host_keys(
        "kh", {"10.0.0.2": ["ssh-ed25519", "NEW2"], "10.0.0.3": ["ssh-ed25519", "NEW3"]}
    )

    assert sorted(path.read_text().splitlines()) == [
        "10.0.0.2 ssh-ed25519 NEW2",
        "10.0.0.3 ssh-ed25519 NEW3",
        "10.0.0.9 ssh-ed25519 KEEP9",
    ]


def test_no_running_vm_leaves_known_hosts_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path)
    ssh_access.record_host_keys("none", {})
    assert not known_hosts_file("none").exists()

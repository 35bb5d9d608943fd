"""The local registry's htpasswd: a bcrypt cost the registry can afford on every request."""

import bcrypt

from mlops_vm import paths
from mlops_vm.localcloud import registry

CREDS = registry.Credentials("mlops", "a-random-token-of-the-registry")


def cost_of(path) -> int:
    hashed = path.read_text().strip().partition(":")[2]
    return int(hashed.split("$")[2])


def test_a_new_htpasswd_uses_the_low_cost_and_checks_the_password(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "REGISTRY_STATE_DIR", tmp_path)
    path = registry.ensure_htpasswd(CREDS)
    user, _, hashed = path.read_text().strip().partition(":")
    assert user == CREDS.username
    assert cost_of(path) == registry.BCRYPT_COST == 5
    assert bcrypt.checkpw(CREDS.password.encode(), hashed.encode())
    assert not bcrypt.checkpw(b"another password", hashed.encode())


def test_an_htpasswd_of_the_default_cost_is_written_again(tmp_path, monkeypatch):
    """A machine set up before keeps a cost-12 hash otherwise, and every request pays it."""
    monkeypatch.setattr(paths, "REGISTRY_STATE_DIR", tmp_path)
    path = tmp_path / "auth" / "htpasswd"
    path.parent.mkdir(parents=True)
    old = bcrypt.hashpw(CREDS.password.encode(), bcrypt.gensalt(rounds=12)).decode()
    path.write_text(f"{CREDS.username}:{old}\n")
    registry.ensure_htpasswd(CREDS)
    assert cost_of(path) == registry.BCRYPT_COST


def test_a_current_htpasswd_is_kept_as_it_is(tmp_path, monkeypatch):
    """Unchanged bytes: the registry container (its inputs' hash) is not recreated."""
    monkeypatch.setattr(paths, "REGISTRY_STATE_DIR", tmp_path)
    first = registry.ensure_htpasswd(CREDS).read_bytes()
    assert registry.ensure_htpasswd(CREDS).read_bytes() == first

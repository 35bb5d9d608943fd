"""The local scaling group's release identity: what makes a new release image, what a
rollback returns to (provision/local/scaling_group.py, group.py)."""

from dataclasses import replace

from mlops_vm.bootstrap import BootConfig, render_user_data
from mlops_vm.provision.local import group, image
from mlops_vm.provision.local.scaling_group import release_of

IMAGE = "registry.mlops-vm.test:5443/mlops-vm/model-service"


def user_data(tag: str = "1.0", password: str = "s3cret-one", keys=("k" * 20,), replicas=1):
    boot = BootConfig.for_model(
        f"{IMAGE}:{tag}",
        registry_username="mlops",
        registry_password=password,
        replicas=replicas,
        secret_role_vars={"nginx_proxy_api_keys": list(keys)},
    )
    return render_user_data(boot)


def test_the_fingerprint_covers_what_is_baked_and_never_the_secrets():
    fingerprint, release = release_of(user_data())
    assert release == f"{IMAGE}:1.0"
    # Other secrets: the same image (they are handed over at launch, not baked).
    assert release_of(user_data(password="other", keys=("z" * 24,)))[0] == fingerprint
    # Another model release or another setting baked in: another image.
    assert release_of(user_data(tag="1.1"))[1] == f"{IMAGE}:1.1"
    assert release_of(user_data(tag="1.1"))[0] != fingerprint
    assert release_of(user_data(replicas=2))[0] != fingerprint


def test_the_builder_gets_the_payloads_variables_and_secrets_apart():
    files = image.boot_files(user_data())
    assert b"model_service_image_tag" in files["vars.yml"]
    assert b"s3cret-one" not in files["vars.yml"]
    assert b"s3cret-one" in files["secrets.yml"]


def test_a_new_image_remembers_the_one_it_replaces_for_rollback():
    config = group.GroupConfig(env="asg", image="mlops-vm/release:asg-a", release="1.0")
    assert group.with_image(config, config.image, "1.0") is config  # same image: no change
    released = group.with_image(config, "mlops-vm/release:asg-b", "1.1")
    assert (released.previous_image, released.previous_release) == (config.image, "1.0")
    rolled_back = group.with_image(released, released.previous_image, released.previous_release)
    assert (rolled_back.image, rolled_back.release) == (config.image, "1.0")
    assert rolled_back == replace(
        config, previous_image="mlops-vm/release:asg-b", previous_release="1.1"
    )

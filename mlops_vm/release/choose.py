"""Which release a run rolls out, from the command, the inventory and the hosts' records.

Each host records the release it runs and the previous one (roles/model_service writes
`release.json`: image, replicas, workers, cpus, memory, gpus, env, fingerprint, source,
deployed_at). What runs is read from the hosts, never from a local state file.

The rules (documented in the README):
- `deploy --image REF`: REF, with the inventory's other model settings.
- `deploy` without --image, and `provision`: the inventory's model settings, except that a
  release made by `deploy --image` or `rollback` is kept while the inventory's image is
  still the one it was when that release was made: the inventory did not ask for a change,
  so no run silently reverts a release. The run says so in its notes.
- `rollback`: the previous release recorded on the hosts (all hosts must agree).
- `rollback` on a scaling group: the release the group recorded as replaced (its provider
  reads it from the group: group_rollback_image), released again the forward way.
- `rollback --to N`: the release entry N of the history left running (commands/history.py
  gives its image and sizes; `env` comes from the inventory, as history keeps no settings
  that may hold secrets).
"""

from dataclasses import dataclass, field
from typing import Any

SETTINGS = ("image", "replicas", "workers", "cpus", "memory", "gpus", "env")
CLI_SOURCES = ("deploy", "rollback")


class ReleaseError(ValueError):
    """No release can be chosen (e.g. nothing to roll back to); the message says why."""


@dataclass
class Choice:
    release: dict[str, Any]  # the settings to roll out (SETTINGS)
    source: str  # recorded on the hosts: provision, deploy, rollback
    notes: list[str] = field(default_factory=list)


def inventory_release(model: dict[str, Any]) -> dict[str, Any]:
    """The release the inventory's `mlops_vm.model` settings describe."""
    return {
        "image": model["image"],
        "replicas": int(model.get("replicas", 1)),
        "workers": int(model.get("workers", 1)),
        "cpus": float(model.get("cpus", 1.0)),
        "memory": str(model.get("memory", "1g")),
        "gpus": str(model.get("gpus", 0)),
        "env": dict(model.get("env") or {}),
    }


def settings_of(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in SETTINGS if key in record}


def choose_release(
    mode: str,
    model: dict[str, Any],
    records: dict[str, dict[str, Any] | None],
    image: str = "",
    to: dict[str, Any] | None = None,
) -> Choice:
    """The release to roll. MODE: provision, deploy or rollback; MODEL: the inventory's
    `mlops_vm.model`; RECORDS: each host's release record (None: none yet); IMAGE: --image;
    TO: the release a `rollback --to N` goes back to."""
    wanted = inventory_release(model)
    current = {host: (r or {}).get("current") for host, r in records.items()}
    if mode == "rollback" and to:
        release = {**wanted, **settings_of(to), "env": wanted["env"]}
        return Choice({**release, "inventory_image": model["image"]}, "rollback")
    if mode == "rollback":
        return rollback_choice(records)
    if image:
        return Choice({**wanted, "image": image, "inventory_image": model["image"]}, "deploy")
    kept = [
        c
        for c in current.values()
        if c
        and c.get("source") in CLI_SOURCES
        and c.get("inventory_image", c.get("image")) == model["image"]
        and c.get("image") != model["image"]
    ]
    if kept:
        release = kept[0]
        note = (
            f"keeping the running release {release['image']} (from `mlops-vm "
            f"{release['source']}`): the inventory's model.image is still {model['image']}. "
            "Write the new image in model.image to make it permanent, or run "
            f"`mlops-vm deploy ENV --image {model['image']}` to go back."
        )
        return Choice(
            {**wanted, "image": release["image"], "inventory_image": model["image"]},
            release["source"],
            [note],
        )
    return Choice({**wanted, "inventory_image": model["image"]}, mode)


def rollback_choice(records: dict[str, dict[str, Any] | None]) -> Choice:
    previous = {host: (r or {}).get("previous") for host, r in records.items()}
    missing = sorted(host for host, p in previous.items() if not p)
    if not records or missing:
        raise ReleaseError(
            "nothing to roll back to: no previous release recorded on "
            + (", ".join(missing) if missing else "any host")
        )
    fingerprints = {p["fingerprint"] for p in previous.values()}
    if len(fingerprints) > 1:
        by_image = ", ".join(f"{h}: {p['image']}" for h, p in sorted(previous.items()))
        raise ReleaseError(
            f"the hosts disagree on the previous release ({by_image}); "
            "run `mlops-vm deploy ENV --image REF` with the one you want"
        )
    chosen = next(iter(previous.values()))
    release = settings_of(chosen)
    release["inventory_image"] = chosen.get("inventory_image", chosen["image"])
    return Choice(release, "rollback")


def group_rollback_image(env: str, previous: str | None) -> str:
    """The image a scaling group's `rollback` releases: PREVIOUS, the release the group ran
    before its current one (Provider.previous_release)."""
    if not previous:
        raise ReleaseError(
            f"nothing to roll back to: the scaling group of {env} records no previous release "
            "(one is recorded by each release that changes the model image)"
        )
    return previous

"""What release a fleet runs, as the history keeps it: each host's release by its image and
sizes (never its `env`, which may hold secrets), and the one most hosts run.

A release run tells it itself (release-plan.yml reads every model host's record before the
run, release-roll.yml reports what each host runs after it), so the CLI reads no host
again for the history. A host's fingerprint is left out: the run knows the settings it
rolled, not the fingerprint the host derives from them (its image id), and a change of
fingerprint alone is a change of hosts, which the history records by itself.
"""

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from mlops_vm.bootstrap.config import split_image_ref

RELEASE_FIELDS = ("image", "replicas", "workers", "cpus", "memory", "gpus")


def release_of(current: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A release as the history keeps it, from a host record's `current` (or a revision,
    or a chosen release); None when it names no image."""
    if not current or not current.get("image"):
        return None
    return {key: current[key] for key in RELEASE_FIELDS if key in current}


def image_reference(image: str) -> str:
    """IMAGE as a host records it (roles/model_service: the repository with its tag, or its
    digest when it has one; `latest` when it has neither)."""
    repository, tag, digest = split_image_ref(image)
    return f"{repository}@{digest}" if digest else f"{repository}:{tag}"


def releases_before(records: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """Each host's release from its record (release.json) as the run read it."""
    return {host: release_of((record or {}).get("current")) for host, record in records.items()}


def releases_after(
    records: Mapping[str, Mapping[str, Any] | None],
    changed: Iterable[str],
    chosen: Mapping[str, Any],
) -> dict[str, Any]:
    """Each host's release once the run is done: CHANGED hosts (switched to the release and
    kept on it) run CHOSEN, the others what their RECORDS (read by the release's
    pre-flight, after any new host got its first release) say."""
    after = releases_before(records)
    image = str(chosen.get("image") or "")
    rolled = release_of({**chosen, "image": image_reference(image)}) if image else None
    for host in changed:
        after[host] = rolled
    return after


def most_run(releases: Mapping[str, Any]) -> dict[str, Any] | None:
    """The release most hosts run (the first host's, in name order, on a tie); None when
    no host runs one."""
    counted = Counter(
        json.dumps(releases[host], sort_keys=True) for host in sorted(releases) if releases[host]
    )
    return json.loads(counted.most_common(1)[0][0]) if counted else None

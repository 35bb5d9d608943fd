"""The read-only part of the fake: regions, zones, machine types and public images.

Tests change it through its methods (e.g. take a machine type away from a zone) to drive
the provider's validation and error paths.
"""

import zlib
from dataclasses import dataclass, field
from typing import Any

MACHINE_TYPES: dict[str, tuple[int, int]] = {  # name -> (guest CPUs, memory MB)
    "e2-micro": (2, 1024),
    "e2-small": (2, 2048),
    "e2-medium": (2, 4096),
    "e2-standard-2": (2, 8192),
    "e2-standard-4": (4, 16384),
    "n2-standard-2": (2, 8192),
    "n1-standard-4": (4, 15360),  # takes guest accelerators (T4)
    # GPU machine types: their GPUs come with them, and they cannot live-migrate.
    "g2-standard-4": (4, 16384),
    "a2-highgpu-1g": (12, 87040),
}
GPU_MACHINE_PREFIXES = ("g2-", "a2-")
ACCELERATOR_TYPES: dict[str, int] = {  # name -> maximumCardsPerInstance
    "nvidia-tesla-t4": 4,
    "nvidia-l4": 8,
    "nvidia-tesla-a100": 16,
}

REGIONS: dict[str, tuple[str, ...]] = {
    "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
    "europe-west1": ("europe-west1-b", "europe-west1-c", "europe-west1-d"),
}

# project -> family -> image name
IMAGES: dict[str, dict[str, str]] = {
    "debian-cloud": {
        "debian-12": "debian-12-bookworm-v20251111",
        "debian-11": "debian-11-bullseye-v20251111",
    },
}


@dataclass
class Catalog:
    regions: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(REGIONS))
    # zone -> machine type names offered there
    offered: dict[str, set[str]] = field(default_factory=dict)
    images: dict[str, dict[str, str]] = field(
        default_factory=lambda: {p: dict(f) for p, f in IMAGES.items()}
    )

    # zone -> accelerator type names offered there
    accelerators: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for zones in self.regions.values():
            for zone in zones:
                self.offered.setdefault(zone, set(MACHINE_TYPES))
                self.accelerators.setdefault(zone, set(ACCELERATOR_TYPES))

    # -- test hooks ----------------------------------------------------------------------

    def remove_machine_type(self, zone: str, machine_type: str) -> None:
        self.offered[zone].discard(machine_type)

    def remove_accelerator(self, zone: str, accelerator: str) -> None:
        self.accelerators[zone].discard(accelerator)

    def reset(self) -> None:
        for zones in self.regions.values():
            for zone in zones:
                self.offered[zone] = set(MACHINE_TYPES)
                self.accelerators[zone] = set(ACCELERATOR_TYPES)

    # -- lookups -------------------------------------------------------------------------

    def zones(self) -> list[str]:
        return [zone for zones in self.regions.values() for zone in zones]

    def region_of(self, zone: str) -> str | None:
        for region, zones in self.regions.items():
            if zone in zones:
                return region
        return None

    def offers(self, zone: str, machine_type: str) -> bool:
        return machine_type in self.offered.get(zone, set())

    def image_name(self, project: str, *, family: str | None = None, name: str | None = None):
        families = self.images.get(project, {})
        if family is not None:
            return families.get(family)
        return name if name in families.values() else None

    # -- resources as the API shows them -------------------------------------------------

    def region_resource(self, base: str, project: str, region: str) -> dict[str, Any]:
        return {
            "kind": "compute#region",
            "id": str(1000 + sorted(self.regions).index(region)),
            "name": region,
            "status": "UP",
            "zones": [f"{base}projects/{project}/zones/{zone}" for zone in self.regions[region]],
            "selfLink": f"{base}projects/{project}/regions/{region}",
        }

    def zone_resource(self, base: str, project: str, zone: str) -> dict[str, Any]:
        region = self.region_of(zone)
        return {
            "kind": "compute#zone",
            "id": str(2000 + self.zones().index(zone)),
            "name": zone,
            "status": "UP",
            "region": f"{base}projects/{project}/regions/{region}",
            "selfLink": f"{base}projects/{project}/zones/{zone}",
        }

    def machine_type_resource(
        self, base: str, project: str, zone: str, name: str
    ) -> dict[str, Any]:
        cpus, memory_mb = MACHINE_TYPES[name]
        return {
            "kind": "compute#machineType",
            "id": str(3000 + sorted(MACHINE_TYPES).index(name)),
            "name": name,
            "guestCpus": cpus,
            "memoryMb": memory_mb,
            "zone": zone,
            "selfLink": f"{base}projects/{project}/zones/{zone}/machineTypes/{name}",
        }

    def accelerator_resource(self, base: str, project: str, zone: str, name: str) -> dict[str, Any]:
        return {
            "kind": "compute#acceleratorType",
            "id": str(4000 + sorted(ACCELERATOR_TYPES).index(name)),
            "name": name,
            "description": name.replace("-", " "),
            "maximumCardsPerInstance": ACCELERATOR_TYPES[name],
            "zone": f"{base}projects/{project}/zones/{zone}",
            "selfLink": f"{base}projects/{project}/zones/{zone}/acceleratorTypes/{name}",
        }

    def image_resource(self, base: str, project: str, name: str) -> dict[str, Any]:
        family = next(f for f, n in self.images[project].items() if n == name)
        return {
            "kind": "compute#image",
            "id": str(zlib.crc32(name.encode())),
            "name": name,
            "family": family,
            "status": "READY",
            "diskSizeGb": "10",
            "selfLink": f"{base}projects/{project}/global/images/{name}",
        }

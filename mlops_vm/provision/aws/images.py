"""The machine image: an AMI id as given, or the newest AMI whose name matches a pattern.

InstanceSpec.image None means Debian 12 from Debian's own account (136693071363), the
newest "debian-12-amd64-*" image; any other value that is not an "ami-..." id is a name
pattern looked up among the images of the `image_owner` option's account.
"""

from typing import Any

from mlops_vm.provision.aws import errors, names
from mlops_vm.provision.aws.client import AwsContext, Lookup

DEBIAN_OWNER = "136693071363"
DEBIAN_12_PATTERN = "debian-12-amd64-*"


IMAGE = Lookup("ec2", "describe_images", "Images", missing_ok=True)


def describe_image(ctx: AwsContext, image_id: str) -> dict[str, Any] | None:
    return ctx.first(IMAGE, f"read image {image_id}", ImageIds=[image_id])


def newest_image(ctx: AwsContext, pattern: str, owner: str) -> dict[str, Any] | None:
    images = ctx.call(
        "ec2",
        "describe_images",
        f"look up the image {pattern}",
        Owners=[owner],
        Filters=names.filters({"name": pattern, "state": "available"}),
    )["Images"]
    return max(images, key=lambda image: image.get("CreationDate", ""), default=None)


def resolve_image(ctx: AwsContext, image: str | None) -> dict[str, Any]:
    """The AMI record (ImageId, RootDeviceName, ...) the instances boot from."""
    if image and image.startswith("ami-"):
        found = describe_image(ctx, image)
        where = f"AMI {image}"
    else:
        pattern = image or DEBIAN_12_PATTERN
        owner = ctx.options.image_owner
        found = newest_image(ctx, pattern, owner)
        where = f"an AMI named {pattern!r} owned by {owner}"
    if found is None:
        raise errors.invalid(
            f"{where} does not exist in {ctx.region}",
            "check InstanceSpec.image (an ami-... id of this region, or a name pattern) "
            "and the image_owner option",
            "resolve the machine image",
        )
    return found

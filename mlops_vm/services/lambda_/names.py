"""Names of what an environment owns on Lambda, derived from the environment (and the
service name), so that status, rollback, logs and destroy find everything again."""

from mlops_vm.provision.aws import names as tags
from mlops_vm.provision.model import ROLE_MODEL

ALIAS = "live"  # the alias the function URL and provisioned concurrency hang on
URL_PERMISSION = "mlops-vm-public-url"  # statement id of the public URL's permission


def role_name(env: str) -> str:
    return f"mlops-vm-{env}-lambda"


def log_group_name(function: str) -> str:
    """Lambda writes to this group by itself; we create it to own its retention and tags."""
    return f"/aws/lambda/{function}"


def tag_dict(env: str, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return tags.tag_dict(env, ROLE_MODEL, name, extra)


ALB_PERMISSION = "mlops-vm-alb"  # statement id of the load balancer's invoke permission
# Tag on the function naming service.domain (endpoint: alb), so that status prints it.
TAG_DOMAIN = "mlops-vm/domain"

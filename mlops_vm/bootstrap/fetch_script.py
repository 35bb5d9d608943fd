#!/usr/bin/env python3
"""mlops-vm boot fetcher: what an instance runs at first boot, with its own identity.

Python's standard library only (python3 is wherever cloud-init is; nothing is installed
before it runs). It reads its source file (non-secret, from user-data: where the payload
is, which secrets to read, which registry to log in to), then:
  1. gets short-lived credentials from the instance metadata service (AWS instance
     profile over IMDSv2, GCP service account, Azure managed identity);
  2. downloads the payload (roles, playbook, variables, run script) from object storage,
     checks its SHA-256, unpacks it;
  3. reads each secret from the cloud's secret store, and exchanges the identity for a
     registry login (ECR GetAuthorizationToken, an Artifact Registry access token, an ACR
     refresh token), into secrets.yml (0600, deleted by run.sh after the Ansible run);
  4. runs the payload's run.sh.
An instance from a baked image runs it as its boot hook instead (`--baked`, baked.py): no
payload, no Ansible; the secrets are read the same way and applied directly (apply_baked).
No secret is printed; errors name the object or the reference, never a value.
"""

import base64
import datetime
import hashlib
import hmac
import json
import lzma
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT_S = 10
ATTEMPTS = 6


def request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    attempts: int = ATTEMPTS,
    retry_statuses: frozenset[int] = frozenset(),
) -> bytes:
    """The response body of URL; retried with back-off (the network and the metadata
    service may still be coming up at first boot), also on RETRY_STATUSES."""
    for attempt in range(attempts):
        try:
            req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            if error.code < 500 and error.code != 429 and error.code not in retry_statuses:
                raise SystemExit(
                    f"mlops-vm boot: {method} {redacted(url)}: HTTP {error.code}"
                ) from None
            reason = f"HTTP {error.code}"
        except OSError as error:
            reason = str(error)
        if attempt == attempts - 1:
            raise SystemExit(f"mlops-vm boot: {method} {redacted(url)}: {reason}")
        time.sleep(2**attempt)
    raise AssertionError("unreachable")


def redacted(url: str) -> str:
    """URL without its query (a signature or a token may be in it)."""
    return url.split("?", 1)[0]


# --- AWS: SigV4 with the instance profile's credentials ---------------------------------


def sign_v4(
    method: str,
    url: str,
    region: str,
    service: str,
    credentials: dict[str, str],
    body: bytes,
    headers: dict[str, str],
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """HEADERS plus the SigV4 Authorization (the same as botocore's signer)."""
    parts = urllib.parse.urlsplit(url)
    now = now or datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    signed_headers = {
        **{name.lower(): str(value).strip() for name, value in headers.items()},
        "host": parts.netloc,
        "x-amz-date": stamp,
        "x-amz-content-sha256": payload_hash,
    }
    if credentials.get("Token"):
        signed_headers["x-amz-security-token"] = credentials["Token"]
    names = sorted(signed_headers)
    query = "&".join(
        f"{urllib.parse.quote(key, safe='-_.~')}={urllib.parse.quote(value, safe='-_.~')}"
        for key, value in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    )
    canonical = "\n".join(
        [
            method,
            # Encoded once, as S3 wants (the other services' paths here are "/").
            urllib.parse.quote(urllib.parse.unquote(parts.path) or "/", safe="/-_.~"),
            query,
            "".join(f"{name}:{signed_headers[name]}\n" for name in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + credentials["SecretAccessKey"]).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed_headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials['AccessKeyId']}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    signed_headers.pop("host")
    return signed_headers


PARAMETER_ARN = re.compile(r"^arn:aws[\w-]*:ssm:[\w-]+:\d{12}:parameter(?P<name>/.+)$")
JSON_TARGETS = {
    "secretsmanager": "secretsmanager.GetSecretValue",
    "ssm": "AmazonSSM.GetParameter",
    "ecr": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
}


class Aws:
    def __init__(self, source: dict[str, Any]) -> None:
        self.region = source["region"]
        self.metadata = source.get("metadata_url") or "http://169.254.169.254"
        self.endpoints = source.get("endpoints") or {}
        self.credentials = self.instance_credentials()

    def instance_credentials(self) -> dict[str, str]:
        """The instance profile's temporary credentials, over IMDSv2 (a session token)."""
        token = request(
            f"{self.metadata}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
        ).decode()
        path = f"{self.metadata}/latest/meta-data/iam/security-credentials/"
        headers = {"X-aws-ec2-metadata-token": token}
        role = request(path, headers=headers).decode().split()[0]
        return json.loads(request(path + role, headers=headers))

    def endpoint(self, service: str) -> str:
        return self.endpoints.get(service) or f"https://{service}.{self.region}.amazonaws.com"

    def call(
        self, method: str, url: str, service: str, body: bytes = b"", headers: dict | None = None
    ) -> bytes:
        signed = sign_v4(method, url, self.region, service, self.credentials, body, headers or {})
        return request(url, method=method, headers=signed, body=body or None)

    def json_call(self, service: str, body: dict[str, Any]) -> Any:
        headers = {
            "content-type": "application/x-amz-json-1.1",
            "x-amz-target": JSON_TARGETS[service],
        }
        data = json.dumps(body).encode()
        return json.loads(self.call("POST", self.endpoint(service) + "/", service, data, headers))

    def get_object(self, url: str) -> bytes:
        bucket, key = url.removeprefix("s3://").split("/", 1)
        if "s3" in self.endpoints:  # an emulator: path-style
            target = f"{self.endpoints['s3']}/{bucket}/{key}"
        else:
            target = f"https://{bucket}.s3.{self.region}.amazonaws.com/{key}"
        return self.call("GET", target, "s3")

    def secret(self, reference: str) -> str:
        parameter = PARAMETER_ARN.match(reference)
        if parameter:
            found = self.json_call("ssm", {"Name": parameter["name"], "WithDecryption": True})
            return found["Parameter"]["Value"]
        return self.json_call("secretsmanager", {"SecretId": reference})["SecretString"]

    def registry_login(self, host: str) -> tuple[str, str]:
        """ECR: a 12-hour token exchanged at boot for this instance's own pulls."""
        data = self.json_call("ecr", {})["authorizationData"][0]
        username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
        return username, password


# --- GCP: the service account's access token ---------------------------------------------


class Gcp:
    def __init__(self, source: dict[str, Any]) -> None:
        metadata = source.get("metadata_url") or "http://metadata.google.internal"
        self.endpoints = source.get("endpoints") or {}
        answer = request(
            f"{metadata}/computeMetadata/v1/instance/service-accounts/default/token",
            headers={"Metadata-Flavor": "Google"},
        )
        self.token = json.loads(answer)["access_token"]

    def get(self, url: str) -> bytes:
        return request(url, headers={"Authorization": f"Bearer {self.token}"})

    def get_object(self, url: str) -> bytes:
        bucket, name = url.removeprefix("gs://").split("/", 1)
        base = self.endpoints.get("storage", "https://storage.googleapis.com")
        return self.get(
            f"{base}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media"
        )

    def secret(self, reference: str) -> str:
        if "/versions/" not in reference:
            reference += "/versions/latest"
        base = self.endpoints.get("secretmanager", "https://secretmanager.googleapis.com")
        answer = json.loads(self.get(f"{base}/v1/{reference}:access"))
        return base64.b64decode(answer["payload"]["data"]).decode()

    def registry_login(self, host: str) -> tuple[str, str]:
        """Artifact Registry: the service account's access token is the password."""
        return "oauth2accesstoken", self.token


# --- Azure: the user-assigned managed identity's tokens ----------------------------------


# A new role assignment takes minutes to reach the data planes: a 403 until then (about
# eight and a half minutes of back-off before the fetcher gives up).
RBAC_ATTEMPTS = 10
RBAC_PENDING = frozenset({403})


class Azure:
    def __init__(self, source: dict[str, Any]) -> None:
        self.metadata = source.get("metadata_url") or "http://169.254.169.254"
        self.client_id = source.get("identity_client_id", "")
        self.endpoints = source.get("endpoints") or {}  # blob, keyvault, acr
        self.tokens: dict[str, str] = {}

    def at(self, service: str, url: str) -> str:
        """URL, or in an emulator of SERVICE its path-style form: <endpoint>/<account><path>
        (the account, vault or registry is the first label of URL's host)."""
        base = self.endpoints.get(service)
        if not base:
            return url
        parts = urllib.parse.urlsplit(url)
        return f"{base.rstrip('/')}/{(parts.hostname or '').split('.')[0]}{parts.path}"

    def token(self, resource: str) -> str:
        if resource not in self.tokens:
            query = urllib.parse.urlencode(
                {"api-version": "2018-02-01", "resource": resource, "client_id": self.client_id}
            )
            answer = request(
                f"{self.metadata}/metadata/identity/oauth2/token?{query}",
                headers={"Metadata": "true"},
            )
            self.tokens[resource] = json.loads(answer)["access_token"]
        return self.tokens[resource]

    def get_object(self, url: str) -> bytes:
        headers = {
            "Authorization": f"Bearer {self.token('https://storage.azure.com/')}",
            "x-ms-version": "2021-08-06",
        }
        return self.granted(self.at("blob", url), headers)

    def secret(self, reference: str) -> str:
        headers = {"Authorization": f"Bearer {self.token('https://vault.azure.net')}"}
        url = self.at("keyvault", reference.rstrip("/"))
        return json.loads(self.granted(f"{url}?api-version=7.4", headers))["value"]

    def granted(self, url: str, headers: dict[str, str]) -> bytes:
        """A GET this identity's role assignments allow, once they have propagated."""
        return request(url, headers=headers, attempts=RBAC_ATTEMPTS, retry_statuses=RBAC_PENDING)

    def registry_login(self, host: str) -> tuple[str, str]:
        """ACR: the identity's AAD token exchanged for a registry refresh token."""
        form = urllib.parse.urlencode(
            {
                "grant_type": "access_token",
                "service": host,
                "access_token": self.token("https://management.azure.com/"),
            }
        ).encode()
        answer = request(
            self.at("acr", f"https://{host}/oauth2/exchange"),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=form,
        )
        return "00000000-0000-0000-0000-000000000000", json.loads(answer)["refresh_token"]


CLOUDS = {"aws": Aws, "gcp": Gcp, "azure": Azure}


# --- the boot ----------------------------------------------------------------------------


def unpack(blob: bytes, boot_dir: str) -> None:
    """The payload's files (payload.read_payload's format) written under BOOT_DIR."""
    data = lzma.decompress(blob)
    offset = 0
    while offset < len(data):
        end = data.index(b"\n", offset)
        mode, size, name = data[offset:end].decode().split(" ", 2)
        start, size = end + 1, int(size)
        path = os.path.join(boot_dir, name)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, int(mode, 8))
        os.write(fd, data[start : start + size])
        os.close(fd)
        offset = start + size


def unsafe_yaml(variables: dict[str, Any]) -> str:
    """VARIABLES as YAML that Ansible never templates (a password may hold "{{"): each
    string a JSON-escaped double-quoted scalar, which YAML reads the same, tagged !unsafe."""

    def scalar(value: str) -> str:
        return f"!unsafe {json.dumps(value)}"

    lines = []
    for name, value in variables.items():
        if isinstance(value, list):
            lines.append(f"{name}:" + ("" if value else " []"))
            lines += [f"  - {scalar(item)}" for item in value]
        else:
            lines.append(f"{name}: {scalar(value)}")
    return "\n".join(lines) + "\n"


def read_secret(cloud: Any, reference: str | list[str]) -> Any:
    """The value of REFERENCE (a list of references: the list of values)."""
    if isinstance(reference, list):
        return [cloud.secret(item) for item in reference]
    return cloud.secret(reference)


def read_secrets(cloud: Any, source: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        variable: read_secret(cloud, reference)
        for variable, reference in source.get("secrets", {}).items()
    }
    registry = source.get("registry")
    if registry:
        username, password = cloud.registry_login(registry["host"])
        found["model_service_registry"] = registry["host"]
        found["model_service_registry_username"] = username
        found["model_service_registry_password"] = password
    return found


def write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def fetch(source: dict[str, Any], boot_dir: str) -> None:
    """Steps 1-3 (no run): the payload unpacked and secrets.yml written in BOOT_DIR."""
    cloud = CLOUDS[source["cloud"]](source)
    payload = source.get("payload")
    if payload:
        blob = cloud.get_object(payload["url"])
        if hashlib.sha256(blob).hexdigest() != payload["sha256"]:
            raise SystemExit(f"mlops-vm boot: {payload['url']} is not the payload expected")
        unpack(blob, boot_dir)
    secrets = read_secrets(cloud, source)
    if secrets:
        write_private(os.path.join(boot_dir, "secrets.yml"), unsafe_yaml(secrets))


# --- a baked instance: the secrets applied without Ansible ------------------------------

API_KEYS_VARIABLE = "nginx_proxy_api_keys"
PASSWORD_VARIABLE = "model_service_registry_password"
# The nginx_proxy role's check of a key (tasks/main.yml): nothing Nginx could misread.
API_KEY = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")


def api_keys_conf(keys: list[str], header: str) -> str:
    """Nginx's API keys file, as roles/nginx_proxy/templates/api-keys.conf.j2 renders it
    (re.escape is Ansible's regex_escape): the baked Nginx includes it."""
    for position, key in enumerate(keys):
        if not isinstance(key, str) or not API_KEY.match(key):
            raise SystemExit(
                f"mlops-vm boot: {API_KEYS_VARIABLE}[{position}] is not an API key "
                "(16 to 256 characters of A-Z a-z 0-9 . _ ~ + / = -)"
            )
    variable = header.lower().replace("-", "_")
    bearer = "".join(f'    "~^(?i:bearer)\\ {re.escape(key)}$" 1;\n' for key in keys)
    plain = "".join(f'    "~^{re.escape(key)}$" 1;\n' for key in keys)
    return (
        "# mlops-vm: written at boot by the instance's boot hook (fetch_script.py)\n"
        "# API keys nginx_proxy accepts ($nginx_proxy_api_key_ok is 1 for a request that\n"
        "# carries one). Case-sensitive, whole-value matches.\n"
        "map $http_authorization $nginx_proxy_bearer_key_ok {\n"
        f"    default 0;\n{bearer}}}\n\n"
        f"map $http_{variable} $nginx_proxy_api_key_ok {{\n"
        f"    default $nginx_proxy_bearer_key_ok;\n{plain}}}\n"
    )


def run_command(command: list[str], stdin: str | None = None) -> int:
    """COMMAND's exit status; its output goes to the boot log (never a secret: a password
    only ever goes to stdin)."""
    return subprocess.run(command, input=stdin, text=True, check=False).returncode


def registry_credentials(
    cloud: Any, source: dict[str, Any], baked: dict[str, Any]
) -> tuple[str, str, str] | None:
    """(host, username, password) to pull the model with, or None: by the instance's
    identity (ECR and the like), else the password reference read now."""
    registry = source.get("registry")
    if registry:
        return (registry["host"], *cloud.registry_login(registry["host"]))
    reference = source.get("secrets", {}).get(PASSWORD_VARIABLE)
    if reference and baked.get("registry_host"):
        return baked["registry_host"], baked["registry_username"], read_secret(cloud, reference)
    return None


def apply_baked(cloud: Any, source: dict[str, Any], run: Any = None) -> None:
    """A baked instance's boot: the API keys into the file the baked Nginx includes (then a
    reload), and the model pulled again only when the image lacks it (a registry login
    first, by identity or with the password read now). RUN: run_command, or a test's."""
    run = run or run_command
    baked = source.get("baked") or {}
    reference = source.get("secrets", {}).get(API_KEYS_VARIABLE)
    if reference is not None:
        keys = read_secret(cloud, reference)
        keys = keys if isinstance(keys, list) else [keys]
        write_private(baked["api_keys_file"], api_keys_conf(keys, baked["api_key_header"]))
        if run(["systemctl", "reload-or-restart", "nginx"]) != 0:
            raise SystemExit("mlops-vm boot: Nginx did not reload with the API keys")
    image = baked.get("model_image")
    if not image or run(["docker", "image", "inspect", image]) == 0:
        return
    login = registry_credentials(cloud, source, baked)
    if login:
        host, username, password = login
        command = ["docker", "login", host, "--username", username, "--password-stdin"]
        if run(command, stdin=password) != 0:
            raise SystemExit(f"mlops-vm boot: the registry login to {host} failed")
    if run(["docker", "pull", image]) != 0:
        raise SystemExit(f"mlops-vm boot: could not pull {image}")


def main(argv: list[str]) -> int:
    source_path = argv[1]
    with open(source_path) as handle:
        source = json.load(handle)
    boot_dir = os.path.dirname(os.path.abspath(source_path))
    os.umask(0o077)
    if len(argv) > 2 and argv[2] == "--baked":
        apply_baked(CLOUDS[source["cloud"]](source), source)
        return 0
    fetch(source, boot_dir)
    if len(argv) > 2 and argv[2] == "--fetch-only":
        return 0
    return subprocess.call(["sh", os.path.join(boot_dir, "run.sh")])


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""AWS error codes classified into ErrorCode, each with a hint a person can act on.

botocore raises ClientError with the service's error code ("UnauthorizedOperation",
"InstanceLimitExceeded", ...); connection problems arrive as other botocore exceptions.
`translate` turns any of them into a ProvisionError; `is_transient` says which ones the
retry wrapper tries again (throttling, 5xx, dropped connections).
"""

from mlops_vm.provision.errors import ErrorCode, ProvisionError
from mlops_vm.provision.retry import notes_of, parse_retry_after

PROVIDER = "aws"

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
    }
)
SERVER_ERROR_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidAccessKeyId",
        "OptInRequired",
    }
)
PERMISSION_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedAccess",
        "Blocked",
    }
)
QUOTA_CODES = frozenset(
    {
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "LimitExceeded",
        "LimitExceededException",
        "VpcLimitExceeded",
        "AddressLimitExceeded",
        "InternetGatewayLimitExceeded",
        "RouteTableLimitExceeded",
        "SecurityGroupLimitExceeded",
        "RulesPerSecurityGroupLimitExceeded",
        "SubnetLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "TooManyLoadBalancers",
        "TooManyTargetGroups",
        "TooManyListeners",
        "TooManyTargets",
        "TooManyRules",
        "TooManyCertificates",
        "TooManyTags",
        "ResourceLimitExceeded",
        "ServiceLinkedRoleFailure",
    }
)
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientFreeAddressesInSubnet",
        "Unsupported",
        "UnsupportedOperation",
        "InstanceTypeNotSupported",
    }
)
CONFLICT_CODES = frozenset(
    {
        "DependencyViolation",
        "ResourceInUse",
        "ResourceInUseException",
        "ResourceInUseFault",
        "InvalidGroup.Duplicate",
        "InvalidPermission.Duplicate",
        "DuplicateLoadBalancerName",
        "DuplicateTargetGroupName",
        "DuplicateListener",
        "AlreadyExists",
        "AlreadyExistsFault",
        "AlreadyExistsException",
        "IncorrectState",
        "IncorrectInstanceState",
        "Resource.AlreadyAssociated",
        "ScalingActivityInProgress",
        "ScalingActivityInProgressFault",
        "InstanceRefreshInProgress",
        "InstanceRefreshInProgressFault",
    }
)
INVALID_INPUT_CODES = frozenset(
    {
        "InvalidParameter",
        "InvalidInstanceType",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "InvalidParameterException",
        "MissingParameter",
        "ValidationError",
        "ValidationException",
        "InvalidConfigurationRequest",
        "InvalidAMIID.Malformed",
        "InvalidSubnet.Range",
        "InvalidVpc.Range",
        "InvalidKeyPair.Format",
        "InvalidUserData.Malformed",
    }
)

HINTS: dict[ErrorCode, str] = {
    ErrorCode.AUTH: (
        "check the AWS credentials of the standard chain (AWS_PROFILE / AWS_ACCESS_KEY_ID, "
        "~/.aws/credentials, SSO login, instance role): `aws sts get-caller-identity` must work"
    ),
    ErrorCode.PERMISSION: (
        "the credentials work but lack this permission: grant the named action to the "
        "IAM user/role (see the message for the action), or use another profile"
    ),
    ErrorCode.QUOTA: (
        "an account quota is used up: free resources in this region or ask for a higher "
        "limit in the Service Quotas console"
    ),
    ErrorCode.CAPACITY: (
        "AWS has no capacity for this instance type here right now: try other zones "
        "(FleetSpec.zones), another instance type, or retry later"
    ),
    ErrorCode.NOT_FOUND: "the resource does not exist (any more): check the ID and the region",
    ErrorCode.CONFLICT: (
        "the resource exists already or is still in use: wait a minute and run again, or "
        "remove what holds it"
    ),
    ErrorCode.THROTTLED: (
        "AWS kept throttling the requests: run again later, or raise the retry_budget_s option"
    ),
    ErrorCode.INVALID_INPUT: "AWS refused the input: fix the value the message names",
    ErrorCode.INTERNAL: "an error on the AWS side or on the way to it: run again",
}


def error_code(error: BaseException) -> str:
    """The service error code of a botocore ClientError, "" for anything else."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def error_message(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return f"{error_code(error)}: {message}"
    return str(error) or type(error).__name__


def http_status(error: BaseException) -> int:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def retry_after_s(error: BaseException) -> float | None:
    """The wait AWS asked for (a Retry-After header), if it asked; most AWS services do not,
    and their throttling is then met by the jittered backoff alone."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    return parse_retry_after(response.get("ResponseMetadata", {}).get("HTTPHeaders"))


def is_connection_error(error: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(error, BotoConnectionError | HTTPClientError)


def is_transient(error: BaseException) -> bool:
    """Throttling, server errors and dropped connections are worth another try."""
    code = error_code(error)
    return (
        code in THROTTLING_CODES
        or code in SERVER_ERROR_CODES
        or http_status(error) >= 500
        or is_connection_error(error)
    )


def classify(error: BaseException) -> ErrorCode:
    from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return ErrorCode.AUTH
    if isinstance(error, NoRegionError):
        return ErrorCode.INVALID_INPUT
    code = error_code(error)
    if code in THROTTLING_CODES:
        return ErrorCode.THROTTLED
    if is_not_found(error):
        return ErrorCode.NOT_FOUND
    return class_of_code(code) or ErrorCode.INTERNAL


def class_of_code(code: str) -> ErrorCode | None:
    """The class of an AWS error code, None for a code this module does not know."""
    for codes, classified in (
        (AUTH_CODES, ErrorCode.AUTH),
        (PERMISSION_CODES, ErrorCode.PERMISSION),
        (QUOTA_CODES, ErrorCode.QUOTA),
        (CAPACITY_CODES, ErrorCode.CAPACITY),
        (CONFLICT_CODES, ErrorCode.CONFLICT),
        (INVALID_INPUT_CODES, ErrorCode.INVALID_INPUT),
    ):
        if code in codes:
            return classified
    if code.endswith("LimitExceeded"):
        return ErrorCode.QUOTA
    if code.startswith("Invalid") and code.endswith((".Malformed", ".NotFound")):
        return ErrorCode.INVALID_INPUT
    return None


# How a launch failure reads when AWS gives only prose (a scaling activity's StatusMessage).
TEXT_CLASSES: tuple[tuple[tuple[str, ...], ErrorCode], ...] = (
    (("limit", "quota"), ErrorCode.QUOTA),  # "more vCPU capacity than your limit" is quota
    (("capacity", "insufficient"), ErrorCode.CAPACITY),
    (("does not exist", "invalid", "not supported", "not valid"), ErrorCode.INVALID_INPUT),
    (("not authorized", "unauthorized", "access denied"), ErrorCode.PERMISSION),
)


def classify_text(message: str) -> ErrorCode:
    """The class of a failure AWS describes in words: an error code named in it first
    (InsufficientInstanceCapacity, VcpuLimitExceeded, ...), else its wording."""
    for word in message.replace(":", " ").replace(",", " ").split():
        code = class_of_code(word.strip(".()'\""))
        if code is not None:
            return code
    lowered = message.lower()
    for words, code in TEXT_CLASSES:
        if any(word in lowered for word in words):
            return code
    return ErrorCode.INTERNAL


def is_not_found(error: BaseException) -> bool:
    """EC2 spells it InvalidVpcID.NotFound, ELB LoadBalancerNotFound, ACM
    ResourceNotFoundException, Auto Scaling a ValidationError that names the group."""
    code = error_code(error)
    if code.endswith(("NotFound", "NotFoundException", "NotFoundFault")):
        return True
    if code in {"NoSuchEntity", "ResourceNotFoundException", "InvalidGroup.NotFound"}:
        return True
    # S3: a HEAD has no body, so only its status; a GET names the key or the bucket.
    if code in {"404", "NoSuchKey", "NoSuchBucket"}:
        return True
    message = error_message(error).lower()
    return code == "ValidationError" and ("not found" in message or "does not exist" in message)


def translate(error: BaseException, operation: str) -> ProvisionError:
    """ERROR as a ProvisionError whose code and hint say what to do about it."""
    if isinstance(error, ProvisionError):
        return error
    code = classify(error)
    hint = HINTS.get(code, "")
    if is_connection_error(error):
        hint = "AWS could not be reached: check the network, the region and endpoint_url"
    if code == ErrorCode.INVALID_INPUT and not error_code(error):
        hint = "set a region (ProviderSettings.region, AWS_REGION or the profile's region)"
    return ProvisionError(
        code,
        error_message(error) + notes_of(error),
        hint=hint,
        provider=PROVIDER,
        operation=operation,
    )


def failure(code: ErrorCode, message: str, hint: str, operation: str) -> ProvisionError:
    """The provider's own error of CODE (not an SDK error: `translate` maps those)."""
    return ProvisionError(code, message, hint=hint, provider=PROVIDER, operation=operation)


def invalid(message: str, hint: str, operation: str = "validate the input") -> ProvisionError:
    """Input AWS would refuse, caught before anything is created."""
    return failure(ErrorCode.INVALID_INPUT, message, hint, operation)

"""`python -m mlops_vm.localcloud`: build images and start the registry (idempotent)."""

import logging
import sys
import time

from mlops_vm.localcloud.setup import ensure_platform


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="platform: %(message)s", stream=sys.stdout)
    started = time.monotonic()
    result = ensure_platform()
    print(
        f"platform: ready in {time.monotonic() - started:.1f}s "
        f"(built: {', '.join(result['built']) or 'nothing'}; "
        f"pushed: {', '.join(result['pushed']) or 'nothing'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

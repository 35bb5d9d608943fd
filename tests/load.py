"""A steady request loop through an endpoint, counting every failed request.

Tests start it before a change to a running environment (release, rollback, node loss) and
stop it after; every request's outcome is kept, so a test can assert on each of them and
report how many failed and when. Traffic goes only to the endpoint given (127.0.0.1).
"""

import threading
import time
from dataclasses import dataclass, field

import httpx

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic()
    seconds: float
    status: int  # 0: no HTTP answer
    version: str  # X-Model-Version of the answer
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class RequestLoop:
    """THREADS clients, each sending POST /predict every INTERVAL_S seconds (keep-alive)."""

    endpoint: str
    ca_file: str
    threads: int = 2
    interval_s: float = 0.1
    timeout_s: float = 30.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]

    def _run(self) -> None:
        with httpx.Client(verify=self.ca_file, timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    answer = client.post(f"{self.endpoint}/predict", json={"instances": ROWS})
                    outcome = Outcome(
                        started,
                        time.monotonic() - started,
                        answer.status_code,
                        answer.headers.get("x-model-version", ""),
                        "" if answer.status_code == 200 else answer.text[:200],
                    )
                except httpx.HTTPError as error:
                    outcome = Outcome(started, time.monotonic() - started, 0, "", repr(error))
                with self._lock:
                    self.outcomes.append(outcome)
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def __enter__(self) -> "RequestLoop":
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout_s + 5)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def versions(self) -> list[str]:
        """The model versions answered, in order of the requests, repeats folded."""
        ordered = sorted((o for o in self.outcomes if o.ok), key=lambda o: o.started)
        folded: list[str] = []
        for outcome in ordered:
            if not folded or folded[-1] != outcome.version:
                folded.append(outcome.version)
        return folded

    def report(self) -> str:
        total = len(self.outcomes)
        failed = self.failures
        lines = [f"{len(failed)} failed of {total} requests"]
        lines += [f"  +{o.started:.1f}s {o.status} {o.error}" for o in failed[:10]]
        return "\n".join(lines)

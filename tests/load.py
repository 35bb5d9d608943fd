"""A steady request loop through an endpoint, counting every failed request.

Tests start it before a change to a running environment (release, rollback, node loss) and
stop it after; every request's outcome is kept (start, end, answer), so a test can assert
on each of them and report how many failed and when. Traffic goes only to the endpoint
given (127.0.0.1).
"""

import threading
import time
from dataclasses import dataclass, field

import httpx

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic()
    ended: float
    status: int  # 0: no HTTP answer
    version: str  # X-Model-Version of the answer
    detail: str = ""  # what went wrong

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.detail


@dataclass
class RequestLoop:
    """THREADS keep-alive clients, each sending POST /predict every INTERVAL_S seconds (or
    back to back with 0); a 200 counts only with one prediction per row sent."""

    endpoint: str
    ca_file: str
    threads: int = 2
    interval_s: float = 0.1
    timeout_s: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)  # e.g. the environment's API key
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]

    def _send(self, client: httpx.Client) -> Outcome:
        started = time.monotonic()
        try:
            answer = client.post(f"{self.endpoint}/predict", json={"instances": ROWS})
        except httpx.HTTPError as error:
            return Outcome(started, time.monotonic(), 0, "", f"{type(error).__name__}: {error}")
        detail = ""
        if answer.status_code != 200:
            detail = f"HTTP {answer.status_code}: {answer.text[:200]}"
        elif len(answer.json().get("predictions", [])) != len(ROWS):
            detail = f"wrong answer: {answer.text[:200]}"
        version = answer.headers.get("x-model-version", "")
        return Outcome(started, time.monotonic(), answer.status_code, version, detail)

    def _run(self) -> None:
        with httpx.Client(
            verify=self.ca_file, timeout=self.timeout_s, headers=self.headers
        ) as client:
            while not self._stop.is_set():
                outcome = self._send(client)
                with self._lock:
                    self.outcomes.append(outcome)
                self._stop.wait(max(0.0, self.interval_s - (outcome.ended - outcome.started)))

    def __enter__(self) -> "RequestLoop":
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout_s + 5)

    def wait_requests(self, more: int, timeout_s: float = 60.0) -> float:
        """Seconds until MORE requests than now have ended (answered or not); a window of
        traffic counted in requests, so a slow machine gets the same number of them."""
        start = time.monotonic()
        with self._lock:
            wanted = len(self.outcomes) + more
        while time.monotonic() - start < timeout_s:
            with self._lock:
                if len(self.outcomes) >= wanted:
                    return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"{more} requests did not end within {timeout_s}s: {self.summary()}")

    def failures(self, since: float = 0.0) -> list[Outcome]:
        """The failed requests that started at SINCE (time.monotonic()) or later."""
        with self._lock:
            return [o for o in self.outcomes if not o.ok and o.started >= since]

    def versions(self) -> list[str]:
        """The model versions answered, in order of the requests, repeats folded."""
        with self._lock:
            ordered = sorted((o for o in self.outcomes if o.ok), key=lambda o: o.started)
        folded: list[str] = []
        for outcome in ordered:
            if not folded or folded[-1] != outcome.version:
                folded.append(outcome.version)
        return folded

    def summary(self) -> str:
        with self._lock:
            outcomes = list(self.outcomes)
        failed = [o for o in outcomes if not o.ok]
        slowest = max((o.ended - o.started for o in outcomes), default=0.0)
        return (
            f"{len(outcomes)} requests, {len(failed)} failed "
            f"({sorted({o.detail for o in failed})}), slowest {slowest:.2f}s"
        )

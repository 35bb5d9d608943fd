"""The example model service, made worse on purpose (ASGI wrapper around app.main:app).

MODEL_SLOWDOWN=F: every POST /predict is answered F times slower, counting at least
MODEL_SLOWDOWN_BASE_MS of work (the image's setting; 50 ms by default): the example model
answers in about a millisecond, too little for a factor to show behind TLS and two proxies.
MODEL_ERROR_EVERY=N: every Nth POST /predict is answered 500 (exactly one in N).
Health and readiness answer as usual: the release is healthy and ready.
"""

import asyncio
import itertools
import os
import time

from app.main import MODEL_VERSION
from app.main import app as model_app

SLOWDOWN = float(os.environ.get("MODEL_SLOWDOWN", "1"))
BASE_S = float(os.environ.get("MODEL_SLOWDOWN_BASE_MS", "50")) / 1000
ERROR_EVERY = int(os.environ.get("MODEL_ERROR_EVERY", "0"))
predictions = itertools.count(1)


def is_prediction(scope: dict) -> bool:
    return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/predict"


async def internal_error(send) -> None:
    body = b'{"detail": "internal error (MODEL_ERROR_EVERY)"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-model-version", MODEL_VERSION.encode()),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if not is_prediction(scope):
        await model_app(scope, receive, send)
        return
    if ERROR_EVERY and next(predictions) % ERROR_EVERY == 0:
        await internal_error(send)
        return
    started = time.monotonic()
    held = []

    async def hold(message) -> None:
        held.append(message)  # sent once the slowed-down time has passed

    await model_app(scope, receive, hold)
    took = max(time.monotonic() - started, BASE_S)
    await asyncio.sleep((SLOWDOWN - 1) * took)
    for message in held:
        await send(message)

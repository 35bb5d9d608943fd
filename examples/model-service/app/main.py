"""The example model service: a scikit-learn model behind FastAPI.

POST /predict takes a batch of feature rows and returns one prediction per row.
GET /healthz says the process is up; GET /readyz says the model is loaded.
Every response carries the model version (header X-Model-Version), so a rolling update
can be watched from the outside.
"""

import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import joblib
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

MODEL_DIR = Path(os.environ.get("MODEL_DIR", "/opt/model"))
MODEL_VERSION = os.environ.get("MODEL_VERSION", "dev")
MAX_BATCH_ROWS = int(os.environ.get("MAX_BATCH_ROWS", "10000"))

log = logging.getLogger("model-service")


class PredictRequest(BaseModel):
    # strict: "1.5" (a string) is a wrong type, not a number to coerce.
    model_config = ConfigDict(strict=True, extra="forbid")

    instances: Annotated[list[list[float]], Field(min_length=1, max_length=MAX_BATCH_ROWS)]


class PredictResponse(BaseModel):
    predictions: list[Any]
    model_version: str


class ModelState:
    model: Any = None
    n_features: int = 0


state = ModelState()


def load_model() -> None:
    state.model = joblib.load(MODEL_DIR / "model.joblib")
    metadata = json.loads((MODEL_DIR / "metadata.json").read_text())
    state.n_features = int(metadata["n_features"])
    log.info("model %s loaded from %s", MODEL_VERSION, MODEL_DIR)


@asynccontextmanager
async def lifespan(_: FastAPI):
    load_model()
    yield


app = FastAPI(title="mlops-vm example model", version=MODEL_VERSION, lifespan=lifespan)


@app.middleware("http")
async def add_version_header(request: Request, call_next) -> Response:
    response = await call_next(request)
    response.headers["X-Model-Version"] = MODEL_VERSION
    return response


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "model_version": MODEL_VERSION}


@app.get("/readyz")
def readyz() -> JSONResponse:
    if state.model is None:
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({"status": "ready", "model_version": MODEL_VERSION})


@app.post("/predict", response_model=PredictResponse)
def predict(request: PredictRequest) -> Any:
    bad_rows = [i for i, row in enumerate(request.instances) if len(row) != state.n_features]
    if bad_rows:
        detail = [
            {
                "loc": ["body", "instances", i],
                "msg": f"expected {state.n_features} features, got {len(request.instances[i])}",
                "type": "wrong_feature_count",
            }
            for i in bad_rows[:10]
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    predictions = state.model.predict(request.instances)
    return {"predictions": predictions.tolist(), "model_version": MODEL_VERSION}

"""Predictions of a model: labels, top-k probabilities, OOD scores and the memory's neighbours."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, HTTPException

from erasable.service.dependencies import Caller, Service, permit
from erasable.service.routes.embeddings import request_embeddings
from erasable.service.schemas import NeighbourOut, Prediction, PredictRequest, PredictResponse, ScoredLabel

__all__ = ["MEMORY_NEIGHBOURS", "router"]

#: Neighbours returned with each prediction of a memory-head model when the request names no number.
MEMORY_NEIGHBOURS = 5

router = APIRouter(tags=["prediction"])


@router.post("/v1/models/{name}/predict")
def predict(name: str, body: PredictRequest, key: Caller, service: Service) -> PredictResponse:
    """Labels, top-k probabilities and OOD scores (``predict``); neighbours from the memory on request.

    All predictions of a request come from one committed state, named in the response;
    ``clipped`` counts the inputs out of the model's fixed-point range (clipped, unreliable).
    """
    permit(key, "predict", name)
    slot = service.served.get(name)
    vectors = request_embeddings(slot, body.vectors, body.vectors_base64, body.texts)
    want_neighbours = body.neighbours or (MEMORY_NEIGHBOURS if slot.model.config.head == "memory" else 0)
    with slot.reading():
        model = slot.model
        if model.count == 0:
            raise HTTPException(409, f"Model {name!r} has no samples yet: learn something first.")
        _, probabilities, ood = model.predictions(vectors)
        slot.keep_ridge_head()
        evidence = None
        if want_neighbours:
            evidence = model.memory().explain(model.head_inputs(vectors, "memory"), want_neighbours)
        classes, seq, certificate = model.classes, slot.seq, model.certificate()
    predictions = []
    for i, row in enumerate(probabilities):
        order = np.argsort(-row, kind="stable")[: body.top_k]
        predictions.append(
            Prediction(
                label=classes[int(order[0])],
                top=[ScoredLabel(label=classes[int(j)], probability=float(row[j])) for j in order],
                ood_score=float(ood[i]),
                neighbours=None if evidence is None else [NeighbourOut(**vars(n)) for n in evidence[i]],
            )
        )
    return PredictResponse(
        seq=seq, certificate=certificate, predictions=predictions, clipped=slot.model.clipped(vectors)
    )

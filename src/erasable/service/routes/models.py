"""The models of the service: create, list, describe and delete them (``/v1/models``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from erasable.config import ModelConfig
from erasable.service.dependencies import Caller, Service, permit
from erasable.service.schemas import CreateModelRequest, ModelInfo
from erasable.service.served import ServedModel

__all__ = ["router"]

router = APIRouter(tags=["models"])


@router.post("/v1/models", status_code=201)
def create_model(body: CreateModelRequest, key: Caller, service: Service) -> ModelInfo:
    """Create an empty model (``admin``): of vectors (``input_dim``) or of raw inputs (``encoder``)."""
    permit(key, "admin", body.name)
    params = body.model_dump(exclude={"name", "input_dim"})
    config = ModelConfig.from_parameters(body.input_dim, **params)
    slot = service.served.create(body.name, config)
    return _info(slot)


@router.get("/v1/models")
def list_models(key: Caller, service: Service) -> list[str]:
    """The names of the models this key may use."""
    return [name for name in service.served.names() if key.model in ("*", name)]


@router.get("/v1/models/{name}")
def model_info(name: str, key: Caller, service: Service) -> ModelInfo:
    """Sample count, classes, certificate and configuration of a model."""
    permit(key, "predict", name)
    slot = service.served.get(name)
    with slot.reading():
        return _info(slot)


@router.delete("/v1/models/{name}", status_code=204)
def delete_model(name: str, key: Caller, service: Service) -> Response:
    """Delete a model, its samples, its log and its keys (``admin``); their bytes are erased."""
    permit(key, "admin", name)
    service.served.delete(name)
    return Response(status_code=204)


def _info(slot: ServedModel) -> ModelInfo:
    """What the service tells of a served model (the caller holds its lock)."""
    model = slot.model
    return ModelInfo(
        name=slot.name,
        seq=slot.seq,
        count=model.count,
        classes=list(model.classes),
        certificate=model.certificate(),
        config=model.config.to_dict(),
    )

"""erasable.client against a real ``erasable serve`` (issue 14, item 9): every route, packed vectors, a learn
retried after its answer was lost (learned once), and refusals as exceptions carrying the server's message."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from erasable.client import (  # noqa: E402
    Client,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
)
from erasable.ledger.keys import KeyRing  # noqa: E402
from erasable.ledger.store import LedgerStore  # noqa: E402
from erasable.model import Model, ModelConfig  # noqa: E402
from erasable.service.process import ServerProcess  # noqa: E402
from tests.conftest import unit_rows  # noqa: E402

DIM, N = 8, 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("client")
    store = LedgerStore(folder / "ledger.db")
    token, _ = KeyRing(store).create(scopes=["admin"])
    store.close()
    with ServerProcess(folder / "ledger.db", log=folder / "server.log") as running:
        yield running.url, token


@pytest.fixture(scope="module")
def data() -> dict[str, list]:
    rng = np.random.default_rng(7)
    return {
        "vectors": unit_rows(rng, N, DIM).tolist(),
        "labels": [("a", "b", "c")[i % 3] for i in range(N)],
        "ids": [f"s{i}" for i in range(N)],
        "subjects": [f"u{i % 5}" for i in range(N)],
    }


class LosesFirstAnswer(httpx.HTTPTransport):
    """Delivers the first learn request to the server, then drops its answer (a timeout, as the client sees it)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        if request.url.path.endswith("/learn"):
            self.sent += 1
            if self.sent == 1:
                answer.read()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return answer


def test_every_route_through_the_client(server: tuple[str, str], data: dict[str, list]) -> None:
    url, token = server
    with Client(url, token) as service:
        assert service.health()["status"] == "ok"
        info = service.create_model("bank", input_dim=DIM, feature_map="random_relu", width=64)
        assert (info.name, info.count) == ("bank", 0) and "bank" in service.list_models()
        learnt = service.learn("bank", ids=data["ids"], labels=data["labels"], vectors=data["vectors"],
                               subjects=data["subjects"], source="tests")  # fmt: skip
        assert learnt.count == N
        packed = service.predict("bank", vectors=data["vectors"][:4], top_k=2)
        plain = service.predict("bank", vectors=data["vectors"][:4], top_k=2, packed=False)
        assert [p.label for p in packed.predictions] == [p.label for p in plain.predictions]
        assert packed.clipped == 0 and len(packed.predictions[0].top) == 2
        assert "erasable" in service.metrics()

        receipt = service.forget("bank", subjects=["u1"])
        kept = [i for i, s in enumerate(data["subjects"]) if s != "u1"]
        refit = Model(ModelConfig.from_dict(service.model_info("bank").config))
        refit.learn(np.asarray(data["vectors"])[kept], np.asarray(data["labels"])[kept])
        assert receipt.count == N - len(kept) and receipt.certificate_after == refit.certificate()
        assert service.verify("bank")["ok"] is True
        kinds = [e["event"]["kind"] for e in service.events("bank")]
        assert kinds == ["create", "learn", "forget"] and service.events("bank", kind="forget")[0]["seq"] == 3
        assert service.receipt("bank", 3)["event"]["count"] == receipt.count
        assert service.samples("bank", subject="u2")["count"] == sum(s == "u2" for s in data["subjects"])
        assert service.whoami()["scopes"] == ["admin"] and service.overview()[0]["name"] == "bank"

        steered = service.steer("bank", subjects={"u2": 0.5})
        assert [(w.subject, w.weight) for w in steered.subjects] == [("u2", 0.5)]
        assert service.steering("bank").subjects == steered.subjects
        service.delete_model("bank")
        assert "bank" not in service.list_models()


def test_a_learn_whose_answer_was_lost_is_retried_and_learned_once(
    server: tuple[str, str], data: dict[str, list]
) -> None:
    url, token = server
    transport = LosesFirstAnswer()
    with Client(url, token, transport=transport, backoff=0.01) as service:
        service.create_model("retry", input_dim=DIM, feature_map="identity")
        answer = service.learn("retry", ids=data["ids"], labels=data["labels"], vectors=data["vectors"])
        assert transport.sent == 2  # the first answer was lost, the retry got the first one's
        assert answer.count == N and service.model_info("retry").count == N
        assert [e["event"]["kind"] for e in service.events("retry")] == ["create", "learn"]


def test_refusals_are_exceptions_with_the_servers_message(server: tuple[str, str], data: dict[str, list]) -> None:
    url, token = server
    with Client(url, token) as service:
        service.create_model("errors", input_dim=DIM, feature_map="identity")
        with pytest.raises(ConflictError, match="no samples yet"):
            service.predict("errors", vectors=data["vectors"][:1])
        service.learn("errors", ids=data["ids"][:3], labels=data["labels"][:3], vectors=data["vectors"][:3])
        with pytest.raises(InvalidRequestError, match="already learned") as refused:
            service.learn("errors", ids=data["ids"][:1], labels=["a"], vectors=data["vectors"][:1])
        assert refused.value.status == 422
        with pytest.raises(NotFoundError, match="nowhere"):
            service.model_info("nowhere")
        with pytest.raises(InvalidRequestError, match="must hold 8 float32 values"):
            service.predict("errors", vectors=np.zeros((1, DIM + 1)))
        with pytest.raises(ConflictError):
            service.create_model("errors", input_dim=DIM)
    with Client(url, "not-a-key") as stranger, pytest.raises(UnauthorizedError, match="API key"):
        stranger.list_models()
    with pytest.raises(ValueError, match="either vectors or texts"):
        Client(url, token).predict("errors")


def test_a_server_that_is_not_there_is_reported() -> None:
    from erasable.service.process import free_port

    with (
        Client(f"http://127.0.0.1:{free_port()}", "t", retries=2, backoff=0.01) as service,
        pytest.raises(httpx.ConnectError),
    ):
        service.health()

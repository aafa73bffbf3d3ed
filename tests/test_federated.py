"""Federated merging and secure aggregation: exact, order independent, refusing what does not fit."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from erasable.federated import (
    ClientStatistics,
    Correction,
    DiffieHellman,
    FederationError,
    MaskedContribution,
    Round,
    SecureAggregationClient,
    aggregate,
    export_statistics,
    load_statistics,
    mask_stream,
    merge,
)
from erasable.model import Model, ModelConfig
from erasable.model_file import ModelFileError, save_model
from tests.conftest import relu_config, unit_rows

DIM = 6
CLASSES = ("cat", "dog", "eel", "fox")
ENCODER = "toy@1#sha256:" + "ab" * 32


def _client_data(seed: int, n: int, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return unit_rows(rng, n, DIM), np.array(classes)[rng.integers(0, len(classes), n)]


@pytest.fixture
def clients() -> list[Model]:
    """Four clients of uneven sizes; the last one never saw 'fox'."""
    models = []
    for seed, (n, classes) in enumerate([(30, CLASSES), (7, CLASSES), (55, CLASSES), (12, CLASSES[:3])]):
        model = Model(relu_config(DIM, width=16))
        model.learn(*_client_data(seed, n, classes))
        models.append(model)
    return models


def _pooled(config: ModelConfig, seeds: list[int]) -> Model:
    pooled = Model(config)
    for seed, (n, classes) in enumerate([(30, CLASSES), (7, CLASSES), (55, CLASSES), (12, CLASSES[:3])]):
        if seed in seeds:
            pooled.learn(*_client_data(seed, n, classes))
    return pooled


def test_export_round_trip_keeps_statistics_and_encoder(clients: list[Model], tmp_path: Path) -> None:
    path = tmp_path / "client.moments"
    export_statistics(clients[0], path, encoder=ENCODER)
    loaded = load_statistics(path)
    assert loaded.encoder == ENCODER and loaded.config == clients[0].config
    assert loaded.statistics.equals(ClientStatistics.from_model(clients[0]).statistics)
    assert loaded.certificate() == clients[0].certificate()
    assert b"s0" not in path.read_bytes()  # statistics only: no ids, subjects or embeddings


def test_identity_feature_map_exports_embedding_moments_only(tmp_path: Path) -> None:
    model = Model(ModelConfig(input_dim=DIM))
    model.learn(*_client_data(0, 10, CLASSES))
    export_statistics(model, tmp_path / "identity.moments")
    loaded = load_statistics(tmp_path / "identity.moments")
    assert loaded.statistics.features is None and loaded.certificate() == model.certificate()


def test_tampered_and_foreign_files_are_refused(clients: list[Model], tmp_path: Path) -> None:
    path = tmp_path / "client.moments"
    export_statistics(clients[0], path)
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="digest mismatch"):
        load_statistics(path)
    save_model(clients[0], tmp_path / "model.erasable")
    with pytest.raises(ModelFileError, match="not an erasable-moments file"):
        load_statistics(tmp_path / "model.erasable")


def test_merge_is_exact_in_any_order(clients: list[Model], tmp_path: Path) -> None:
    exports = []
    for i, model in enumerate(clients):
        export_statistics(model, tmp_path / f"{i}.moments", encoder=ENCODER)
        exports.append(load_statistics(tmp_path / f"{i}.moments"))
    pooled = _pooled(clients[0].config, [0, 1, 2, 3])
    certificates = {merge(order).certificate() for order in itertools.permutations(exports)}
    assert certificates == {pooled.certificate()}
    server = merge(exports).to_model()
    x = unit_rows(np.random.default_rng(7), 5, DIM)
    np.testing.assert_array_equal(server.predict_proba(x), pooled.predict_proba(x))


def test_a_model_of_statistics_alone_refuses_a_file_and_a_dual_head_it_cannot_have(
    clients: list[Model], tmp_path: Path
) -> None:
    """A to_model() has no samples: a model file of it would not load, and a dual ridge head needs them."""
    server = merge([ClientStatistics.from_model(m) for m in clients]).to_model()
    with pytest.raises(ModelFileError, match=r"statistics of \d+ samples but 0 of the samples"):
        save_model(server, tmp_path / "server.erasable")
    assert not (tmp_path / "server.erasable").exists()
    few = Model(relu_config(DIM, width=512, alpha=0.5))  # n <= D / 4: solved in the dual, from the samples
    few.learn(*_client_data(3, 6, CLASSES))
    with pytest.raises(ValueError, match="solved in the dual, from the samples, and this model holds 0 of its"):
        ClientStatistics.from_model(few).to_model().predict_proba(unit_rows(np.random.default_rng(1), 2, DIM))


def test_withdrawing_a_client_subtracts_it_exactly(clients: list[Model]) -> None:
    stats = [ClientStatistics.from_model(m) for m in clients]
    without_second = merge(stats) - stats[1]
    assert without_second.certificate() == _pooled(clients[0].config, [0, 2, 3]).certificate()


def test_mismatched_configs_and_encoders_are_refused(clients: list[Model]) -> None:
    other = Model(relu_config(DIM, width=16, alpha=0.5))
    other.learn(*_client_data(9, 5, CLASSES))
    with pytest.raises(FederationError, match=r"different model configs \(differ in \['alpha'\]\)"):
        merge([ClientStatistics.from_model(clients[0]), ClientStatistics.from_model(other)])
    with pytest.raises(FederationError, match="different encoders"):
        merge([ClientStatistics.from_model(clients[0], ENCODER), ClientStatistics.from_model(clients[1], "other@2")])


def test_masks_are_a_stable_counter_mode_stream() -> None:
    assert mask_stream(b"erasable", 3).tolist() == [4891864902374808332, 6681666833644758056, 11267682744699125141]
    long = mask_stream(b"erasable", (1 << 17) + 5)  # crosses a 1 MiB block boundary
    assert long[:3].tolist() == mask_stream(b"erasable", 3).tolist()
    assert long[1 << 17] != long[0]


def _round(names: list[str], config: ModelConfig, **kwargs: object) -> tuple[Round, dict[str, SecureAggregationClient]]:
    keys = {name: DiffieHellman() for name in names}
    round_ = Round("round-1", config, CLASSES, {n: k.public_key() for n, k in keys.items()}, **kwargs)  # type: ignore[arg-type]
    return round_, {n: SecureAggregationClient(n, k) for n, k in keys.items()}


def test_secure_aggregation_reveals_only_the_exact_sum(clients: list[Model]) -> None:
    names = ["ana", "ben", "cy", "dee"]
    round_, parties = _round(names, clients[0].config)
    stats = [ClientStatistics.from_model(m) for m in clients]
    masked = [parties[n].masked(round_, s) for n, s in zip(names, stats, strict=True)]
    for contribution, s in zip(masked, stats, strict=True):
        plain = round_.flatten(s)
        assert np.mean(contribution.vector == plain) < 0.01  # nothing of the statistics shows through
        assert np.mean(contribution.vector >= 2**63) > 0.4  # high bits set: uniform in Z/2**64
    result = aggregate(round_, masked[::-1])
    assert result.statistics.equals(merge(stats).statistics)
    assert result.certificate() == _pooled(clients[0].config, [0, 1, 2, 3]).certificate()


def test_dropouts_are_recovered_by_mask_reveal(clients: list[Model]) -> None:
    names = ["ana", "ben", "cy", "dee"]
    round_, parties = _round(names, clients[0].config)
    stats = dict(zip(names, (ClientStatistics.from_model(m) for m in clients), strict=True))
    survivors = ["ana", "cy", "dee"]
    masked = [parties[n].masked(round_, stats[n]) for n in survivors]
    with pytest.raises(FederationError, match=r"\['ben'\] dropped: every survivor must send a correction"):
        aggregate(round_, masked)
    corrections = [parties[n].correction(round_, ["ben"]) for n in survivors]
    result = aggregate(round_, masked, corrections)
    assert result.certificate() == _pooled(clients[0].config, [0, 2, 3]).certificate()


def test_clients_refuse_unsafe_or_foreign_requests(clients: list[Model]) -> None:
    round_, parties = _round(["ana", "ben", "cy"], clients[0].config, min_survivors=2)
    with pytest.raises(FederationError, match="fewer than 2 participants would remain"):
        parties["ana"].correction(round_, ["ben", "cy"])
    outsider = SecureAggregationClient("ana", DiffieHellman())
    with pytest.raises(FederationError, match="not a participant"):
        outsider.masked(round_, ClientStatistics.from_model(clients[0]))
    narrow = Round("round-2", clients[0].config, ("cat", "dog"), round_.public_keys)
    with pytest.raises(FederationError, match=r"outside the round's class list: \['eel', 'fox'\]"):
        parties["ana"].masked(narrow, ClientStatistics.from_model(clients[0]))
    with pytest.raises(FederationError, match="different encoders"):
        parties["ana"].masked(round_, ClientStatistics.from_model(clients[0], ENCODER))


def test_server_refuses_inconsistent_messages(clients: list[Model]) -> None:
    round_, parties = _round(["ana", "ben"], clients[0].config)
    masked = [
        parties[n].masked(round_, ClientStatistics.from_model(m))
        for n, m in zip(["ana", "ben"], clients[:2], strict=True)
    ]
    foreign = MaskedContribution("ben", "round-0", masked[1].vector)
    with pytest.raises(FederationError, match="another round"):
        aggregate(round_, [masked[0], foreign])
    with pytest.raises(FederationError, match="distinct participants"):
        aggregate(round_, [masked[0], masked[0]])
    with pytest.raises(FederationError, match="Only 1 contributions; the round needs 2"):
        aggregate(round_, masked[:1], [Correction("ana", "round-1", ("ben",), masked[0].vector)])
    other_round = Round("round-x", round_.config, round_.classes, round_.public_keys)
    stale = parties["ben"].masked(other_round, ClientStatistics.from_model(clients[1]))
    with pytest.raises(FederationError, match="masks did not cancel"):
        aggregate(round_, [masked[0], MaskedContribution("ben", "round-1", stale.vector)])

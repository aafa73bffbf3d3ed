"""Continual and federated learning: erasable against gradient-trained baselines (issue 6).

Protocols (:mod:`erasable.audit.protocols`), on BANKING77 sentence embeddings and on Fashion-MNIST
pixels (scaled to [0, 1], rows L2-normalised):

* class-incremental B0 (5 equal phases) and B50 (half of the classes, then 5 phases);
* generalized class-incremental (5 phases, new and old classes mixed, Dirichlet-imbalanced);
* federated: 5 non-IID clients (Dirichlet 0.5 over classes), merged once vs centralized.

Methods: erasable (ridge on random ReLU features; prototype), and on the same inputs a one-hidden-layer
MLP head trained with Adam (:mod:`baselines.continual`): joint training (upper bound), fine-tuning, EWC,
LwF, experience replay (reservoir buffer), nearest class mean; for the federated protocol FedAvg of
linear heads (one round, several rounds). Hyper-parameters come from a small validation search
(B0, seed 0, 20% of the training samples held out), reported with the results.

Metrics (:mod:`erasable.audit.continual`): average incremental accuracy, last accuracy, forgetting
(Chaudhry et al. 2018), mean ± std over seeds; erasable's incremental certificate compared with a
from-scratch fit on the same samples. Writes ``benchmarks/results/continual.md`` and PNG plots.

    python benchmarks/bench_continual.py [--quick] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib
import numpy as np
from numpy.typing import NDArray

from baselines.continual import EWC, NCM, FineTune, HeadSpec, Joint, Learner, LwF, Replay, run_phases
from baselines.training import TrainConfig, accuracy, make_head, train
from common import BANKING77, ROOT, SHARED_DATA, table
from erasable.audit.continual import average_incremental_accuracy, forgetting, last_accuracy, seen_accuracy
from erasable.audit.protocols import PhaseSplit, class_incremental, dirichlet_clients, generalized_incremental
from erasable.estimator import ErasableClassifier
from erasable.io import read_idx
from erasable.model import HeadKind

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: no display needed

RESULTS = ROOT / "benchmarks" / "results"
FASHION = SHARED_DATA / "fashion-mnist"
PHASES = 5
HIDDEN = 256
EPOCHS = 10
BUFFER = 1000
CLIENTS = 5
CLIENT_ALPHA = 0.5
LR_GRID = (3e-3, 1e-2, 3e-2)
EWC_GRID = (1e1, 1e2, 1e3, 1e4)
LWF_GRID = (1.0, 10.0, 100.0)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0)
NOTES = """Notes on reading the tables:

* Hyper-parameters: one validation search per dataset (B0, seed 0, 80% of the training samples to learn,
  20% held out, criterion: average incremental accuracy on the held-out samples). Fine-tuning and replay
  reuse the learning rate chosen for joint training; the buffer size, the epochs and the MLP width are
  fixed, not tuned. erasable's ridge ``alpha`` is chosen by the same search (its GCV default is not used
  here only because it costs an eigendecomposition per phase).
* "erasable prototype" and "NCM" are the same classifier (cosine nearest class mean), erasable's on
  13-bit quantized inputs: identical numbers are expected, a sanity check of both.
* LwF follows Li & Hoiem (distillation of the softmax over the old classes). Without exemplars, neither it
  nor EWC counters the bias of the head towards the newest classes, so in class-incremental learning both
  end close to fine-tuning, as the surveys report (van de Ven et al. 2019, "Three scenarios for continual
  learning"; Masana et al. 2023). In the generalized protocol old classes come back, and they recover.
* erasable's time includes a ridge solve after every phase (to measure accuracy); learning a phase itself
  is an addition of integer statistics. Its certificate is compared with a fit of the same samples in
  another order, from scratch.
"""


@dataclass(frozen=True)
class Data:
    """A dataset of vectors with integer labels ``0..n_classes-1``, and erasable's feature width for it."""

    name: str
    x: NDArray[np.float32]
    y: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    width: int

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1


def load_banking77(width: int) -> Data:
    with np.load(BANKING77) as npz:
        names, y = np.unique(npz["y_train"], return_inverse=True)
        return Data("BANKING77", npz["X_train"], y, npz["X_test"], np.searchsorted(names, npz["y_test"]), width)


def load_fashion(width: int, n_train: int | None) -> Data:
    """Fashion-MNIST pixels in [0, 1], rows L2-normalised; the first ``n_train`` training images (all if None)."""

    def images(kind: str) -> NDArray[np.float32]:
        pixels = read_idx(FASHION / f"{kind}-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
        return pixels / np.linalg.norm(pixels, axis=1, keepdims=True)

    def labels(kind: str) -> NDArray[np.int64]:
        return read_idx(FASHION / f"{kind}-labels-idx1-ubyte.gz").astype(np.int64)

    train_x, train_y = images("train")[:n_train], labels("train")[:n_train]
    return Data("Fashion-MNIST", train_x, train_y, images("t10k"), labels("t10k"), width)


class ErasableLearner:
    """erasable as a :class:`~baselines.continual.Learner`: every phase is one ``partial_fit``."""

    def __init__(self, clf: ErasableClassifier) -> None:
        self.clf = clf
        self.learned = 0

    def learn(self, x: NDArray, y: NDArray, seen: NDArray) -> None:
        self.clf.partial_fit(x, y, ids=range(self.learned, self.learned + len(x)))
        self.learned += len(x)

    def predict(self, x: NDArray) -> NDArray:
        return self.clf.predict(x)


@dataclass(frozen=True)
class Settings:
    """The hyper-parameters the validation search chose for one dataset."""

    lr: float
    ewc: float
    lwf: float
    alpha: float


def learners(data: Data, settings: Settings, seed: int) -> dict[str, Callable[[], Learner]]:
    """Every method, as a factory of a fresh learner (seeded)."""
    spec = HeadSpec(data.x.shape[1], data.n_classes, HIDDEN, seed, TrainConfig(EPOCHS, 128, settings.lr, seed=seed))

    def erasable(head: HeadKind) -> Callable[[], Learner]:
        return lambda: ErasableLearner(erasable_classifier(data, settings.alpha, head, seed))

    return {
        "erasable ridge": erasable("ridge"),
        "erasable prototype": erasable("prototype"),
        "joint (MLP)": lambda: Joint(spec),
        "fine-tune": lambda: FineTune(spec),
        "EWC": lambda: EWC(spec, settings.ewc),
        "LwF": lambda: LwF(spec, settings.lwf),
        f"replay ({BUFFER})": lambda: Replay(spec, BUFFER),
        "NCM": lambda: NCM(data.x.shape[1], data.n_classes),
    }


def erasable_classifier(data: Data, alpha: float, head: HeadKind = "ridge", seed: int = 0) -> ErasableClassifier:
    return ErasableClassifier(head=head, width=data.width, alpha=alpha, seed=seed)


def validation_search(data: Data) -> tuple[Settings, str]:
    """Choose lr (joint MLP), EWC and LwF strengths and erasable's alpha on a held-out 20%, B0, seed 0.

    The criterion is the average incremental accuracy on the held-out samples. Fine-tuning and
    replay use the lr chosen for joint training.
    """
    order = np.random.default_rng(0).permutation(len(data.y))
    cut = len(order) * 4 // 5
    held = replace(
        data, x=data.x[order[:cut]], y=data.y[order[:cut]], x_test=data.x[order[cut:]], y_test=data.y[order[cut:]]
    )
    split = class_incremental(held.y, PHASES, seed=0)

    def score(learner: Learner) -> float:
        acc, weights = run_phases(learner, split, held.x, held.y, held.x_test, held.y_test)
        return average_incremental_accuracy(acc, weights)

    def spec(lr: float) -> HeadSpec:
        return HeadSpec(data.x.shape[1], data.n_classes, HIDDEN, 0, TrainConfig(EPOCHS, 128, lr))

    rows: list[list[str]] = []

    def best(name: str, grid: tuple[float, ...], make: Callable[[float], Learner]) -> float:
        scores = [score(make(value)) for value in grid]
        rows.append([name, ", ".join(f"{v:g}: {s:.3f}" for v, s in zip(grid, scores, strict=True))])
        return grid[int(np.argmax(scores))]

    lr = best("lr (joint MLP)", LR_GRID, lambda v: Joint(spec(v)))
    settings = Settings(
        lr=lr,
        ewc=best("EWC lambda", EWC_GRID, lambda v: EWC(spec(lr), v)),
        lwf=best("LwF lambda (T=2)", LWF_GRID, lambda v: LwF(spec(lr), v)),
        alpha=best("erasable ridge alpha", ALPHA_GRID, lambda v: ErasableLearner(erasable_classifier(data, v))),
    )
    report = table(
        f"{data.name}: validation search (B0, seed 0, 80/20 split of train; average incremental accuracy)",
        ["hyper-parameter", "grid: score"],
        rows,
    )
    return settings, report + f"\nChosen: {settings}\n"


def protocols(y: NDArray, seed: int) -> dict[str, PhaseSplit]:
    return {
        f"B0 ({PHASES} phases)": class_incremental(y, PHASES, seed=seed),
        f"B50 (+{PHASES} phases)": class_incremental(y, PHASES, base_half=True, seed=seed),
        f"generalized ({PHASES} phases)": generalized_incremental(y, PHASES, concentration=1.0, seed=seed),
    }


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def bench_continual(data: Data, settings: Settings, seeds: list[int]) -> str:
    """Every protocol and method over ``seeds``: a table per protocol, a plot per protocol."""
    out = []
    for protocol in protocols(data.y, 0):
        metrics: dict[str, dict[str, list]] = {}
        for seed in seeds:
            split = protocols(data.y, seed)[protocol]
            for name, make in learners(data, settings, seed).items():
                start = time.perf_counter()
                learner = make()
                acc, weights = run_phases(learner, split, data.x, data.y, data.x_test, data.y_test)
                entry = metrics.setdefault(
                    name, {"aia": [], "last": [], "fgt": [], "time": [], "curve": [], "cert": []}
                )
                entry["time"].append(time.perf_counter() - start)
                entry["aia"].append(average_incremental_accuracy(acc, weights))
                entry["last"].append(last_accuracy(acc, weights))
                entry["fgt"].append(forgetting(acc))
                entry["curve"].append(seen_accuracy(acc, weights))
                if isinstance(learner, ErasableLearner):
                    everything = np.concatenate(split.indices)
                    joint = erasable_classifier(data, settings.alpha, learner.clf.head, seed)
                    joint.fit(data.x[np.sort(everything)], data.y[np.sort(everything)])
                    entry["cert"].append(joint.certificate() == learner.clf.certificate())
                print(f"  {data.name} | {protocol} | seed {seed} | {name}: last {entry['last'][-1]:.3f}", flush=True)
        rows = [
            [
                name,
                mean_std(m["aia"]),
                mean_std(m["last"]),
                mean_std(m["fgt"]),
                ("equal" if all(m["cert"]) else "DIFFERENT") if m["cert"] else "—",
                f"{np.mean(m['time']):.1f}",
            ]
            for name, m in metrics.items()
        ]
        header = ["method", "avg incremental acc", "last acc", "forgetting", "certificate vs joint fit", "time (s)"]
        out.append(table(f"{data.name}, {protocol}, seeds {seeds}", header, rows))
        plot_curves(data.name, protocol, {name: np.mean(m["curve"], axis=0) for name, m in metrics.items()})
    return "\n".join(out)


def plot_curves(dataset: str, protocol: str, curves: dict[str, NDArray]) -> Path:
    """Accuracy on the classes seen so far after each phase, one line per method (mean over seeds)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, marker="o", label=name)
    ax.set_xticks(np.arange(1, len(next(iter(curves.values()))) + 1))
    ax.set(xlabel="phase", ylabel="accuracy on classes seen so far", title=f"{dataset}, {protocol}", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    slug = "".join(ch if ch.isalnum() else "_" for ch in f"{dataset}_{protocol.split()[0]}").lower()
    path = RESULTS / f"continual_{slug}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fedavg(data: Data, clients: list[NDArray], rounds: int, lr: float, seed: int) -> float:
    """FedAvg (McMahan et al. 2017) of linear heads: ``EPOCHS // rounds`` local epochs per round, size-weighted mean."""
    global_head = make_head(data.x.shape[1], data.n_classes, 0, seed)
    sizes = np.array([len(c) for c in clients], dtype=np.float64)
    for r in range(rounds):
        states = []
        for k, members in enumerate(clients):
            local = make_head(data.x.shape[1], data.n_classes, 0, seed)
            local.load_state_dict(global_head.state_dict())
            config = TrainConfig(max(EPOCHS // rounds, 1), 128, lr, seed=seed * 1000 + r * 100 + k)
            states.append(train(local, data.x[members], data.y[members], config).state_dict())
        averaged = {key: sum(w * s[key] for w, s in zip(sizes / sizes.sum(), states, strict=True)) for key in states[0]}
        global_head.load_state_dict(averaged)
    return accuracy(global_head, data.x_test, data.y_test)


def bench_federated(data: Data, settings: Settings, seeds: list[int]) -> str:
    """K non-IID clients: erasable merged once vs centralized (certificates), FedAvg of linear heads."""
    results: dict[str, list[float]] = {}
    certificates_equal = []
    for seed in seeds:
        clients = dirichlet_clients(data.y, CLIENTS, CLIENT_ALPHA, seed)
        parts = [erasable_classifier(data, settings.alpha, seed=seed).fit(data.x[m], data.y[m], ids=m) for m in clients]
        merged = parts[0]
        for part in parts[1:]:
            merged.merge(part)
        central = erasable_classifier(data, settings.alpha, seed=seed).fit(data.x, data.y)
        certificates_equal.append(merged.certificate() == central.certificate())
        linear = train(
            make_head(data.x.shape[1], data.n_classes, 0, seed),
            data.x,
            data.y,
            TrainConfig(EPOCHS, 128, settings.lr, seed=seed),
        )
        for name, value in {
            "erasable ridge, 5 clients merged once": merged.score(data.x_test, data.y_test),
            "erasable ridge, centralized": central.score(data.x_test, data.y_test),
            "linear head, centralized": accuracy(linear, data.x_test, data.y_test),
            f"FedAvg linear heads, 1 round of {EPOCHS} local epochs": fedavg(data, clients, 1, settings.lr, seed),
            f"FedAvg linear heads, {EPOCHS} rounds of 1 local epoch": fedavg(data, clients, EPOCHS, settings.lr, seed),
        }.items():
            results.setdefault(name, []).append(value)
    rows = [[name, mean_std(values)] for name, values in results.items()]
    rows.append(["certificate merged == centralized", "equal" if all(certificates_equal) else "DIFFERENT"])
    title = f"{data.name}, federated: {CLIENTS} clients, Dirichlet({CLIENT_ALPHA}) over classes, seeds {seeds}"
    return table(title, ["method", "test accuracy"], rows)


def main(argv: list[str] | None = None) -> str:
    """Run everything, print and write ``benchmarks/results/continual.md``; returns the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, 3000 training samples")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fashion-train", type=int, default=10000, help="Fashion-MNIST training images used")
    parser.add_argument("--dataset", choices=["banking77", "fashion", "both"], default="both")
    parser.add_argument("--width", type=int, default=2048, help="erasable's random ReLU width")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else list(range(args.seeds))
    datasets = [load_banking77(args.width), load_fashion(args.width, args.fashion_train)]
    if args.dataset != "both":  # one dataset per process: two processes run side by side
        datasets = [datasets[args.dataset == "fashion"]]
    if args.quick:
        subsets = [np.sort(np.random.default_rng(0).permutation(len(d.y))[:3000]) for d in datasets]
        datasets = [replace(d, x=d.x[s], y=d.y[s]) for d, s in zip(datasets, subsets, strict=True)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = []
    for data in datasets:
        start = time.perf_counter()
        settings, search = validation_search(data)
        print(search, flush=True)
        sections += [
            f"## {data.name}\n",
            search,
            bench_continual(data, settings, seeds),
            bench_federated(data, settings, seeds),
        ]
        print(sections[-2], sections[-1], f"({data.name}: {time.perf_counter() - start:.0f} s)", sep="\n", flush=True)
    setup = (
        f"Setup: {PHASES} phases; baselines train a {HIDDEN}-unit one-hidden-layer MLP head (Adam, {EPOCHS} epochs per"
        f" phase, batch 128) on the same inputs erasable learns from; replay keeps {BUFFER} samples (reservoir);"
        f" erasable ridge uses random ReLU features of width {args.width}. Fashion-MNIST: the first"
        f" {args.fashion_train} training images (to keep the whole run under ~25 minutes on 2 shared cores), all"
        f" 10000 test images. Seeds {seeds}; ± is the standard deviation over seeds. Forgetting: Chaudhry et al."
        " 2018 (lower is better). Times are wall times per run of a protocol, on a shared machine.\n"
    )
    text = "\n".join(["# Continual and federated learning (issue 6)\n", setup, NOTES, *sections])
    if not args.quick:
        (RESULTS / ("continual.md" if args.dataset == "both" else f"continual_{args.dataset}.md")).write_text(text)
    return text


if __name__ == "__main__":
    main()

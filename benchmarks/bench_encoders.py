"""Encoder throughput: erasable's wrappers against the libraries called directly, same run.

Text: BANKING77 sentences through ``encode_batched(TextEncoder())`` versus the same
sentence-transformers model's ``encode`` (batch 128, normalized). Image: Fashion-MNIST
test images through ``encode_batched(ImageEncoder())`` versus the bare EfficientNet-Lite0
module fed by a few lines of plain torch preprocessing. The two sides alternate within
each repeat; the table shows medians and the ratio erasable / direct (1.00 = no overhead).
A warm cache hit is timed too. ``--reproduce`` also re-encodes all of BANKING77 and
reports the largest difference from the shared embeddings (about three minutes more).

    .venv/bin/python benchmarks/bench_encoders.py [--text-n 1024] [--image-n 64] [--repeats 3] [--reproduce]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common import ROOT, SHARED_DATA, table, timed
from erasable.encoders import ImageEncoder, TextEncoder, encode_batched
from erasable.encoders.image import PIXEL_MEAN, PIXEL_STD
from erasable.io import read_mnist_folder, read_table

DATA = SHARED_DATA


def race(sides: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each side, after one warm-up call each, the sides alternating."""
    for function in sides.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, function in sides.items():
            times[name].append(timed(function))
    return {name: statistics.median(values) for name, values in times.items()}


def bench_text(n: int, repeats: int) -> list[tuple[str, int, dict[str, float]]]:
    texts = list(read_table(DATA / "banking77" / "train.csv", label_column="category").items)[:n]
    encoder = TextEncoder()
    model = encoder.model

    def direct() -> Any:
        return model.encode(texts, batch_size=128, normalize_embeddings=True, show_progress_bar=False)

    with tempfile.TemporaryDirectory() as cache_dir:
        seconds = race(
            {
                "direct": direct,
                "erasable": lambda: encode_batched(encoder, texts),
                "cached": lambda: encode_batched(encoder, texts, cache_dir=cache_dir),
            },
            repeats,
        )
    return [("text all-MiniLM-L6-v2", len(texts), seconds)]


def bench_image(n: int, repeats: int) -> list[tuple[str, int, dict[str, float]]]:
    images = read_mnist_folder(DATA / "fashion-mnist", split="test").items[:n]
    encoder = ImageEncoder()
    module, size, batch = encoder.module, encoder.image_size, encoder.batch_size

    def direct() -> torch.Tensor:
        parts = []
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                x = torch.from_numpy(images[start : start + batch]).float()[:, None].expand(-1, 3, -1, -1)
                x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True).clamp(0, 255)
                parts.append(module.extract_features((x - PIXEL_MEAN) / PIXEL_STD).mean(dim=(2, 3)))
        return torch.cat(parts)

    with tempfile.TemporaryDirectory() as cache_dir:
        seconds = race(
            {
                "direct": direct,
                "erasable": lambda: encode_batched(encoder, images),
                "cached": lambda: encode_batched(encoder, images, cache_dir=cache_dir),
            },
            repeats,
        )
    return [("image efficientnet-lite0 (28x28 grey -> 224)", len(images), seconds)]


def reproduce() -> None:
    encoder = TextEncoder()
    with np.load(DATA / "banking77" / "all-MiniLM-L6-v2.npz") as shared:
        for split in ("train", "test"):
            texts = read_table(DATA / "banking77" / f"{split}.csv", label_column="category").items
            start = time.perf_counter()
            embeddings = encode_batched(encoder, texts)
            seconds = time.perf_counter() - start
            diff = np.abs(embeddings - shared[f"X_{split}"]).max()
            print(f"BANKING77 {split}: {len(texts)} texts in {seconds:.1f} s, max abs difference {diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text-n", type=int, default=1024, help="sentences to encode (default 1024)")
    parser.add_argument("--image-n", type=int, default=64, help="images to encode (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per side (default 3)")
    parser.add_argument("--reproduce", action="store_true", help="re-encode all of BANKING77 and compare")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"shared data not found at {DATA}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats} repeats\n")
    rows = bench_text(args.text_n, args.repeats) + bench_image(args.image_n, args.repeats)
    report = table(
        f"Encoders: erasable's wrapper vs the library called directly (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, medians of {args.repeats})",
        ["encoder", "items", "direct items/s", "erasable items/s", "ratio (target >= 0.90)", "cached items/s"],
        [
            [
                name,
                str(n),
                f"{n / s['direct']:.1f}",
                f"{n / s['erasable']:.1f}",
                f"{s['direct'] / s['erasable']:.2f}",
                f"{n / s['cached']:.0f}",
            ]
            for name, n, s in rows
        ],
    )
    _, images, image_seconds = rows[-1]
    report += f"\nImage encode time per 1,000 images (erasable): {1000 * image_seconds['erasable'] / images:.0f} s\n"
    print(report)
    (ROOT / "benchmarks" / "results" / "encoders.md").write_text(report)
    if args.reproduce:
        print()
        reproduce()


if __name__ == "__main__":
    main()

"""Reproduce every number in the README: run each benchmark, then rewrite the README's result tables.

    python benchmarks/all.py                 # everything (hours on 2 cores)
    python benchmarks/all.py --quick         # smoke run of the scripts that have a quick mode
    python benchmarks/all.py --only core service
    python benchmarks/all.py --readme-only   # just copy benchmarks/results/*.md into the README

Each script writes ``benchmarks/results/<name>.md``. The README holds each file between the markers
``<!-- results:<name> -->`` and ``<!-- /results:<name> -->``, folded in a ``<details>`` block; this
script replaces what is between the markers and leaves the rest of the README alone. Scripts run one
after another, never in parallel: they time themselves, and the machine has 2 cores.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
ROOT = BENCHMARKS_DIR.parent
RESULTS = BENCHMARKS_DIR / "results"
README = ROOT / "README.md"


@dataclass(frozen=True)
class Benchmark:
    name: str  # also the results file: results/<name>.md
    script: str
    title: str
    quick: list[str] | None = field(default=None)  # arguments of a quick run; None: no quick mode, skipped


BENCHMARKS = [
    Benchmark(
        "vs_sklearn",
        "bench_vs_sklearn.py",
        "Against scikit-learn",
        ["--repeats", "1", "--datasets", "banking77", "--fm-train", "2000"],
    ),
    Benchmark("first_minute", "bench_first_minute.py", "First minute", ["--repeats", "1"]),
    Benchmark(
        "text_encoders",
        "bench_text_encoders.py",
        "Text encoders",
        ["--throughput-n", "64", "--repeats", "1", "--datasets", "banking77"],
    ),
    Benchmark("ood_test", "bench_ood.py", "Out-of-distribution scores", ["--seeds", "1"]),
    Benchmark("penalty", "bench_penalty.py", "Choosing the penalty", ["--sizes", "1000", "--datasets", "banking77"]),
    Benchmark("core", "bench_core.py", "Core engine", ["--repeats", "1"]),
    Benchmark("encoders", "bench_encoders.py", "Encoders", ["--text-n", "128", "--image-n", "16", "--repeats", "1"]),
    Benchmark("raw_inputs", "bench_raw_inputs.py", "Raw inputs", ["--quick"]),
    Benchmark(
        "memory",
        "bench_memory.py",
        "Visual memory",
        ["--sizes", "20000", "--repeats", "1", "--image-subset", "600", "100"],
    ),
    Benchmark("distributed", "bench_distributed.py", "Distributed", ["--samples", "5000", "--repeats", "1"]),
    Benchmark("continual", "bench_continual.py", "Continual learning against the field", ["--quick"]),
    Benchmark("unlearning", "bench_unlearning.py", "Unlearning against the field", ["--quick"]),
    Benchmark("service", "bench_service.py", "The HTTP service", ["--quick", "--crash-iterations", "3"]),
    Benchmark(
        "crash", "crash_test.py", "Crash test", ["--server-kills", "3", "--cli-kills", "3", "--postgres-kills", "0"]
    ),
    Benchmark("erasure", "bench_erasure.py", "Physical erasure", ["--samples", "2000"]),
]


def run(benchmark: Benchmark, quick: bool) -> float:
    """Run one script from the benchmarks directory; its wall time in seconds."""
    args = benchmark.quick if quick else []
    print(f"== {benchmark.script} {' '.join(args or [])}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, benchmark.script, *(args or [])], cwd=BENCHMARKS_DIR, check=True)
    return time.perf_counter() - start


def folded(benchmark: Benchmark) -> str:
    """The results file of ``benchmark`` as a folded block, with links made relative to the README."""
    path = RESULTS / f"{benchmark.name}.md"
    if not path.exists():
        return f"_No results yet: run `python benchmarks/{benchmark.script}`._"
    text = re.sub(r"\]\((?!https?:|/|benchmarks/)([^)]+\.png)\)", r"](benchmarks/results/\1)", path.read_text())
    text = re.sub(r"^(#{1,3}) ", lambda m: "#" * (len(m.group(1)) + 3) + " ", text, flags=re.MULTILINE)  # under ###
    summary = f"{benchmark.title}: all tables (benchmarks/results/{benchmark.name}.md)"
    return f"<details><summary>{summary}</summary>\n\n{text.strip()}\n\n</details>"


def rewrite_readme(readme: Path = README) -> list[str]:
    """Replace the text between each benchmark's markers; returns the names of the blocks rewritten."""
    text = readme.read_text()
    done = []
    for benchmark in BENCHMARKS:
        begin, end = f"<!-- results:{benchmark.name} -->", f"<!-- /results:{benchmark.name} -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if pattern.search(text):
            block = f"{begin}\n{folded(benchmark)}\n{end}"
            text = pattern.sub(lambda _, block=block: block, text)
            done.append(benchmark.name)
    readme.write_text(text)
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="quick modes only (smoke run; numbers not for the README)")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS], help="run just these")
    parser.add_argument("--readme-only", action="store_true", help="run nothing; rewrite the README from results/")
    args = parser.parse_args(argv)
    if not args.readme_only:
        for benchmark in BENCHMARKS:
            if args.only and benchmark.name not in args.only:
                continue
            seconds = run(benchmark, args.quick)
            print(f"== {benchmark.script}: {seconds / 60:.1f} min\n", flush=True)
    if args.quick and not args.readme_only:
        print("Quick run: the README is left as it is.")
        return
    print("README blocks rewritten:", ", ".join(rewrite_readme()) or "none (no markers found)")


if __name__ == "__main__":
    main()

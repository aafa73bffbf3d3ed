"""The README's own code runs (issue 14, item 2): its Python blocks, and its service block -- ``erasable keys
create``, ``erasable serve`` and every ``curl`` line, run by bash against a real server with the real text encoder,
then the Python block of ``erasable.client`` against the same server.

The lines run as written, with two substitutions, both for speed or the machine, not for correctness: the
server listens on a free port instead of 8000 (``localhost:8000`` is rewritten), and the Python blocks'
``ErasableClassifier(`` calls get ``width=256`` (at the default 4096, choosing the ridge penalty takes
seconds to a minute on a loaded machine). The data the Python block names (``X_train``, ``customers``, ...)
are BANKING77 embeddings from the shared data.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from erasable import ErasableClassifier
from tests.conftest import BANKING77
from tests.test_encoders import needs_text

README = Path(__file__).resolve().parents[1] / "README.md"
FAST = "width=256"


def python_blocks(text: str, *, client: bool) -> list[str]:
    """The fenced ```python blocks that use ``erasable.client`` (``client``) or do not."""
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)
    return [b for b in blocks if ("erasable.client" in b) == client]


def run_recording(code: str, names: dict[str, Any]) -> list[Any]:
    """Run ``code`` in ``names`` and return the value of each of its expression statements, in order."""
    tree = ast.parse(code)

    class Record(ast.NodeTransformer):
        def visit_Expr(self, node: ast.Expr) -> ast.Expr:
            call = ast.Call(ast.Name("_record", ast.Load()), [node.value], [])
            return ast.copy_location(ast.Expr(call), node)

    values: list[Any] = []
    names["_record"] = values.append
    exec(compile(ast.fix_missing_locations(Record().visit(tree)), str(README), "exec"), names)
    return values


def command_blocks(text: str) -> list[list[str]]:
    """Indented blocks (blank lines inside allowed) whose every command is ``erasable`` or ``curl``.

    A command starts on a line indented by four spaces; a line ending in ``\\`` continues on the next.
    """
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("    ") and not line[4].isspace():
            if blocks[-1] and blocks[-1][-1].endswith("\\"):
                blocks[-1][-1] = blocks[-1][-1][:-1] + " " + line.strip()
            else:
                blocks[-1].append(line.strip())
        elif line.startswith("     ") and blocks[-1] and blocks[-1][-1].endswith("\\"):
            blocks[-1][-1] = blocks[-1][-1][:-1] + " " + line.strip()
        elif line.strip():
            blocks.append([])
    return [b for b in blocks if b and all(c.split()[0] in ("erasable", "curl") for c in b)]


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(python_blocks(text, client=False)) >= 1 and len(python_blocks(text, client=True)) == 1
    service = [b for b in command_blocks(text) if any(c.startswith("erasable serve") for c in b)]
    assert len(service) == 1 and sum(c.startswith("curl ") for c in service[0]) >= 5, service


def _shell(command: str, cwd: Path, token: str = "") -> str:
    """``command`` run by bash in ``cwd`` with this venv's ``erasable`` on the PATH and ``$TOKEN`` set."""
    env = {**os.environ, "TOKEN": token, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@needs_text
@pytest.mark.skipif(subprocess.run(["which", "curl"], capture_output=True).returncode, reason="needs curl")
def test_the_service_block_runs_verbatim_against_a_real_server(tmp_path: Path) -> None:
    from erasable.service.process import ServerProcess

    [block] = [b for b in command_blocks(README.read_text(encoding="utf-8")) if any("erasable serve" in c for c in b)]
    token, answers, server = "", [], None
    try:
        for command in block:
            if command.startswith("erasable keys create"):
                token = _shell(command, tmp_path).strip().splitlines()[-1]
            elif command.startswith("erasable serve"):
                args = shlex.split(command.split("#")[0])
                store = tmp_path / args[args.index("--store") + 1]
                server = ServerProcess(store, log=tmp_path / "server.log").start()
            else:
                assert server is not None and token, "the block makes a key and starts the server first"
                line = command.split("  #")[0].replace("localhost:8000", f"localhost:{server.port}")
                answer = json.loads(_shell(line, tmp_path, token))
                assert not (isinstance(answer, dict) and "detail" in answer), f"{command}\n{answer}"
                answers.append((command, answer))
        assert server is not None
        [client_block] = python_blocks(README.read_text(encoding="utf-8"), client=True)
        code = client_block.replace("localhost:8000", f"localhost:{server.port}")
        _, label, certificate = run_recording(code, {"TOKEN": token})
        verify = f"curl -s -H 'Authorization: Bearer {token}' {server.url}/v1/models/bank/verify"
        verified = json.loads(_shell(verify, tmp_path))
    finally:
        if server is not None:
            server.stop()
    by_route = {re.search(r"/v1/models(/\w+/\w+)?", c).group(0).rsplit("/", 1)[-1]: a for c, a in answers}  # type: ignore[union-attr]
    assert by_route["models"]["name"] == "bank"
    assert by_route["learn"]["count"] == 1
    assert by_route["predict"]["predictions"][0]["label"] == "card_declined"
    assert by_route["forget"]["count"] == 1 and by_route["forget"]["certificate_after"]
    assert by_route["verify"]["ok"] is True
    assert label == "card_declined"  # the client block: its prediction, and its forget's certificate
    assert verified["ok"] and certificate == verified["certificate_recomputed"]


@needs_text
def test_the_cli_block_runs_in_order(tmp_path: Path) -> None:
    """Every line of the CLI block, by bash, on BANKING77 texts (``learn`` gets ``--width 256``, for speed)."""
    folder = BANKING77.parent
    if not (folder / "train.csv").exists():
        pytest.skip(f"shared data not found at {folder}")
    with (folder / "train.csv").open(encoding="utf-8") as handle:
        train = list(csv.DictReader(handle))[::80]
    with (folder / "test.csv").open(encoding="utf-8") as handle:
        test = list(csv.DictReader(handle))[::40]
    customers = ["crawler" if i % 10 == 0 else f"customer-{1230 + i % 9}" for i in range(len(train))]
    with (tmp_path / "train.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [["id", "text", "category", "customer"]]
            + [[f"q{i}", r["text"], r["category"], c] for i, (r, c) in enumerate(zip(train, customers, strict=True))]
        )
    with (tmp_path / "test.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text", "category"]] + [[r["text"], r["category"]] for r in test])
    [block] = [b for b in command_blocks(README.read_text(encoding="utf-8")) if b[0].startswith("erasable learn")]
    outputs = {}
    for command in block:
        line = f"{command} --width 256" if command.startswith("erasable learn") else command
        outputs[command.split()[1]] = _shell(line, tmp_path)
    info = json.loads(outputs["info"])
    assert info["samples"] == len(train) - customers.count("customer-1234")
    assert "OK:" in outputs["certify"] and (tmp_path / "audit" / "report.md").is_file()
    assert (tmp_path / "evaluation" / "evaluation.md").is_file()


def _banking77_names() -> dict[str, Any]:
    """What the README's library block calls its data: slices of the BANKING77 embeddings."""
    if not BANKING77.exists():
        pytest.skip(f"shared data not found at {BANKING77}")
    with np.load(BANKING77) as data:
        x, y, x_test = data["X_train"], data["y_train"], data["X_test"][:50]
    train, new, other = slice(0, 600), slice(600, 650), slice(650, 700)
    return {
        "X_train": x[train],
        "y_train": y[train],
        "ids": [f"q{i}" for i in range(600)],
        "customers": [f"customer-{1200 + i % 50}" for i in range(600)],
        "X_test": x_test,
        "X_new": x[new],
        "y_new": y[new],
        "new_ids": [f"q{i}" for i in range(600, 650)],
        "other_clf": ErasableClassifier(width=256).fit(x[other], y[other], ids=[f"q{i}" for i in range(650, 700)]),
    }


@needs_text
def test_the_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the block saves model.erasable
    names = _banking77_names()
    for block in python_blocks(README.read_text(encoding="utf-8"), client=False):
        code = re.sub(r"\bErasableClassifier\((?=.)", f"ErasableClassifier({FAST}, ", block)
        exec(compile(code, str(README), "exec"), names)
    clf = names["clf"]
    assert "customer-1234" not in set(clf.model_.registry.subjects)
    assert clf.model_.count == 600 - 12 + 50 + 50  # customer-1234 had 12 samples; new ones; the merged model's
    assert (tmp_path / "model.erasable").is_file()

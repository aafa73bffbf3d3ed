"""``erasable serve --model-file`` (issue 14, item 13): a model file served read-only by a real server --
predictions, info and verification work with the key it prints; every change is refused with 405."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from erasable.client import Client, ServiceError  # noqa: E402
from erasable.model_file import load_model  # noqa: E402
from erasable.service.process import free_port  # noqa: E402
from tests.test_cli import learned, make_data  # noqa: E402


def test_a_model_file_is_served_read_only(tmp_path: Path) -> None:
    X, y = make_data(40)
    model_path = learned(tmp_path, "bank", X, y, ids=np.array([f"s{i}" for i in range(40)]))
    before = model_path.read_bytes()
    port, log = free_port(), tmp_path / "server.log"
    command = [sys.executable, "-m", "erasable", "serve", "--model-file", str(model_path), "--port", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen([*command, "--log-level", "warning"], stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"key for this run: (\S+)", log.read_text())) and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            time.sleep(0.1)
        assert found, log.read_text()
        token = found.group(1)
        with Client(f"http://127.0.0.1:{port}", token, retries=20, backoff=0.05) as service:
            assert service.model_info("bank").certificate == load_model(model_path).certificate()
            answer = service.predict("bank", vectors=X[:5])
            assert sum(p.label == label for p, label in zip(answer.predictions, y[:5], strict=True)) >= 4
            assert service.verify("bank")["ok"] is True
            refusals = [
                lambda: service.learn("bank", ids=["new"], labels=["a"], vectors=X[:1]),
                lambda: service.forget("bank", ids=["s1"]),
                lambda: service.steer("bank", ids={"s1": 0.5}),
                lambda: service.create_model("other", input_dim=8),
                lambda: service.delete_model("bank"),
            ]
            for refuse in refusals:
                with pytest.raises(ServiceError, match="read-only") as refused:
                    refuse()
                assert refused.value.status == 405
            assert service.model_info("bank").count == 40
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert model_path.read_bytes() == before  # the file itself is never touched

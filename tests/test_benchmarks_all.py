"""benchmarks/all.py rewrites exactly the README blocks between its markers."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import all as run_all


def test_rewrite_readme_replaces_only_marked_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "core.md").write_text("### Core\n\n| a |\n|---|\n| 1 |\n\n![plot](core.png)\n")
    monkeypatch.setattr(run_all, "RESULTS", results)
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- results:core -->\nstale\n<!-- /results:core -->\nmiddle\n<!-- results:memory -->\n"
        "<!-- /results:memory -->\nend\n"
    )
    assert run_all.rewrite_readme(readme) == ["core", "memory"]
    text = readme.read_text()
    assert text.startswith("intro\n<!-- results:core -->\n<details>") and "stale" not in text
    assert "| 1 |" in text and "](benchmarks/results/core.png)" in text and "\n###### Core\n" in text
    assert "middle\n" in text and text.endswith("<!-- /results:memory -->\nend\n")
    assert "No results yet" in text  # memory.md does not exist here
    assert run_all.rewrite_readme(readme) == ["core", "memory"] and readme.read_text() == text  # idempotent

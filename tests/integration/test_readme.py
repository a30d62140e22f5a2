"""The README's quick start is examples/quickstart.py, word for word, and it runs."""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quickstart.py"


def _load_example() -> object:
    spec = importlib.util.spec_from_file_location("quickstart", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _marked_region() -> str:
    text = EXAMPLE.read_text()
    m = re.search(r"# --8<-- \[start:quickstart\]\n(.*?)\n\s*# --8<-- \[end:quickstart\]", text,
                  re.S)  # fmt: skip
    assert m is not None
    return textwrap.dedent(m.group(1)).strip()


def test_readme_quick_start_is_the_example() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert any(b.strip() == _marked_region() for b in blocks), (
        "the README's quick start differs from examples/quickstart.py"
    )


def test_quickstart_runs_and_explains_its_decision(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _load_example()
    home = module.quickstart(redis_url)  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert "replayed 6 events, rejected 0" in out
    assert home is not None and home["items"]
    assert home["reason"]
    reason_line = next(line for line in out.splitlines() if line.startswith("reason:"))
    assert reason_line.removeprefix("reason:").strip() == home["reason"]

"""The README's Python example is a test: it must run as written."""

import re

import pytest
from zsseg_testing import REPO

pytestmark = pytest.mark.weights


def test_readme_python_example(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, flags=re.S)
    assert block, "README has no python example"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zsseg").symlink_to(REPO / "zsseg")
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.label_map.shape == (512, 512)
    assert (tmp_path / "out" / "api" / "astronaut_overlay.png").is_file()

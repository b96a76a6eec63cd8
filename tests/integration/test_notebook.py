"""The data scientists' notebook runs top to bottom on the real test slice (so it cannot rot)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support.processes import ROOT


@pytest.mark.slow
def test_evaluation_notebook_executes(slice_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTEBOOK_DATA", str(slice_dir))
    monkeypatch.setenv("NOTEBOOK_TUNE", "0")
    nb = nbformat.read(ROOT / "notebooks" / "evaluation.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "model" in text and "basket_completion" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook draws its plots"

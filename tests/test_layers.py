"""The import contract of pyproject.toml ([tool.importlinter]) holds, checked by import-linter itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(cwd), "PATH": str(Path(sys.executable).parent)})


def test_the_import_contract_holds():
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_the_contract_catches_queues_importing_the_zoo(tmp_path):
    """A planted violation: the same contract, on a copy of `queues` that imports the zoo."""
    shutil.copytree(ROOT / "queues", tmp_path / "queues")
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "__init__.py").write_text("")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    registry = tmp_path / "queues" / "registry.py"
    registry.write_text("import zoo  # planted\n" + registry.read_text())
    proc = lint(tmp_path)
    assert proc.returncode != 0 and "queues is the bottom layer" in proc.stdout and "BROKEN" in proc.stdout

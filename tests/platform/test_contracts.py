"""The generated code in libs/proto is exactly what `make proto` makes from proto/ today."""

from __future__ import annotations

import filecmp
from pathlib import Path

from tools.gen_proto import OUT_DIR, PACKAGE, main


def test_generated_code_is_in_step_with_the_contracts(tmp_path: Path) -> None:
    assert main(tmp_path) == 0
    fresh, committed = tmp_path / PACKAGE, OUT_DIR / PACKAGE
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    committed_files = {
        p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert fresh_files == committed_files, "run `make proto`"
    changed = [str(f) for f in sorted(fresh_files) if not filecmp.cmp(fresh / f, committed / f, shallow=False)]
    assert changed == [], f"run `make proto`: {changed}"


def test_no_generated_package_shares_a_prefix_with_hand_written_code() -> None:
    generated_top = {p.name for p in OUT_DIR.iterdir() if p.is_dir() and p.name != "__pycache__"}
    root = OUT_DIR.parents[2]
    hand_written = {
        p.name
        for src in [*root.glob("libs/*/src"), *root.glob("services/*/src")]
        if src != OUT_DIR
        for p in src.iterdir()
        if p.is_dir() and not p.name.endswith(".egg-info")
    }
    assert generated_top == {"comuna"}
    assert not generated_top & hand_written

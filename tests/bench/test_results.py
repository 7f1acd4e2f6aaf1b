"""The README's benchmark section is written from a full run's latest.json, and only from one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.harness import README_BEGIN, README_END, write_readme_section

FIGURES = {"commands_per_s": 900.5, "cli_wall_ms_median": 240.0, "fsyncs_per_acked_batch": 0.5}


def _results(tmp_path: Path, mode: str) -> Path:
    doc = {
        "mode": mode,
        "measured_at": "2026-11-27T00:00:00+00:00",
        "commit": "abc123def456",
        "machine": {"cpus": 2, "python": "3.11.7"},
        **FIGURES,
    }
    path = tmp_path / "results" / "latest.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    (path.parent / "load_vs_length.png").write_bytes(b"png")
    return path


def _readme(tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\nold table\n{README_END}\n\n## After\n")
    return readme


def test_a_full_run_replaces_the_section_between_the_markers(tmp_path: Path) -> None:
    # given a full run's results and a README with an old table
    results, readme = _results(tmp_path, "full"), _readme(tmp_path)
    # when the section is written
    write_readme_section(results, readme)
    # then the old table is gone, every figure is there with its verdict, and the rest is kept
    text = readme.read_text()
    assert "old table" not in text
    assert "| `commands_per_s` | 900.500 | >= 1000 | **no** |" in text
    assert "| `cli_wall_ms_median` | 240.000 | <= 250 | yes |" in text
    assert "| `fsyncs_per_acked_batch` | 0.500 |  |  |" in text
    assert "commit abc123def456" in text and "2 cores, Python 3.11.7" in text
    assert "![load_vs_length.png](bench/results/load_vs_length.png)" in text
    assert text.startswith("# x\n") and text.endswith("## After\n")
    # and writing it again changes nothing
    write_readme_section(results, readme)
    assert readme.read_text() == text


def test_a_quick_run_is_refused_and_the_readme_is_untouched(tmp_path: Path) -> None:
    results, readme = _results(tmp_path, "quick"), _readme(tmp_path)
    before = readme.read_text()
    with pytest.raises(ValueError, match="quick run"):
        write_readme_section(results, readme)
    assert readme.read_text() == before


def test_a_readme_without_markers_is_refused(tmp_path: Path) -> None:
    results = _results(tmp_path, "full")
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers"):
        write_readme_section(results, readme)
    assert readme.read_text() == "# no markers\n"

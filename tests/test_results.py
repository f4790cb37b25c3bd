"""Benchmark records and the RESULTS.md generated from them."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
import make_results  # noqa: E402
import records  # noqa: E402


def test_results_md_is_generated_from_the_records():
    """RESULTS.md equals what the records give; after a benchmark run, `make results` updates it."""
    assert make_results.main(["--check"]) == 0, "benchmarks/RESULTS.md is out of date: run make results"


def test_every_benchmark_writes_a_record():
    scripts = sorted(BENCH.glob("bench_*.py")) + sorted(BENCH.glob("quality_*.py"))
    assert len(scripts) >= 10
    missing = [p.name for p in scripts if not re.search(r"\bwrite_record\(", p.read_text())]
    assert not missing, f"benchmarks that write no record: {missing}"


def test_a_record_names_code_machine_and_renders(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", [str(BENCH / "bench_x.py"), "--n", "10"])
    path = records.write_record("bench_x", variant="n=10", results={"nmi": 0.91234, "seconds": {"01": 3.0}},
                                params={"n": 10}, table=[{"method": "a", "nmi": 0.5}, {"method": "b", "nmi": 0.25}],
                                title="A test benchmark.")
    record = json.loads(path.read_text())
    assert path.name == "bench_x--n=10.json"
    assert record["command"] == "python benchmarks/bench_x.py --n 10"
    assert set(record["code"]) == {"version", "commit", "dirty"} and record["machine"]["cores"] >= 1
    text = make_results.render(tmp_path)
    assert "## bench_x--n=10" in text and "[bench_x--n=10](#bench_x--n10)" in text
    assert "| method | nmi |" in text and "| a | 0.5 |" in text and "| nmi | 0.9123 |" in text
    assert "| seconds.01 | 3 |" in text
    assert text == make_results.render(tmp_path)  # the same records, the same file


@pytest.mark.parametrize("value, shown", [(None, "–"), (True, "yes"), (1234567.0, "1.235e+06"), ("a|b", "a\\|b"),
                                          ([["PF1", 300, 0.99, 1.0], ["PF2", 50, 0.5, 0.75]],
                                           "PF1 300 0.99 1; PF2 50 0.5 0.75"),
                                          ([[i] for i in range(61)], "61 rows"), (list(range(13)), "13 values")])
def test_values_are_written_plainly(value, shown):
    assert make_results._fmt(value) == shown

"""The training log every loop shares: JSONL records, printed lines, resume truncation."""
import json

import pytest

from protlab.core.errors import InputError
from protlab.core.training_log import TrainingLog, read_records, record_line


def test_record_line_formats_numbers_and_skips_the_rest():
    line = record_line("residues", "epoch", 3, 30, {"epoch": 3, "loss": 0.123456, "note": "x", "ok": True, "n": 7})
    assert line == "[residues] epoch 3/30  loss 0.1235  n 7"


def test_records_are_appended_and_printed_every_few(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    log = TrainingLog("scan", unit="epoch", total=5, path=path, every=2, bar=False)
    for epoch in range(1, 6):
        log.record(epoch, {"loss": 1.0 / epoch})
    log.close()
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[scan]")]
    assert [line.split()[2] for line in printed] == ["2/5", "4/5", "5/5"]
    assert [r["epoch"] for r in read_records(path)] == [1, 2, 3, 4, 5]
    assert read_records(path)[1]["loss"] == pytest.approx(0.5)


def test_resume_keeps_records_up_to_the_saved_position_and_fresh_start_clears(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": s}) + "\n" for s in (10, 20, 30)) + '{"step": 4')
    TrainingLog("pretrain", unit="step", total=50, path=path, start=20, bar=False)
    assert [r["step"] for r in read_records(path)] == [10, 20]
    TrainingLog("pretrain", unit="step", total=50, path=path, start=0, bar=False)
    assert not path.exists()


def test_other_ranks_write_and_print_nothing(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    log = TrainingLog("pretrain", unit="step", total=1, path=path, main=False)
    log.say("hello")
    assert log.record(1, {"loss": 1.0}) == {"step": 1, "loss": 1.0}
    assert not path.exists() and capsys.readouterr().out == ""


def test_a_damaged_middle_line_is_named(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(InputError, match=r"log.jsonl, line 2: not a JSON record"):
        read_records(path)
    said = []
    path.write_text('{"step": 1}\n{"step": 2')
    assert read_records(path, say=said.append) == [{"step": 1}]
    assert "line 2: cut short" in said[0]


def test_a_line_can_give_chosen_keys_while_the_file_keeps_all(tmp_path, capsys):
    path = tmp_path / "log.jsonl"
    log = TrainingLog("pretrain", unit="step", total=2, path=path, bar=False, shown=("valid_mrr", "loss"))
    log.record(2, {"loss": 1.5, "mlm": 3.0, "valid_mrr": 0.25})
    assert capsys.readouterr().out.strip() == "[pretrain] step 2/2  valid_mrr 0.25  loss 1.5"
    assert read_records(path) == [{"step": 2, "loss": 1.5, "mlm": 3.0, "valid_mrr": 0.25}]

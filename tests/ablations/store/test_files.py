"""ablations/store/files.py: atomic writes, the runs.csv store and its lock."""

import json
import multiprocessing

import pandas as pd
import pytest

from ablations.store.files import COLUMNS, append_run, read_runs, write_json_atomic, write_text_atomic
from models.errors import ConfigError


def row(**values):
    base = {"ablation": "demo", "variant": "base", "task": "copy", "seed": 0, "status": "ok",
            "metric": "accuracy", "score": 0.5, "config_hash": "abc123def456"}
    base.update(values)
    return base


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_text_atomic_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "first\n")
    assert target.read_text() == "first\n"
    write_text_atomic(target, "second\n")
    assert target.read_text() == "second\n"
    assert leftovers(target.parent) == []
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(TypeError):
        write_text_atomic(target, 12345)  # not text: fails mid-write
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_write_json_atomic(tmp_path):
    write_json_atomic(tmp_path / "result.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": [1, 2], "b": 1}
    assert leftovers(tmp_path) == []


def test_read_runs_without_a_file_is_empty_with_the_columns(tmp_path):
    frame = read_runs(tmp_path)
    assert frame.empty and list(frame.columns) == COLUMNS


def test_append_run_creates_and_appends(tmp_path):
    append_run(tmp_path, row(variant="base", score=0.25))
    path = tmp_path / "runs.csv"
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    append_run(tmp_path, row(variant="post", seed=1, score=0.75, error="boom"))
    frame = read_runs(tmp_path)
    assert list(frame.columns) == COLUMNS
    assert frame["variant"].tolist() == ["base", "post"]
    assert frame["seed"].tolist() == [0, 1]
    assert frame["score"].tolist() == [0.25, 0.75]
    assert pd.isna(frame["error"][0]) and frame["error"][1] == "boom"
    assert pd.isna(frame["steps"]).all()  # columns not given are empty
    assert leftovers(tmp_path) == []


def test_append_run_ignores_keys_outside_the_columns(tmp_path):
    append_run(tmp_path, row(not_a_column=1))
    assert "not_a_column" not in (tmp_path / "runs.csv").read_text()


@pytest.mark.parametrize("content", [
    b"",                                              # empty
    b"a,b\n1,2\n",                                    # other columns
    ",".join(COLUMNS).encode() + b"\n" + b"1," * 16 + b"1\n" + b"1," * 30 + b"1\n",  # a row with too many fields
    b"\xff\xfe\x00binary\x00\xff\n",                  # not text
], ids=["empty", "wrong-columns", "too-many-fields", "binary"])
def test_corrupted_runs_csv_names_the_file(tmp_path, content):
    (tmp_path / "runs.csv").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        read_runs(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "runs.csv") in message and "corrupted" in message
    assert "\n" not in message
    with pytest.raises(ConfigError):
        append_run(tmp_path, row())  # an append never overwrites a corrupted file...
    assert (tmp_path / "runs.csv").read_bytes() == content  # ...it leaves it as it was


def _append_many(directory, worker, count, barrier):
    barrier.wait(timeout=30)  # both processes start appending together
    for i in range(count):
        append_run(directory, row(variant=f"w{worker}", seed=i))


def test_concurrent_appends_lose_no_rows(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_append_many, args=(tmp_path, w, 20, barrier)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    frame = read_runs(tmp_path)
    assert len(frame) == 40
    for w in range(2):
        assert sorted(frame[frame["variant"] == f"w{w}"]["seed"].tolist()) == list(range(20))
    # each worker's rows stay in its own order
    for w in range(2):
        assert frame[frame["variant"] == f"w{w}"]["seed"].tolist() == list(range(20))
    assert leftovers(tmp_path) == []


def test_a_first_row_with_too_many_fields_is_reported(tmp_path):
    (tmp_path / "runs.csv").write_text(",".join(COLUMNS) + "\n" + ",".join(["x"] * (len(COLUMNS) + 3)) + "\n")
    with pytest.raises(ConfigError, match="corrupted"):
        read_runs(tmp_path)


def test_each_command_keeps_its_seconds_and_a_resumed_directory_adds_them_up(tmp_path):
    """manifest.json records how long each `ablate run` into the directory took; `command_seconds` sums them, and
    says it does not know when one command ran before commands recorded their time."""
    import json

    from ablations.config.ablation import Ablation
    from ablations.store.files import command_seconds, record_seconds, write_manifest

    ablation = Ablation(name="a", description="", baseline="b", tasks=("copy",), seeds=(0,), variants={"b": ()})
    write_manifest(tmp_path, ablation=ablation, command="ablate run", overrides=[], config_hash="h")
    assert command_seconds(json.loads((tmp_path / "manifest.json").read_text())) is None  # still running
    record_seconds(tmp_path, 12.34)
    assert command_seconds(json.loads((tmp_path / "manifest.json").read_text())) == (12.3, 1)
    write_manifest(tmp_path, ablation=ablation, command="ablate run seed=1", overrides=[], config_hash="h")
    record_seconds(tmp_path, 7.0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [h["seconds"] for h in manifest["history"]] == [12.3] and command_seconds(manifest) == (19.3, 2)
    manifest["history"][0].pop("seconds")  # a command of code that did not record it
    assert command_seconds(manifest) is None

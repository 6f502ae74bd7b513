"""Files, paths and plugins (issue #16): names that become paths, config files that are not YAML, a worker's
manifest, the sweep's grace period, a full disk, a database that goes away, and plugins that must not shadow
installed modules. Each mistake is one line on stderr, exit status 2, no traceback, nothing half-written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablations.cli import main
from tests.reliability.helpers import TINY, snapshot

ROOT = Path(__file__).resolve().parents[2]


def _ablation_file(text: str):
    def setup(cwd: Path, monkeypatch) -> None:
        folder = cwd.parent / "myconf" / "ablation"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "mine.yaml").write_bytes(text.encode())
        monkeypatch.setenv("ABLATE_CONFIG_DIR", str(cwd.parent / "myconf"))
    return setup


def _variants(name: str) -> str:
    return (f"name: mine\nbaseline: baseline\ntasks: [copy]\nseeds: [0]\n"
            f"variants:\n  baseline: []\n  {json.dumps(name)}: [model.residual=none]\n")


VALID = r"valid names are letters, digits and _ \. \+ -"
#: id, argv, setup(cwd, monkeypatch) or None, regex of the one error line
CASES = [
    ("variant-parent-dirs", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("../../../../x")),
     rf"ablation mine: variant name '\.\./\.\./\.\./\.\./x' cannot be used: it becomes a folder name; {VALID}"),
    ("variant-slash", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("a/b")),
     rf"variant name 'a/b' cannot be used.*{VALID}"),
    ("variant-absolute", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("/tmp/x")),
     rf"variant name '/tmp/x' cannot be used"),
    ("variant-leading-dot", ["run", "ablation=mine", "out=res"], _ablation_file(_variants(".hidden")),
     rf"variant name '\.hidden' cannot be used"),
    ("variant-dot-dot", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("..")),
     rf"variant name '\.\.' cannot be used"),
    ("variant-nul", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("a\x00b")),
     rf"variant name 'a\\x00b' cannot be used"),
    ("variant-empty", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("")),
     rf"variant name '' cannot be used"),
    ("variant-backslash", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("a\\b")),
     re.escape("variant name 'a\\\\b' cannot be used")),
    ("variant-leading-dash", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("-rf")),
     rf"variant name '-rf' cannot be used"),
    ("variant-too-long", ["run", "ablation=mine", "out=res"], _ablation_file(_variants("v" * 101)),
     rf"variant name 'v{{101}}' cannot be used"),
    ("ablation-name", ["run", "ablation.name=../elsewhere", "out=res"], None,
     rf"ablation name '\.\./elsewhere' cannot be used"),
    ("task-name-in-ablation", ["run", "ablation=mine", "out=res"], _ablation_file(
        "name: mine\nbaseline: b\ntasks: ['../copy']\nseeds: [0]\nvariants: {b: []}\n"),
     rf"ablation mine: task name '\.\./copy' cannot be used"),
    ("part-name", ["run", "ablation=mine", "out=res"], _ablation_file(
        "name: mine\nparts:\n  ../up: {baseline: b, tasks: [copy], seeds: [0], variants: {b: []}}\n"),
     rf"ablation mine: part name '\.\./up' cannot be used"),
    ("yaml-syntax-error", ["run", "ablation=mine", "out=res"], _ablation_file("name: mine\nbaseline: [b\n"),
     r"invalid YAML in .*myconf/ablation/mine\.yaml, line \d+: "),
    ("yaml-python-tag", ["run", "ablation=mine", "out=res"], _ablation_file(
        "name: !!python/object/apply:os.system ['touch pwned']\nbaseline: b\n"),
     r"invalid YAML in .*mine\.yaml, line 1: could not determine a constructor for the tag .*python/object/apply"),
    ("yaml-python-name-tag", ["run", "ablation=mine", "out=res"], _ablation_file("x: !!python/name:os.system\n"),
     r"invalid YAML in .*mine\.yaml, line 1: .*python/name"),
    ("yaml-tab-indent", ["run", "ablation=mine", "out=res"], _ablation_file("name: mine\n\tbaseline: b\n"),
     r"invalid YAML in .*mine\.yaml, line 2: "),
    ("grace-below-heartbeat", ["run", "sweep=quick", "sweep.grace_seconds=0.5", "out=res"], None,
     r"sweep\.grace_seconds must be at least 4, got 0\.5: a running trial's heartbeat comes every max\(1, "),
    ("grace-one-beat", ["run", "sweep=quick", "sweep.grace_seconds=1", "out=res"], None,
     r"sweep\.grace_seconds must be at least 4, got 1"),
    ("grace-just-below", ["run", "sweep=quick", "sweep.grace_seconds=3.99", "out=res"], None,
     r"sweep\.grace_seconds must be at least 4, got 3\.99"),
    ("grace-nan", ["run", "sweep=quick", "sweep.grace_seconds=nan", "out=res"], None,
     r"sweep\.grace_seconds must be a number of seconds, got nan"),
    ("grace-bool", ["run", "sweep=quick", "sweep.grace_seconds=true", "out=res"], None,
     r"sweep\.grace_seconds must be a number of seconds, got True"),
]


@pytest.mark.parametrize("name, argv, setup, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_names_files_and_settings_are_one_line(name, argv, setup, pattern, tmp_path, monkeypatch, capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    if setup is not None:
        setup(cwd, monkeypatch)
    before = snapshot(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("ablate: error: ") and re.search(pattern, lines[0]), lines[0]
    assert snapshot(tmp_path) == before  # nothing written anywhere, above out= included
    assert not (tmp_path / "pwned").exists() and not (cwd / "pwned").exists()


def test_the_smallest_grace_is_accepted_and_sets_a_heartbeat_that_fits_four_times():
    from ablations.config.sweep import SweepConfig, heartbeat_seconds

    for grace in (4, 4.0, 10, 120, 300, 1e6):
        sweep = SweepConfig(name="x", trials=0, seeds=0, space={}, pruner="none", pruner_startup_trials=0,
                            sampler_seed=0, storage=None, workers=1, grace_seconds=grace)
        assert sweep.heartbeat_seconds == heartbeat_seconds(grace) and grace >= 4 * sweep.heartbeat_seconds


# --- ablate worker and its manifest ---------------------------------------------------------------------------

MANIFEST = {"ablation": {"name": "default", "description": "", "baseline": "baseline", "tasks": ["copy"],
                         "seeds": [0], "variants": {"baseline": []}, "sweep": None, "overrides": []},
            "overrides": ["task=copy"], "command": "ablate run task=copy"}


def _manifest(**changes):
    data = json.loads(json.dumps(MANIFEST))
    for key, value in changes.items():
        target = data
        *path, leaf = key.split(".")
        for part in path:
            target = target[part]
        if value is KeyError:
            del target[leaf]
        else:
            target[leaf] = value
    return data


WORKER_CASES = [
    ("no-ablation", _manifest(ablation=KeyError), r"corrupted manifest res/manifest\.json: it has no 'ablation'"),
    ("ablation-not-object", _manifest(ablation="default"), r"'ablation' must be the ablation \(an object\)"),
    ("no-overrides", _manifest(overrides=KeyError), r"it has no 'overrides'"),
    ("overrides-not-list", _manifest(overrides="task=copy"), r"'overrides' must be a list of overrides"),
    ("override-not-string", _manifest(overrides=[3]), r"'overrides' must be a list of overrides"),
    ("variants-missing", _manifest(**{"ablation.variants": KeyError}), r"'ablation\.variants' is missing"),
    ("variants-wrong-type", _manifest(**{"ablation.variants": ["baseline"]}),
     r"'ablation\.variants' must be an object of variant: \[overrides\], got list"),
    ("seeds-wrong-type", _manifest(**{"ablation.seeds": "0"}), r"'ablation\.seeds' must be a list of integers"),
    ("tasks-wrong-type", _manifest(**{"ablation.tasks": [1]}), r"'ablation\.tasks' must be a list of task names"),
    ("name-wrong-type", _manifest(**{"ablation.name": 5}), r"'ablation\.name' must be a string, got int"),
    ("parts-wrong-type", _manifest(**{"ablation.parts": []}), r"'ablation\.parts' must map each part"),
    ("variant-path", _manifest(**{"ablation.variants": {"baseline": [], "../../x": []}}),
     r"variant name '\.\./\.\./x' cannot be used"),
    ("not-json", b"{\"ablation\": ", r"corrupted manifest res/manifest\.json, line 1: "),
]


@pytest.mark.parametrize("name, manifest, pattern", WORKER_CASES, ids=[c[0] for c in WORKER_CASES])
def test_a_malformed_manifest_given_to_ablate_worker_is_one_line(name, manifest, pattern, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "manifest.json").write_bytes(manifest if isinstance(manifest, bytes)
                                                     else json.dumps(manifest).encode())
    before = snapshot(tmp_path)
    assert main(["worker", "res"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    assert snapshot(tmp_path) == before


# --- plugins ---------------------------------------------------------------------------------------------------

STRAY = "raise SystemExit('the stray seaborn.py of the working directory was imported')\n"


def _python(cwd: Path, code: str) -> subprocess.CompletedProcess:
    """A fresh interpreter in `cwd` that, like the console script, does not put `cwd` on sys.path itself."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-P", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_naming_a_plugin_imports_it_and_nothing_else_from_the_working_directory(tmp_path):
    (tmp_path / "seaborn.py").write_text(STRAY)
    (tmp_path / "json.py").write_text(STRAY)
    (tmp_path / "myplug.py").write_text("import seaborn, json\nLOADED = seaborn.__file__\n")
    done = _python(tmp_path, "from ablations.plugins import load_plugins\nload_plugins(['myplug'])\n"
                             "import myplug, seaborn, importlib\nimportlib.import_module('seaborn.objects')\n"
                             "print(myplug.__file__)\nprint(seaborn.__file__)\nprint(myplug.LOADED)")
    assert done.returncode == 0, done.stderr
    plugin, seaborn, seen_by_plugin = done.stdout.splitlines()
    assert Path(plugin) == tmp_path / "myplug.py"
    assert Path(seaborn).parent.name == "seaborn" and tmp_path not in Path(seaborn).parents
    assert seen_by_plugin == seaborn


def test_a_plugin_that_would_shadow_an_installed_module_is_refused(tmp_path, monkeypatch, capsys,
                                                                    isolated_plugins):
    import importlib.util

    monkeypatch.chdir(tmp_path)
    name = next(n for n in ("tabnanny", "pydoc_data", "xdrlib", "sndhdr", "this")
                if importlib.util.find_spec(n) and n not in sys.modules)  # installed, not imported yet
    (tmp_path / f"{name}.py").write_text(STRAY)
    before = snapshot(tmp_path)
    assert main(["list", f"plugins=[{name}]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"plugin '{name}': {tmp_path / name} would shadow the installed module '{name}'" in err
    assert name not in sys.modules and snapshot(tmp_path) == before


def test_a_plugin_package_in_the_working_directory_still_imports_its_submodules(tmp_path, monkeypatch,
                                                                                isolated_plugins):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mypkg_abl16").mkdir()
    (tmp_path / "mypkg_abl16" / "__init__.py").write_text("")
    (tmp_path / "mypkg_abl16" / "norms.py").write_text("from . import helper\nVALUE = helper.VALUE\n")
    (tmp_path / "mypkg_abl16" / "helper.py").write_text("VALUE = 16\n")
    from ablations.plugins import load_plugins

    load_plugins(["mypkg_abl16.norms"])
    assert sys.modules["mypkg_abl16.norms"].VALUE == 16
    assert str(tmp_path) not in sys.path


# --- a full disk, a database that goes away -------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (needs root: mount), filled so that about 40 KiB are left: a results directory runs out of
    space after its first run; emptied again, it has room for the whole directory and its report (figures
    embedded in report.html)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4096k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (disk / "fill").write_bytes(b"\0" * ((4096 - 40) * 1024))
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_disk_full_during_a_grid_is_one_line_keeps_the_data_and_resumes(small_disk, tmp_path, monkeypatch, capsys):
    """A real full disk (a tmpfs), not a simulated error: the run that cannot write its result is one line, exit
    2; runs.csv and the journal stay whole; with space again, the same command redoes only what was lost."""
    from ablations.store.files import check_journal, read_runs

    from tests.reliability.helpers import ablate

    out = small_disk / "res"
    argv = ["run", "-q", "task=copy", *TINY, f"out={out}"]
    failed = ablate(*argv, cwd=tmp_path)  # a process of its own: its running unit goes stale when it exits
    assert failed.returncode == 2, failed.stderr
    err = failed.stderr
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(r"ablate: error: cannot write .*: No space left on device; what was written before is "
                     r"intact", err), err
    done = read_runs(out)  # whole, typed, no duplicate
    check_journal(out / "studies.journal")
    assert not os.path.lexists(out / "studies.journal.lock")  # no lock left behind for the next start
    assert not list(out.rglob(".*.tmp"))  # no half-written temporary file
    (small_disk / "fill").unlink()
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    runs = read_runs(out)
    assert len(runs) == 3 and set(runs["status"]) == {"ok"}
    for row in done.to_dict("records"):  # what was finished before the disk filled is kept, not redone
        kept = runs[(runs["variant"] == row["variant"]) & (runs["seed"] == row["seed"])].iloc[0]
        assert kept["wall_seconds"] == row["wall_seconds"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the server's process through /proc")
def test_a_postgresql_server_that_goes_away_mid_sweep_is_one_line(tmp_path):
    """A real server (tests/postgres.py) stopped while a study is open: the next storage call is one line with
    the password masked, not SQLAlchemy's traceback; what was told before the server went is not lost."""
    import optuna
    import psycopg

    from ablations.execute.storage import StorageLost, open_storage
    from tests import postgres

    with postgres.server() as url:
        storage = open_storage(url, tmp_path)
        study = optuna.create_study(study_name="lost", storage=storage)
        study.tell(study.ask(), 1.0)
        trial = study.ask()
        parts = re.match(r"postgresql://(\w+):([^@]+)@([\d.]+):(\d+)/(\w+)", url)
        with psycopg.connect(host=parts[3], port=int(parts[4]), user=parts[1], password=parts[2],
                             dbname=parts[5], autocommit=True) as connection:
            backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
            # Read while connected: the backend process exits with its connection.
            status = Path(f"/proc/{backend}/status")
            pid = int(re.search(r"^PPid:\s*(\d+)", status.read_text(), re.M)[1])  # the postmaster
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown: every client is disconnected
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        with pytest.raises(StorageLost) as lost:
            study.tell(trial, 2.0)
        message = str(lost.value)
        assert "\n" not in message and parts[2] not in message
        assert message.startswith(f"lost the sweep storage postgresql://{parts[1]}:***@{parts[3]}:{parts[4]}/")
        with pytest.raises(StorageLost):
            study.ask()

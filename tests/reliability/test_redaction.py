"""Secrets (issue #10): a storage URL's password is replaced by *** in everything the suite prints or writes:
error lines, logs, manifest.json, runs.csv, trials.csv, result.json, the reports."""

from __future__ import annotations

import re
import uuid

import pytest

from ablations.cli import main
from ablations.config.secrets import _redact_text, redact
from tests.reliability.helpers import TINY, snapshot

SECRET = "pw-S3cret-9f2"


def test_redact_replaces_the_password_and_nothing_else():
    assert redact(f"postgresql://ablate:{SECRET}@db:5432/ablate") == "postgresql://ablate:***@db:5432/ablate"
    assert redact("postgresql://ablate@db/ablate") == "postgresql://ablate@db/ablate"  # no password: unchanged
    override = f"sweep.storage=postgresql+psycopg://u:{SECRET}@h/d"
    assert redact(override) == "sweep.storage=postgresql+psycopg://u:***@h/d"
    url = f"postgresql://u:{SECRET}@h/d"
    text = f'connection to "h" failed for {url} (password {SECRET} rejected)'
    assert SECRET not in _redact_text(text, url) and "postgresql://u:***@h/d" in _redact_text(text, url)


def test_the_error_line_of_an_unreachable_storage_is_redacted(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "sweep=quick", f"sweep.storage=postgresql://ablate:{SECRET}@127.0.0.1:1/ablate"]) == 2
    captured = capfd.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert "cannot open sweep storage postgresql://ablate:***@127.0.0.1:1/ablate: " in captured.err
    assert SECRET not in captured.err + captured.out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_sweep_on_postgresql_writes_and_prints_no_password(tmp_path, monkeypatch, capfd, postgres_url):
    password = re.match(r"[^:]+://[^:/@]+:([^@]+)@", postgres_url)
    assert password, f"the PostgreSQL URL must carry a password: {redact(postgres_url)}"
    leak = f":{password.group(1)}@"  # the password as it sits in a URL
    monkeypatch.chdir(tmp_path)
    name = f"redact_{uuid.uuid4().hex[:8]}"  # fresh study names on a server that outlives the test
    assert main(["run", "sweep=quick", "sweep.trials=2", "sweep.seeds=1", "sweep.pruner=none", "task=copy",
                 f"ablation.name={name}", "~ablation.variants.post_norm", "~ablation.variants.no_residual", *TINY,
                 f"sweep.storage={postgres_url}", "out=res"]) == 0
    captured = capfd.readouterr()
    assert leak not in captured.out + captured.err
    files = snapshot(tmp_path / "res")
    assert "runs.csv" in files and "trials.csv" in files and "manifest.json" in files and "report.md" in files
    for relative, digest in files.items():
        if digest != "dir":
            assert leak.encode() not in (tmp_path / "res" / relative).read_bytes(), relative
    assert "sweep.storage=postgresql://" in (tmp_path / "res" / "manifest.json").read_text()
    assert ":***@" in (tmp_path / "res" / "manifest.json").read_text()


# --- issue #16: structural redaction ------------------------------------------------------------------------

#: (a storage URL or override, the secret it carries, what must survive redaction)
FORMS = [
    ("postgresql://:pw-S3cret-9f2@db/ablate", SECRET, "postgresql://:***@db/ablate"),  # empty user name
    ("postgresql://ablate:pw@S3cret(9f2@db:5432/ablate", "pw@S3cret(9f2", "postgresql://ablate:***@db:5432/ablate"),
    ("postgresql://ablate:pw:S3/cret?9f2@db/ablate", "pw:S3/cret?9f2", "postgresql://ablate:***@db/ablate"),
    ("postgresql://ablate:p%40ss-S3cret@db/ablate", "p%40ss-S3cret", "postgresql://ablate:***@db/ablate"),
    ("postgresql://ablate@db/ablate?password=pw-S3cret-9f2", SECRET, "postgresql://ablate@db/ablate?password=***"),
    ("postgresql://ablate@db/ablate?sslmode=require&sslpassword=pw-S3cret-9f2&application_name=x", SECRET,
     "postgresql://ablate@db/ablate?sslmode=require&sslpassword=***&application_name=x"),
    ("mysql+pymysql://u@h/d?PASSWORD=pw-S3cret-9f2#frag", SECRET, "mysql+pymysql://u@h/d?PASSWORD=***#frag"),
    ("sweep.storage=postgresql://u:pw S3'cret\"9f2@h/d", "pw S3'cret\"9f2", "sweep.storage=postgresql://u:***@h/d"),
    ("sweep.storage='postgresql://u:pw (S3)cret@h/d'", "pw (S3)cret", "sweep.storage='postgresql://u:***@h/d'"),
    ("+task.api_token=pw-S3cret-9f2", SECRET, "+task.api_token=***"),
    ("host=db password=pw-S3cret-9f2 dbname=ablate", SECRET, "host=db password=*** dbname=ablate"),
    ("failed for postgresql://u:pw-S3cret-9f2@h/d, retrying", SECRET, "failed for postgresql://u:***@h/d, retrying"),
]


@pytest.mark.parametrize("text, secret, expected", FORMS, ids=[f"form{i}" for i in range(len(FORMS))])
def test_structural_redaction_cuts_out_the_whole_secret(text, secret, expected):
    assert redact(text) == expected
    assert secret not in redact(text)
    assert redact(redact(text)) == redact(text)  # idempotent: what was written once is written again unchanged


def test_redaction_keeps_what_is_not_secret():
    for text in ("postgresql://ablate@db-host/ablate", "journal:/tmp/x/studies.journal", "model.residual=none",
                 "tokens_per_second: 1234.5", "task.sep_token=3", "https://arxiv.org/abs/1706.03762",
                 "postgresql://u@h/d?sslmode=require"):
        assert redact(text) == text
    from ablations.config.secrets import redact_data

    data = {"config": {"task": {"name": "copy", "n_tokens": 8}, "password": "hunter22", "list": [
        "sweep.storage=postgresql://u:hunter22@h/d"]}, "note": None}
    assert redact_data(data) == {"config": {"task": {"name": "copy", "n_tokens": 8}, "password": "***", "list": [
        "sweep.storage=postgresql://u:***@h/d"]}, "note": None}


URL = "postgresql://ablate:{}@127.0.0.1:1/ablate"


def _user_conf(cwd, monkeypatch, name: str, text: str) -> None:
    folder = cwd.parent / "myconf" / name.split("/")[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name.split('/')[1]}.yaml").write_text(text)
    monkeypatch.setenv("ABLATE_CONFIG_DIR", str(cwd.parent / "myconf"))


def _env_sweep(cwd, monkeypatch):
    monkeypatch.setenv("ABLATE_TEST_PGPASS", SECRET)
    _user_conf(cwd, monkeypatch, "sweep/pgenv", "defaults: [quick]\nstorage: postgresql://ablate:${oc.env:"
               "ABLATE_TEST_PGPASS}@127.0.0.1:1/ablate\n")


#: id, argv (with {} where the secret goes), setup, regex of the one error line; every row exits 2 and writes nothing
FAILING = [
    ("empty-user", ["run", "sweep=quick", "sweep.storage=postgresql://:{}@127.0.0.1:1/ablate", "out=res"],
     None, r"cannot open sweep storage postgresql://:\*\*\*@127\.0\.0\.1:1/ablate: "),
    ("at-and-paren", ["run", "sweep=quick", "sweep.storage='" + URL.format("{}@x(y") + "'", "out=res"], None,
     r"cannot open sweep storage postgresql://ablate:\*\*\*@127\.0\.0\.1:1/ablate: "),
    ("colon-and-slash", ["run", "sweep=quick", "sweep.storage=" + URL.format("{}:x/y"), "out=res"], None,
     r"cannot open sweep storage postgresql://ablate:\*\*\*@127\.0\.0\.1:1/ablate: "),
    ("query-password", ["run", "sweep=quick", "sweep.storage='postgresql://ablate@127.0.0.1:1/ablate?password={}'",
                        "out=res"], None, r"cannot open sweep storage .*\?password=\*\*\*: "),
    ("query-sslpassword", ["run", "sweep=quick",
                           "sweep.storage='postgresql://ablate@127.0.0.1:1/ablate?sslmode=disable&sslpassword={}'",
                           "out=res"], None, r"cannot open sweep storage .*sslpassword=\*\*\*"),
    ("query-unquoted", ["run", "sweep.storage=postgresql://ablate@127.0.0.1:1/ablate?password={}", "out=res"], None,
     r"malformed override 'sweep\.storage=postgresql://ablate@127\.0\.0\.1:1/ablate\?password=\*\*\*'"),
    ("malformed-override", ["run", "sweep.storage=" + URL.format("{}'x"), "out=res"], None,
     r"malformed override 'sweep\.storage=postgresql://ablate:\*\*\*@127\.0\.0\.1:1/ablate'"),
    ("malformed-secret-key", ["run", "+task.password={}'x", "out=res"], None,
     r"malformed override '\+task\.password=\*\*\*'"),
    ("compose-error", ["run", "+sweep.name=" + URL.format("{}"), "out=res"], None,
     r"invalid overrides \+sweep\.name=postgresql://ablate:\*\*\*@127\.0\.0\.1:1/ablate out=res: Could not"),
    ("value-echoed-by-validation", ["run", "model.d_model=" + URL.format("{}"), "out=res"], None,
     r"model\.d_model must be a positive integer, got 'postgresql://ablate:\*\*\*@127"),
    ("group-value-echoed", ["run", "sweep=[" + URL.format("{}") + "]", "out=res"], None,
     r"sweep takes one name, got 'sweep=\[postgresql://ablate:\*\*\*@127"),
    ("unset-env-interpolation", ["run", "sweep.storage=postgresql://u:{}@h/${oc.env:ABLATE_NO_SUCH_VAR}", "out=res"],
     None, r"cannot resolve sweep\.storage: .*not found"),
    ("env-interpolated-yaml", ["run", "sweep=pgenv", "out=res"], _env_sweep,
     r"cannot open sweep storage postgresql://ablate:\*\*\*@127\.0\.0\.1:1/ablate: "),
]


@pytest.mark.parametrize("name, argv, setup, pattern", FAILING, ids=[c[0] for c in FAILING])
def test_no_form_of_a_secret_reaches_an_error_line(name, argv, setup, pattern, tmp_path, monkeypatch, capfd):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    if setup is not None:
        setup(cwd, monkeypatch)
    before = snapshot(tmp_path)
    assert main([a.replace("{}", SECRET) for a in argv]) == 2
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert re.search(pattern, lines[0]), lines[0]
    assert SECRET not in captured.err + captured.out
    assert snapshot(tmp_path) == before


def test_a_secret_interpolated_into_an_ablation_file_is_in_no_file_and_a_worker_still_joins(tmp_path, monkeypatch,
                                                                                           capfd):
    """A password that a user's ablation file takes from the environment (`${oc.env:...}`) is resolved into the
    ablation the suite records: it is masked in manifest.json, the tables and the reports, and `ablate worker`
    composes it again from its own environment instead of running with the mask."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABLATE_TEST_PGPASS", SECRET)
    _user_conf(tmp_path / "cwd", monkeypatch, "ablation/envsecret", "\n".join([
        "name: envsecret",
        "description: results also go to postgresql://ablate:${oc.env:ABLATE_TEST_PGPASS}@db-host/ablate",
        "baseline: baseline", "tasks: [copy]", "seeds: [0]",
        "overrides: ['sweep.storage=postgresql://ablate:${oc.env:ABLATE_TEST_PGPASS}@db-host/ablate']",
        "variants: {baseline: []}", ""]))
    assert main(["run", "-q", "ablation=envsecret", *TINY, "out=res"]) == 0
    assert main(["worker", "-q", "res"]) == 0
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    files = snapshot(tmp_path / "res")
    assert "manifest.json" in files and "report.md" in files and "runs.csv" in files
    for relative, digest in files.items():
        if digest != "dir":
            assert SECRET.encode() not in (tmp_path / "res" / relative).read_bytes(), relative
    assert "postgresql://ablate:***@db-host/ablate" in (tmp_path / "res" / "manifest.json").read_text()

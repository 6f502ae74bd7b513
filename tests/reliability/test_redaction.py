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

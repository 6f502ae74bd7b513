"""ablations/templates.py and `ablate new`: every starting file imports, registers its name and passes `ablate check`
as written, so a researcher starts from code that runs."""

import pytest

from ablations.cli import main
from ablations.templates import render
from models.conformance import kinds
from models.errors import ConfigError
from models.kinds import KINDS


def test_there_is_a_template_for_every_kind():
    assert set(kinds()) == set(KINDS) and all(kind.template.strip() for kind in KINDS.values())


def test_render_puts_the_header_over_the_kinds_own_template():
    text = render("norm", "my_norm")
    assert text.startswith('"""my_norm: ') and "ablate train model.norm=my_norm plugins=[my_norm]" in text
    assert '@NORM.register("my_norm")' in text and "class MyNorm(nn.Module):" in text
    task = render("task", "my_task")
    assert "ablate train task=my_task plugins=[my_task]   # with $ABLATE_CONFIG_DIR/task/my_task.yaml" in task
    with pytest.raises(ConfigError, match=r"unknown kind 'nrom' \(did you mean 'norm'\?\)"):
        render("nrom", "x")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_new_file_passes_check(kind, isolated_plugins, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = f"tpl_{kind}"
    assert main(["new", kind, name]) == 0
    assert capsys.readouterr().out.strip() == f"{name}.py"
    text = (tmp_path / f"{name}.py").read_text()
    assert f'.register("{name}")' in text and f"ablate check {kind} {name} plugins=[{name}]" in text
    code = main(["check", kind, name, f"plugins=[{name}]"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out and f"(plugin: {name}): " in out.splitlines()[-1]


def test_new_refuses_to_overwrite_and_bad_names(isolated_plugins, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text("# my work\n")
    cases = [(["new", "attention", "mine"], "mine.py already exists; not overwriting it"),
             (["new", "attention", "softmax"], "attention 'softmax' is already registered"),
             (["new", "attention", "My-Attn"], "must be a lower-case Python identifier"),
             (["new", "attention", "json"], "a module named 'json' already exists"),
             (["new", "atention", "x"], "unknown kind 'atention' (did you mean 'attention'?); valid: attention")]
    for argv, fragment in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], err
    assert (tmp_path / "mine.py").read_text() == "# my work\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.py"]

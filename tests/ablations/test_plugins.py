"""ablations/plugins.py: plugins named on the command line or installed as packages register like built-ins; a
broken one is one line; and the example package (examples/plugin-sigmoid-gate) runs through list, check and an
ablation."""

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import ablations.plugins as plugins
from ablations.cli import main
from ablations.config import compose_config, to_run_config
from models.components import ATTENTION, FFN
from models.errors import ConfigError

SCRIPT = Path(sys.executable).parent / "ablate"
PLUGIN_FILE = '''
from torch import nn
from models.components import FFN


@FFN.register("{name}")
class Plugged(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x):
        return self.out_proj(x)
'''


def write_plugin(folder: Path, module: str, name: str) -> None:
    (folder / f"{module}.py").write_text(PLUGIN_FILE.format(name=name))


def test_named_module_from_the_working_directory_registers_with_its_origin(isolated_plugins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_plugin(tmp_path, "plugged_ffn", "plugged")
    plugins.load_plugins(["plugged_ffn"])
    assert "plugged" in FFN and FFN.plugin_of("plugged") == "plugged_ffn"
    assert FFN.plugin_of("mlp") is None
    cfg = to_run_config(compose_config(["model.ffn=plugged", "plugins=[plugged_ffn]", "trainer.max_steps=1"]))
    assert cfg.model.ffn == "plugged"


def test_environment_variable_names_plugins_too(isolated_plugins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_plugin(tmp_path, "env_ffn", "from_env")
    monkeypatch.setenv("ABLATE_PLUGINS", " env_ffn , ")
    assert plugins.named_plugins(None) == ["env_ffn"]
    plugins.load_plugins([])
    assert FFN.plugin_of("from_env") == "env_ffn"


def test_plugins_override_is_read_before_composing():
    assert plugins.plugins_in_overrides(["task=copy", "plugins=[a.b,c]", "model.ffn=x"]) == ["a.b", "c"]
    assert plugins.plugins_in_overrides(["plugins=one"]) == ["one"]
    assert plugins.plugins_in_overrides(["model.ffn=plugins"]) == []


def test_a_named_module_that_fails_is_one_config_error_naming_it(isolated_plugins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(ConfigError, match=r"^plugin 'broken_plugin' failed to load: RuntimeError: boom \(") as info:
        plugins.load_plugins(["broken_plugin"])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="plugin 'absent_plugin' failed to load: ModuleNotFoundError"):
        plugins.load_plugins(["absent_plugin"])
    with pytest.raises(ConfigError, match=r"name the module, not the file \(plugins=\[x\]\)"):
        plugins.load_plugins(["x.py"])


def test_a_duplicate_name_is_refused(isolated_plugins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_plugin(tmp_path, "dup_ffn", "mlp")
    with pytest.raises(ConfigError, match="plugin 'dup_ffn' failed to load: duplicate ffn name 'mlp'"):
        plugins.load_plugins(["dup_ffn"])


def test_cli_exits_2_with_one_line_for_a_broken_named_plugin(isolated_plugins, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "oops.py").write_text("import not_a_module_anywhere\n")
    assert main(["list", "plugins=[oops]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ablate: error: plugin 'oops' failed to load: ModuleNotFoundError")


class FakeEntryPoint:
    def __init__(self, name, module):
        self.name, self.module, self.dist = name, module, None


def test_a_broken_installed_plugin_is_one_warning_and_the_rest_loads(isolated_plugins, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "bad_installed.py").write_text("raise ImportError('needs a missing library')\n")
    write_plugin(tmp_path, "good_installed", "installed_ffn")
    entries = [FakeEntryPoint("bad", "bad_installed"), FakeEntryPoint("good", "good_installed")]
    monkeypatch.setattr(metadata, "entry_points", lambda group: entries if group == plugins.GROUP else [])
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    plugins.load_entry_points()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ablate: warning: plugin 'bad' (bad_installed) failed to load, skipped: "
                   "ImportError: needs a missing library"]
    assert FFN.plugin_of("installed_ffn") == "good_installed"


# --- the example package, installed by the set-up (Makefile) -------------------------------------------------------
def example_installed() -> bool:
    return any(e.name == "sigmoid_gate" for e in metadata.entry_points(group=plugins.GROUP))


needs_example = pytest.mark.skipif(not example_installed(), reason="examples/plugin-sigmoid-gate is not installed "
                                   "(`make install` installs it)")


@needs_example
def test_example_plugin_is_listed_and_passes_check(capsys):
    assert main(["list", "-v"]) == 0
    listed = capsys.readouterr().out
    assert "sigmoid_gate (plugin: ablate_sigmoid_gate)" in listed
    assert "options gate=headwise,init_bias=0.0" in listed
    assert main(["check", "attention", "sigmoid_gate"]) == 0
    checked = capsys.readouterr().out
    assert "PASS causal" in checked and "FAIL" not in checked
    assert checked.splitlines()[-1].startswith("attention sigmoid_gate (plugin: ablate_sigmoid_gate): 9 passed, 0 failed")


@needs_example
@pytest.mark.slow
def test_console_script_finds_the_installed_example(tmp_path):
    listed = subprocess.run([str(SCRIPT), "list"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "sigmoid_gate (plugin: ablate_sigmoid_gate)" in listed.stdout


@needs_example
def test_example_plugin_options_reach_the_module_and_the_config():
    plugins.load_entry_points()
    from models import build_model

    cfg = to_run_config(compose_config(["model.attention=sigmoid_gate", "+model.options.sigmoid_gate.gate=elementwise",
                                        "+model.options.sigmoid_gate.init_bias=-2"]))
    assert cfg.model.options == {"sigmoid_gate": {"gate": "elementwise", "init_bias": -2.0}}
    attention = build_model(cfg.model, vocab_size=5).blocks[0].attn
    assert attention.gate.out_features == cfg.model.d_model and attention.init_bias == -2.0
    default = to_run_config(compose_config(["model.attention=sigmoid_gate"]))
    assert default.model.options == {"sigmoid_gate": {"gate": "headwise", "init_bias": 0.0}}
    assert default.hash() != cfg.hash()
    assert ATTENTION.plugin_of("sigmoid_gate") == "ablate_sigmoid_gate"
    with pytest.raises(ConfigError, match="unknown model.options.sigmoid_gate.gate 'both'; valid: headwise"):
        to_run_config(compose_config(["model.attention=sigmoid_gate", "+model.options.sigmoid_gate.gate=both"]))


@needs_example
@pytest.mark.slow
def test_example_plugin_runs_through_an_ablation_into_the_report(tmp_path):
    conf = tmp_path / "myconf" / "ablation"
    conf.mkdir(parents=True)
    (conf / "gated.yaml").write_text(
        "name: gated\ndescription: Softmax against gated attention.\nbaseline: baseline\ntasks: [copy]\n"
        "seeds: [0]\nvariants:\n  baseline: []\n  gated: [model.attention=sigmoid_gate]\n")
    env = {**__import__("os").environ, "ABLATE_CONFIG_DIR": str(tmp_path / "myconf"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(SCRIPT), "run", "-q", "ablation=gated", "trainer.max_steps=20", "trainer.val_every=10",
                           "task.n_train=256", "task.n_eval=64", "out=out"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| gated | copy |" in report
    result = json.loads((tmp_path / "out" / "runs" / "gated" / "copy" / "s0" / "result.json").read_text())
    assert result["status"] == "ok"
    assert result["config"]["model"]["options"] == {"sigmoid_gate": {"gate": "headwise", "init_bias": 0.0}}

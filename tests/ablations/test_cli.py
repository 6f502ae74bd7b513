"""The command line as a user meets it: one-line errors with exit status 2, and listings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablations.cli import main
from models import REGISTRIES
from tasks import TASKS

BAD_INPUT = [
    (["train", "task=nope"], ["unknown task 'nope'", "copy", "digits"]),
    (["train", "model.residual=nope"], ["unknown residual 'nope'", "none", "standard", "rezero"]),
    (["train", "model.attention=none", "model.position=rope"], ["model.position=rope", "model.attention=none"]),
    (["train", "model.memory=recurrent"], ["model.memory=recurrent", "model.segment_len"]),
    (["train", "model.n_heads=4", "model.kv_heads=3"], ["model.kv_heads=3"]),
    (["train", "model.atention=linear"], ["unknown config key 'model.atention'", "model.attention"]),
    (["train", "model.n_heads=3"], ["model.d_model=64", "model.n_heads=3"]),
    (["train", "model.d_model=-8"], ["model.d_model must be a positive integer"]),
    (["train", "trainer.max_steps=1.5"], ["trainer.max_steps must be an integer"]),
    (["train", "task=digits", "task.patch=3"], ["task.patch=3", "1, 2, 4, 8"]),
    (["train", "optim.lr=0"], ["optim.lr must be positive"]),
    (["train", "seed=-1"], ["seed must be a non-negative integer"]),
    (["train", "foo"], ["malformed override 'foo'"]),
    (["train", "+bogus=1"], ["unknown config key 'bogus'"]),
    (["run", "ablation=nope"], ["unknown ablation 'nope'", "default"]),
    (["run", "sweep=nope"], ["unknown sweep 'nope'", "none"]),
    (["train", "plugins=[no_such_plugin]"], ["plugin 'no_such_plugin' failed to load", "ModuleNotFoundError"]),
    (["train", "+model.options.softmax.x=1"], ["model.options.softmax", "declares no Options"]),
    (["train", "~model.norm"], ["'~model.norm' deletes a config key", "set it instead, e.g. model.norm=<value>",
                                "~sweep.space.<name>", "~ablation.variants.<name>"]),
    (["run", "~task"], ["'~task' deletes a config key", "task=<name>"]),
    (["run", "~trainer.max_steps=400"], ["'~trainer.max_steps=400' deletes a config key"]),
    (["check", "atention", "softmax"], ["unknown kind 'atention'", "attention, ffn, norm"]),
    (["check", "attention", "nope"], ["unknown attention 'nope'", "softmax"]),
    (["check", "attention", "softmax", "task=copy"], ["unexpected argument 'task=copy'"]),
]


@pytest.mark.parametrize("argv, expected", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_with_exit_status_2_and_writes_nothing(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ablate: error: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_debug_flag_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="unknown task"):
        main(["train", "--debug", "task=nope"])


def test_console_script_exit_status_and_no_traceback(tmp_path):
    script = Path(sys.executable).parent / "ablate"
    done = subprocess.run([str(script), "train", "model.residual=nope"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "valid: gated, none, rezero, scaled, standard" in done.stderr


def test_list_shows_every_registered_name(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for registry in REGISTRIES.values():
        for name in registry.names():
            assert name in out
    for name in TASKS.names():
        assert name in out
    from models.components import INIT

    assert f"init            {', '.join(INIT.names())}" in out
    assert "default" in out


@pytest.mark.slow
def test_train_writes_result_json_and_lightning_log(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-q", "task=copy", "model.residual=none", "trainer.max_steps=20",
                 "trainer.val_every=10", "trainer.log_every=5", "out=one"]) == 0
    assert capsys.readouterr().out.strip() == str(Path("one") / "result.json")
    result = json.loads((tmp_path / "one" / "result.json").read_text())
    for key in ("status", "score", "task", "variant", "seed", "config", "steps", "wall_seconds", "n_params",
                "tokens_per_second", "versions"):
        assert key in result
    assert result["status"] == "ok" and result["steps"] == 20
    assert result["variant"] == "residual=none" and result["task"] == "copy"
    assert result["config"]["model"]["residual"] == "none"
    assert 0.0 <= result["score"] <= 1.0
    log = (tmp_path / "one" / "metrics.csv").read_text().splitlines()
    assert log[0].split(",") and "train/loss" in log[0] and "val/accuracy" in log[0]


def test_report_of_a_directory_without_runs_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a results directory" in err[0]


def test_check_prints_one_line_per_check_and_exits_1_on_a_failure(isolated_plugins, capsys):
    from torch import nn

    from models.components import FFN

    assert main(["check", "ffn", "mlp"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "PASS registered" and "PASS gradients" in lines
    assert lines[-1].startswith("ffn mlp: ") and " 0 failed" in lines[-1]

    @FFN.register("frozen_out")
    class FrozenOut(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)
            self.spare = nn.Linear(cfg.d_model, cfg.d_model)  # never used: no gradient reaches it

        def forward(self, x):
            return self.out_proj(x)

    assert main(["check", "ffn", "frozen_out"]) == 1
    out = capsys.readouterr().out
    assert "FAIL gradients: no gradient reaches parameter 'spare.weight'" in out



def test_list_verbose_shows_each_kind_interface_and_declared_capabilities(capsys):
    from models.components import REGISTRIES
    from models.kinds import KINDS

    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    for kind in REGISTRIES:
        assert f"interface: {KINDS[kind].interface}" in out, kind
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ") and "interface" not in line}
    assert lines["softmax"].endswith("provides causal,prefix,rotate,score_bias; O(T^2)")
    assert "O(T)" in lines["linear"] and "    none          removes the sublayer" in out  # attention/ffn none
    assert "needs prefix" in lines["persistent"] and "needs segment_len" in lines["recurrent"]
    assert "needs rotate" in lines["rope"]


def _imported_by(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running `code`."""
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                          capture_output=True, text=True, timeout=300, check=True)
    return {name.split(".")[0] for name in done.stdout.split()}


def test_importing_the_cli_and_building_its_parser_imports_no_torch():
    # `ablate --help` (and any usage error) ends inside parse_args: nothing heavy may load before it.
    imported = _imported_by("import ablations.cli; ablations.cli.build_parser()")
    assert {"torch", "lightning", "optuna", "hydra", "matplotlib", "seaborn", "pandas"}.isdisjoint(imported)


def test_list_imports_the_registries_but_no_training_tuning_or_plotting_stack():
    imported = _imported_by("import contextlib, io\nfrom ablations.cli import main\n"
                            "with contextlib.redirect_stdout(io.StringIO()): assert main(['list']) == 0")
    assert "torch" in imported  # the registries hold torch modules
    assert {"lightning", "optuna", "hydra", "matplotlib", "seaborn", "pandas"}.isdisjoint(imported)


@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
def test_output_into_a_closed_pipe_ends_quietly(unbuffered):
    # `ablate list | head -1`, deterministically: the reader is gone before the first write.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "ablate"), "list", "-v"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=300, env=env)
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert done.returncode == 141


def test_output_into_a_pipe_closed_after_the_first_line_ends_quietly():
    script = Path(sys.executable).parent / "ablate"
    process = subprocess.Popen([str(script), "list", "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout.readline().startswith(b"Components")
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) in (0, 141)  # 0 when every line was already in the pipe
    assert "Traceback" not in stderr and "Error" not in stderr


def test_a_broken_pipe_other_than_stdout_is_not_hidden(monkeypatch):
    import ablations.cli as cli

    def broken(args):
        raise BrokenPipeError("a worker's pipe")

    monkeypatch.setattr(cli, "cmd_list", broken)
    with pytest.raises(BrokenPipeError, match="a worker's pipe"):
        main(["list"])


def test_a_plugin_loaded_before_any_registry_is_credited_with_its_own_names_only(tmp_path):
    # In a fresh process the plugin's `from models.components import FFN` is the first import of the registries,
    # which registers every built-in then: they must not be credited to the plugin.
    (tmp_path / "first_ffn.py").write_text(
        "from torch import nn\nfrom models.components import FFN\n\n\n@FFN.register('first')\n"
        "class First(nn.Module):\n    def __init__(self, cfg):\n        super().__init__()\n"
        "        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)\n\n    def forward(self, x):\n"
        "        return self.out_proj(x)\n")
    env = {k: v for k, v in os.environ.items() if k != "ABLATE_PLUGINS"}
    done = subprocess.run([str(Path(sys.executable).parent / "ablate"), "list", "plugins=[first_ffn]"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(plugin: first_ffn)") == 1 and "first (plugin: first_ffn)" in done.stdout
    for builtin in ("mlp", "softmax", "layernorm", "standard", "learned", "copy", "digits"):
        assert f"{builtin} (plugin" not in done.stdout and not any(
            line.split()[:1] == [builtin] and "plugin:" in line for line in done.stdout.splitlines())


def _as_overrides(data: dict, prefix: str = "") -> list[str]:
    """A resolved config as the overrides that set every leaf (Hydra's grammar), to compose it back."""
    import json as _json

    out = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += _as_overrides(value, f"{name}.")
        else:
            out.append(f"{name}={_json.dumps(value)}" if not isinstance(value, str) else f"{name}='{value}'")
    return out


def test_config_prints_the_resolved_configuration_which_composes_back_to_itself(capsys):
    import yaml

    from ablations.config import compose_config
    from omegaconf import OmegaConf

    overrides = ["task=digits", "model.residual=rezero", "sweep=quick", "sweep.trials=4", "optim.lr=2e-3"]
    assert main(["config", *overrides]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = OmegaConf.to_container(compose_config(overrides), resolve=True)
    assert printed == expected
    assert printed["model"]["residual"] == "rezero" and printed["sweep"]["trials"] == 4
    leaves = [o for o in _as_overrides(printed) if not o.startswith(("sizes.", "ablation.", "sweep.space."))]
    again = OmegaConf.to_container(compose_config(["task=digits", "sweep=quick", *leaves]), resolve=True)
    assert again == printed


def test_config_masks_secrets_and_rejects_bad_input_in_one_line(capsys):
    assert main(["config", "sweep.storage=postgresql://me:s3cret@db/x"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "postgresql://me:***@db/x" in out
    assert main(["config", "model.atention=linear"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown config key 'model.atention'" in err and len(err.splitlines()) == 1

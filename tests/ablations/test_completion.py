"""ablations/completion.py: the shell completes config keys, then the registered names a key takes (plugins
included), through argcomplete's own protocol."""

import os
import subprocess
import sys

from ablations.completion import complete_overrides, config_keys


def test_keys_complete_with_their_equals_sign_and_values_with_registered_names():
    keys = config_keys()
    assert {"model.attention", "trainer.max_steps", "optim.lr", "task", "sweep", "ablation", "size"} <= set(keys)
    assert "model.attention=" in complete_overrides("model.att")
    attention = complete_overrides("model.attention=")
    assert {"model.attention=softmax", "model.attention=linear"} <= set(attention)
    assert complete_overrides("task=co") == ["task=copy"]
    assert "model.init=gpt2" in complete_overrides("model.init=")
    assert "ablation=default" in complete_overrides("ablation=")
    assert complete_overrides("+model.opt")[0].startswith("+model.options")


def test_the_shell_protocol_completes_a_half_typed_key(tmp_path):
    line = "ablate train model.resid"
    out = tmp_path / "completions"
    env = dict(os.environ, _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line, COMP_POINT=str(len(line)),
               _ARGCOMPLETE_STDOUT_FILENAME=str(out))
    done = subprocess.run([sys.executable, "-m", "ablations.cli"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "model.residual=" in out.read_text().split("\n")

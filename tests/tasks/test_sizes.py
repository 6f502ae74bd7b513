"""`size=standard` is one rule (ablations/config `standard_size`): three times each task's quick steps, validated
six times. The task files no longer restate it; its effect must be what the 17 restated presets gave."""

import pytest

from ablations.config import compose_config, standard_size
from tasks import TASKS

#: The presets the task files stated before the rule moved into code: task -> (quick steps, standard steps,
#: standard val_every).
STATED = {"addition": (800, 2400, 400), "assoc_recall": (800, 2400, 400), "char_lm": (600, 1800, 300),
          "copy": (600, 1800, 300), "digits": (600, 1800, 300), "digits_pixels": (500, 1500, 250),
          "dyck": (600, 1800, 300), "induction": (800, 2400, 400), "listops": (600, 1800, 300),
          "markov": (600, 1800, 300), "modular_add": (1500, 4500, 750), "moving_digits": (1500, 4500, 750),
          "parity": (1000, 3000, 500), "permutation": (600, 1800, 300), "reverse": (600, 1800, 300),
          "selective_copy": (600, 1800, 300), "sort": (600, 1800, 300), "spoken_digits": (400, 1200, 200)}


def test_the_rule_reproduces_every_preset_the_files_stated():
    for quick, steps, every in STATED.values():
        assert standard_size(quick) == [f"trainer.max_steps={steps}", f"trainer.val_every={every}"]


@pytest.mark.parametrize("task", ["copy", "modular_add", "parity", "spoken_digits"])  # each kind of budget
def test_size_standard_is_three_times_the_quick_budget(task):
    quick = compose_config([f"task={task}"]).trainer
    standard = compose_config([f"task={task}", "size=standard"])
    assert standard.trainer.max_steps == 3 * quick.max_steps
    assert standard.trainer.val_every == 3 * quick.max_steps // 6
    if quick.max_steps == STATED[task][0]:  # a budget the calibration left alone: exactly as before
        assert (standard.trainer.max_steps, standard.trainer.val_every) == STATED[task][1:]
    assert list(standard.sizes.standard) == standard_size(quick.max_steps)


def test_the_command_line_still_wins_and_does_not_move_the_rule():
    cfg = compose_config(["task=copy", "size=standard", "trainer.max_steps=7"])
    own = compose_config(["task=copy"]).trainer.max_steps
    assert cfg.trainer.max_steps == 7 and cfg.trainer.val_every == 3 * own // 6
    assert compose_config(["task=copy", "size=standard", "trainer.val_every=11"]).trainer.val_every == 11


def test_every_registered_task_has_a_file_without_a_restated_preset():
    from ablations.config import conf_dir

    for task in TASKS.names():
        path = conf_dir() / "task" / f"{task}.yaml"
        if path.exists():
            assert "sizes:" not in path.read_text(), f"{path.name} restates the size rule"

"""ablations/config.py: composing conf/ with overrides, strict validation, the config hash; the shipped YAML."""

import dataclasses
import re

import pytest
from omegaconf import OmegaConf

from ablations.config import (OptimConfig, RunConfig, TrainerConfig, compose_config, conf_dir,
                              dedupe_overrides, group_options, to_run_config)
from ablations.config.ablation import Ablation
from models import ModelConfig
from models.components import RESIDUAL
from models.errors import ConfigError
from tasks import TASKS


def run_config(overrides=()):
    return to_run_config(compose_config(list(overrides)))


@pytest.fixture(scope="module")
def default_run():
    return run_config()


def yaml(path):
    return OmegaConf.to_container(OmegaConf.load(path))


# --- defaults -----------------------------------------------------------------------------------------------

def test_defaults_compose(default_run):
    assert isinstance(default_run, RunConfig)
    assert isinstance(default_run.model, ModelConfig)
    assert isinstance(default_run.optim, OptimConfig) and isinstance(default_run.trainer, TrainerConfig)
    assert default_run.seed == 0
    assert default_run.task["name"] == "copy"
    baseline = yaml(conf_dir() / "model" / "baseline.yaml")
    assert default_run.model == ModelConfig.from_dict(baseline)


def test_group_options_come_from_the_yaml_files():
    for group in ("model", "task", "trainer", "sweep", "ablation"):
        assert group_options(group) == tuple(sorted(p.stem for p in (conf_dir() / group).glob("*.yaml")))
    assert {"copy", "digits"} <= set(group_options("task"))


# --- bad input: one line, naming the valid choices -----------------------------------------------------------

BAD = {
    "task=nope": ["unknown task 'nope'", "valid: " + ", ".join(group_options("task"))],
    "model.atention=linear": ["model.atention", "did you mean 'model.attention'"],
    "model.residual=nope": ["'nope'"] + RESIDUAL.names(),
    "trainer.max_steps=0": ["trainer.max_steps", "positive"],
    "optim.lr=abc": ["optim.lr", "number", "'abc'"],
    "foo": ["malformed override 'foo'", "key=value"],
    "+foo=1": ["'foo'", "model", "task", "trainer", "optim", "seed"],
    "model.n_heads=3": ["model.n_heads=3", "model.d_model=64"],
    "model=nope": ["unknown model 'nope'", "baseline"],
    "seed=-1": ["seed", "non-negative"],
    "task.lenght=4": ["task.lenght", "did you mean 'task.length'"],
}


@pytest.mark.parametrize("override", list(BAD))
def test_bad_override_is_one_line_naming_valid_choices(override):
    with pytest.raises(ConfigError) as info:
        run_config([override])
    message = str(info.value)
    assert "\n" not in message
    for fragment in BAD[override]:
        assert fragment in message, f"{fragment!r} not in {message!r}"


OPTIM = dict(lr=1e-3, warmup_steps=0, weight_decay=0.0, batch_size=8)
TRAINER = dict(max_steps=10, val_every=5, log_every=5, accelerator="cpu", devices=1, strategy="auto", precision="32-true",
               eval_batch_size=16, divergence_factor=4.0)


@pytest.mark.parametrize("key,value,fragment", [
    ("lr", 0, "positive"), ("lr", -1e-3, "positive"), ("lr", "abc", "a number"), ("lr", True, "a number"),
    ("warmup_steps", -1, ">= 0"), ("warmup_steps", 1.5, "an integer"), ("weight_decay", -0.1, ">= 0"),
    ("batch_size", 0, "positive"), ("batch_size", 2.5, "an integer")])
def test_optim_values_are_checked(key, value, fragment):
    with pytest.raises(ConfigError) as info:
        OptimConfig(**{**OPTIM, key: value})
    assert f"optim.{key}" in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize("key,value", [("max_steps", 0), ("val_every", -1), ("log_every", 1.0), ("devices", 0),
                                       ("eval_batch_size", True), ("divergence_factor", 0), ("accelerator", "tpu"),
                                       ("strategy", "fsdp?"), ("precision", "8-bit")])
def test_trainer_values_are_checked(key, value):
    with pytest.raises(ConfigError) as info:
        TrainerConfig(**{**TRAINER, key: value})
    assert f"trainer.{key}" in str(info.value)
    if key == "accelerator":
        assert "valid: auto, cpu, gpu, cuda, mps" in str(info.value)


def test_valid_sections_construct():
    assert OptimConfig(**OPTIM).lr == 1e-3 and TrainerConfig(**TRAINER).max_steps == 10


def test_unknown_key_lists_the_section_keys():
    with pytest.raises(ConfigError) as info:
        run_config(["model.atention=linear"])
    for field in dataclasses.fields(ModelConfig):
        assert f"model.{field.name}" in str(info.value)


def test_a_list_for_a_component_name_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        run_config(["model.attention=[softmax,softmax]"])
    assert "attention" in str(info.value) and "\n" not in str(info.value)


def test_task_parameters_are_validated_after_the_task_is_chosen():
    with pytest.raises(ConfigError, match="task.patch=3 must divide"):
        run_config(["task=digits", "task.patch=3"])


# --- values and precedence ---------------------------------------------------------------------------------

# The precedence comes from the defaults list of conf/config.yaml, the same for every task: two tasks suffice
# (every task YAML is checked against its task, without composing, below).
@pytest.mark.parametrize("stem", ["copy", "digits"])
def test_a_task_brings_its_own_defaults(stem):
    data = yaml(conf_dir() / "task" / f"{stem}.yaml")
    run = run_config([f"task={stem}"])
    defaults = {f.name: f.default for f in dataclasses.fields(TASKS.get(stem).Params)}
    assert run.task == {**defaults, **data["task"]}  # the file states only what differs from the code's defaults
    for key, value in data.get("optim", {}).items():
        assert getattr(run.optim, key) == value, f"optim.{key}"
    for key, value in data.get("trainer", {}).items():
        assert getattr(run.trainer, key) == value, f"trainer.{key}"


def test_digits_picks_the_digits_budget():
    run = run_config(["task=digits"])
    assert run.task == {"name": "digits", "patch": 2}
    data = yaml(conf_dir() / "task" / "digits.yaml")
    assert run.optim == OptimConfig(**data["optim"])
    assert run.trainer.max_steps == data["trainer"]["max_steps"]


def test_command_line_overrides_win_over_the_task_defaults():
    run = run_config(["task=digits", "optim.lr=0.25", "trainer.max_steps=7", "model.residual=none", "seed=3"])
    assert run.optim.lr == 0.25 and run.trainer.max_steps == 7
    assert run.model.residual == "none" and run.seed == 3
    assert run.task["name"] == "digits"


# --- the hash -----------------------------------------------------------------------------------------------

def test_hash_is_stable_across_composes(default_run):
    assert re.fullmatch(r"[0-9a-f]{12}", default_run.hash())
    assert run_config().hash() == default_run.hash()
    assert run_config(["model.d_model=64"]).hash() == default_run.hash()  # the same value


@pytest.mark.parametrize("override", ["model.d_model=32", "seed=1", "task.length=5"])
def test_hash_changes_with_any_value(default_run, override):
    assert run_config([override]).hash() != default_run.hash()


def test_dedupe_keeps_the_last_of_each_key_in_order():
    assert dedupe_overrides(["model.d_model=8", "seed=1", "model.d_model=16", "task=copy"]) == \
        ["seed=1", "model.d_model=16", "task=copy"]


# --- the shipped YAML ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted((conf_dir() / "task").glob("*.yaml")), ids=lambda p: p.stem)
def test_task_yaml_matches_its_task(path):
    data = yaml(path)["task"]
    name = data.pop("name")
    assert name == path.stem
    task_cls = TASKS.get(name)
    defaults = {f.name: f.default for f in dataclasses.fields(task_cls.Params)}
    assert set(data) <= set(defaults)
    restated = [key for key, value in data.items() if value == defaults[key]]
    assert not restated, f"{path.name} restates its code defaults: {restated}"  # a default lives in one place
    task_cls(**data)  # and the values are valid


@pytest.mark.parametrize("name", TASKS.names())
def test_every_registered_task_has_a_yaml(name):
    # otherwise `task=<name>` is refused: the group's options are the YAML files
    assert name in group_options("task")


@pytest.mark.parametrize("path", sorted((conf_dir() / "model").glob("*.yaml")), ids=lambda p: p.stem)
def test_model_yaml_sets_every_field(path):
    data = yaml(path)
    assert set(data) == {f.name for f in dataclasses.fields(ModelConfig)}
    ModelConfig.from_dict(data)


@pytest.mark.parametrize("path", sorted((conf_dir() / "ablation").glob("*.yaml")), ids=lambda p: p.stem)
def test_ablation_yaml_parses_and_each_variant_composes(path):
    from omegaconf import OmegaConf

    from ablations.config.ablation import Suite, load_ablation, task_overrides

    # composed, as `ablate run` reads it: a catalogue file's `baseline: ${model.attention}` interpolates
    spec = load_ablation(OmegaConf.to_container(compose_config([f"ablation={path.stem}"]).ablation, resolve=True))
    assert spec.name == path.stem
    for ablation in (spec.parts.values() if isinstance(spec, Suite) else [spec]):
        hashes = set()
        for variant, overrides in ablation.variants.items():
            run = run_config([*ablation.overrides, *task_overrides(ablation.tasks[0]), *overrides])
            hashes.add(run.hash())
        assert len(hashes) == len(ablation.variants), f"two variants of {ablation.name} describe the same run"



@pytest.mark.parametrize("section,key", [("optim", "lr"), ("trainer", "divergence_factor")])
def test_nan_numbers_are_rejected(section, key):
    cls, values = (OptimConfig, OPTIM) if section == "optim" else (TrainerConfig, TRAINER)
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        cls(**{**values, key: float("nan")})


@pytest.mark.parametrize("task", sorted(TASKS.names()))
def test_every_task_has_a_standard_size_with_a_bigger_budget(task):
    quick = to_run_config(compose_config([f"task={task}"]))
    standard = to_run_config(compose_config([f"task={task}", "size=standard"]))
    assert standard.trainer.max_steps > quick.trainer.max_steps
    explicit = to_run_config(compose_config([f"task={task}", "size=standard", "trainer.max_steps=5"]))
    assert explicit.trainer.max_steps == 5  # the command line wins over the size preset


def test_an_unknown_size_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown size 'huge' for task copy; valid: quick, standard"):
        compose_config(["size=huge"])


def test_user_config_directory_adds_ablations_without_editing_ours(tmp_path, monkeypatch):
    (tmp_path / "ablation").mkdir()
    (tmp_path / "ablation" / "mine.yaml").write_text(
        "name: mine\ndescription: my own\nbaseline: baseline\ntasks: [copy]\nseeds: [0]\n"
        "variants:\n  baseline: []\n  post: [model.norm_placement=post]\n")
    assert "mine" not in group_options("ablation")
    monkeypatch.setenv("ABLATE_CONFIG_DIR", str(tmp_path))
    assert "mine" in group_options("ablation") and "default" in group_options("ablation")
    assert compose_config(["ablation=mine"]).ablation.variants.post == ["model.norm_placement=post"]
    assert compose_config([]).ablation.name == "default"  # ours still compose as before
    monkeypatch.setenv("ABLATE_CONFIG_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="ABLATE_CONFIG_DIR=.*missing is not a directory"):
        group_options("ablation")


def test_deleting_an_entry_of_a_named_mapping_is_allowed():
    cfg = compose_config(["sweep=quick", "~sweep.space.weight_decay", "~ablation.variants.post_norm"])
    assert sorted(cfg.sweep.space) == ["lr", "warmup_frac"] and sorted(cfg.ablation.variants) == ["baseline",
                                                                                              "no_residual"]
    cfg = compose_config(["ablation=claims", "~ablation.parts.depth", "~ablation.parts.components.variants.rope"])
    assert "depth" not in cfg.ablation.parts and "rope" not in cfg.ablation.parts.components.variants


@pytest.mark.parametrize("override", ["~model.norm", "~model", "~seed", "~plugins", "~sweep.space", "~optim.lr=1e-3",
                                      "~ablation.variants", "~task.length"])
def test_deleting_a_key_that_has_a_default_is_an_error_naming_what_may_be_deleted(override):
    key = override.lstrip("~").split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"'{override}' deletes a config key")) as error:
        compose_config([override])
    assert f"e.g. {key}=<" in str(error.value) and "~sweep.space.<name>" in str(error.value)


def test_ablation_descriptions_are_read_from_the_files_as_a_compose_reads_them(tmp_path, monkeypatch):
    from ablations.config import ablation_description

    for name in group_options("ablation"):
        assert ablation_description(name) == compose_config([f"ablation={name}"]).ablation.description
    (tmp_path / "ablation").mkdir()
    plain = "name: {n}\ndescription: {d}\nbaseline: baseline\ntasks: [copy]\nseeds: [0]\nvariants: {{baseline: []}}\n"
    (tmp_path / "ablation" / "mine.yaml").write_text(plain.format(n="mine", d="my own"))
    # Only a compose reads these right: an interpolation, and a defaults list that brings the description.
    (tmp_path / "ablation" / "interpolated.yaml").write_text(plain.format(n="interpolated", d="on ${task.name}"))
    (tmp_path / "ablation" / "derived.yaml").write_text("defaults: [mine]\nname: derived\n")
    monkeypatch.setenv("ABLATE_CONFIG_DIR", str(tmp_path))
    assert ablation_description("mine") == "my own"
    assert ablation_description("interpolated") == "on copy"
    assert ablation_description("derived") == compose_config(["ablation=derived"]).ablation.description == "my own"


# --- the former model fields (#19: moved into components' options) ---------------------------------------------

@pytest.mark.parametrize("former,current", [
    (["model.attention=local", "model.window=4"], ["model.attention=local", "+model.options.local.window=4"]),
    (["model.attention=performer", "++model.n_features=32"], ["model.attention=performer",
                                                               "+model.options.performer.n_features=32"]),
    (["model.memory=xl", "model.segment_len=8", "model.memory_size=16"],
     ["model.memory=xl", "model.segment_len=8", "+model.options.xl.cache_len=16"]),
    (["model.memory=knn", "model.segment_len=8", "model.memory_size=4"],
     ["model.memory=knn", "model.segment_len=8", "+model.options.knn.top_k=4", "+model.options.knn.kept_segments=4"]),
], ids=["window", "n_features", "xl", "knn"])
def test_an_override_of_a_former_field_composes_to_its_option(former, current):
    # what manifests (which `ablate worker` composes again), ablation files and commands written before the move say
    old, new = run_config(former), run_config(current)
    assert old == new
    assert old.hash() == new.hash()
    assert compose_config(former).model.options == compose_config(current).model.options  # `ablate config` shows it


def test_a_former_field_is_still_in_the_run_hash_under_its_old_name(default_run):
    # the hash is taken over the shape before the move: the option of the selected component, else the old default
    local = run_config(["model.attention=local", "+model.options.local.window=4"])
    assert local.model.hash_form()["window"] == 4 and default_run.model.hash_form()["window"] == 16
    assert local.hash() != run_config(["model.attention=local"]).hash()
    # that the hashes are the ones runs recorded before the move: tests/reliability/test_references_resume.py

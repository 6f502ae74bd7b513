"""tasks/base.py: the contract every registered task honours (parametrised over TASKS, so new tasks are covered)."""

import dataclasses
import math

import pytest
import torch

from ablations.execute.module import batch_scores
from models import ModelConfig, build_model
from models.errors import ConfigError
from tasks import IGNORE, TASKS
from tasks.base import SPLITS, Split, cache_dir, positive_int, split_generator, user_cache_dir

NAMES = TASKS.names()
N = 12  # examples per generated split: enough to tell splits and seeds apart, cheap for costly tasks


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Tasks that cache generated data (tasks.base.cache_dir) write into a temporary folder, not the checkout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ABLATE_CACHE", str(tmp_path_factory.mktemp("ablate_cache")))
        yield


def make(name):
    return TASKS.get(name)()


def small_n(task, split):
    return min(N, task.split_size(split))


_SPLITS: dict = {}


def cached_split(name, split, seed=0):
    """Each (task, split, seed) is generated once per test session; determinism is tested on fresh copies."""
    key = (name, split, seed)
    if key not in _SPLITS:
        task = make(name)
        _SPLITS[key] = task.make_split(split, small_n(task, split), seed)
    return _SPLITS[key]


def test_registry_holds_the_shipped_tasks():
    assert {"copy", "digits"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_task_name_is_its_registered_name(name):
    assert make(name).name == name


@pytest.mark.parametrize("name", NAMES)
def test_declared_kinds_are_valid(name):
    task = make(name)
    assert task.input_kind in ("tokens", "continuous")
    assert task.output_kind in ("token", "sequence")
    assert isinstance(task.causal, bool)
    assert task.modality
    assert math.isfinite(task.chance)
    if task.metric == "accuracy":
        assert task.higher_is_better and task.chance == pytest.approx(1 / task.n_classes)
    # the solved level is better than guessing
    assert (task.solved_at > task.chance) if task.higher_is_better else (task.solved_at < task.chance)
    if task.input_kind == "tokens":
        assert task.vocab_size and task.input_dim is None
    else:
        assert task.input_dim and task.vocab_size is None


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_tensors(name):
    first = cached_split(name, "train")
    again = make(name).make_split("train", len(first), seed=0)  # a fresh task object
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.targets, again.targets)


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_change_the_training_data(name):
    assert not torch.equal(cached_split(name, "train", 0).inputs, cached_split(name, "train", 1).inputs)


@pytest.mark.parametrize("name", NAMES)
def test_splits_differ(name):
    data = {split: cached_split(name, split).inputs for split in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        n = min(len(data[a]), len(data[b]))
        assert data[a].shape[1:] != data[b].shape[1:] or not torch.equal(data[a][:n], data[b][:n]), (a, b)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", NAMES)
def test_tensors_follow_the_declared_layout(name, split):
    task = make(name)
    data = cached_split(name, split)
    n = small_n(task, split)
    assert isinstance(data, Split) and len(data) == n
    time = data.inputs.shape[1]
    assert 0 < time <= task.max_len()
    if task.input_kind == "tokens":
        assert data.inputs.dtype == torch.long and data.inputs.dim() == 2
        assert data.inputs.min() >= 0 and data.inputs.max() < task.vocab_size
    else:
        assert data.inputs.is_floating_point() and data.inputs.shape == (n, time, task.input_dim)
        assert torch.isfinite(data.inputs).all()
    assert data.targets.dtype == torch.long
    if task.output_kind == "token":
        assert data.targets.shape == (n, time)
    else:
        assert data.targets.shape == (n,)
    scored = data.targets[data.targets != IGNORE]
    assert scored.numel() > 0
    assert scored.min() >= 0 and scored.max() < task.n_classes


@pytest.mark.parametrize("name", NAMES)
def test_a_model_built_from_the_task_description_fits_its_data(name):
    task = make(name)
    data = cached_split(name, "val")
    torch.manual_seed(0)
    model = build_model(ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32), vocab_size=task.vocab_size,
                        input_dim=task.input_dim, out_dim=task.n_classes, causal=task.causal,
                        head="token" if task.output_kind == "token" else "mean", max_len=task.max_len())
    loss_sum, correct, count = batch_scores(model(data.inputs), data.targets)
    assert torch.isfinite(loss_sum)
    assert count == (data.targets != IGNORE).sum()
    assert 0 <= correct <= count


@pytest.mark.parametrize("name", NAMES)
def test_unknown_parameter_names_the_closest(name):
    task_cls = TASKS.get(name)
    fields = [f.name for f in dataclasses.fields(task_cls.Params)]
    assert fields, "every task has parameters"
    with pytest.raises(ConfigError) as info:
        task_cls(**{fields[0] + "x": 1})
    message = str(info.value)
    assert f"'task.{fields[0]}x'" in message and name in message
    assert f"(did you mean '{fields[0]}'?)" in message
    for field in fields:
        assert f"task.{field}" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", NAMES)
def test_unknown_split_is_rejected(name):
    with pytest.raises(ConfigError, match="unknown split 'training'"):
        make(name).make_split("training", 4, seed=0)


def test_split_generator_streams_are_distinct_and_fixed():
    def draw(split, seed):
        return torch.randint(0, 1000, (20,), generator=split_generator(split, seed))

    assert torch.equal(draw("train", 5), draw("train", 5))
    streams = [draw(split, seed) for seed in range(4) for split in SPLITS]
    for i in range(len(streams)):
        for j in range(i + 1, len(streams)):
            assert not torch.equal(streams[i], streams[j])


def test_split_generator_rejects_unknown_split():
    with pytest.raises(ConfigError, match="valid: train, val, test"):
        split_generator("dev", 0)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_positive_int_rejects(value):
    with pytest.raises(ConfigError) as info:
        positive_int("copy", ok=3, length=value)
    assert "task.length of task copy" in str(info.value)


def test_positive_int_accepts():
    positive_int("copy", length=1, vocab=10)


# --- cache_dir: $ABLATE_CACHE, else the user's cache folder (never the working directory) ---------------------------

@pytest.fixture
def home(monkeypatch, tmp_path):
    """A fake home, no $ABLATE_CACHE, $XDG_CACHE_HOME or %LOCALAPPDATA%, and a working directory of its own."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    for name in ("ABLATE_CACHE", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def test_cache_dir_is_ablate_cache_when_set(home, monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine" and (tmp_path / "mine").is_dir()


def test_cache_dir_follows_xdg_cache_home(home, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ablate" and (tmp_path / "xdg" / "ablate").is_dir()
    for platform in ("linux", "darwin", "win32"):  # an explicit XDG_CACHE_HOME wins on every platform
        assert user_cache_dir(platform) == tmp_path / "xdg" / "ablate"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says: ignore a relative path
    assert user_cache_dir("linux") == home / ".cache" / "ablate"


def test_cache_dir_defaults_to_the_platform_convention(home, monkeypatch, tmp_path):
    assert user_cache_dir("linux") == home / ".cache" / "ablate"
    assert user_cache_dir("darwin") == home / "Library" / "Caches" / "ablate"
    assert user_cache_dir("win32") == home / "AppData" / "Local" / "ablate" / "Cache"
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert user_cache_dir("win32") == tmp_path / "local" / "ablate" / "Cache"
    made = cache_dir()
    assert made == user_cache_dir() and made.is_dir() and made.is_relative_to(home)
    assert not (tmp_path / "results").exists(), "nothing is cached under the working directory any more"

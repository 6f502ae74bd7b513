"""The `task` kind: a small object that makes tensors and says how to score them (see `tasks/base.py`).

Not a component: the conformance checks take the task itself, built with its default parameters, so this kind has
no harness (`build`, `run`). Its registry fills when the `tasks` package is imported, which happens only when the
registry is first asked for (every task file would otherwise load for `ablate check attention ...`).
"""

import importlib

from models.kinds._base import Kind


def load_tasks():
    return importlib.import_module("tasks").TASKS


TEMPLATE = '''from dataclasses import dataclass

import torch

from tasks.base import IGNORE, TASKS, Split, Task, positive_int, split_generator


@TASKS.register("$name")  # select with task=$name, once a task/$name.yaml exists in your config directory
class $Class(Task):
    """Running count: at each position, how often its token has occurred so far (mod vocab).

    To run it, put a task/$name.yaml into a config directory of your own and point ABLATE_CONFIG_DIR at it
    (copy the suite's conf/task/copy.yaml and change `name:` and the parameters below).
    """

    modality = "tokens"
    input_kind = "tokens"   # tokens (B, T) or continuous (B, T, features)
    output_kind = "token"   # token: a label per position; sequence: one label per example
    causal = True           # the model must not read the future
    metric = "accuracy"
    solved_at = 0.95

    @dataclass(frozen=True)
    class Params:  # task.<param>=... on the command line; unknown keys are errors
        length: int = 16
        vocab: int = 8
        n_train: int = 20000
        n_eval: int = 1000

    def validate(self):
        p = self.params
        positive_int(self.name, length=p.length, vocab=p.vocab, n_train=p.n_train, n_eval=p.n_eval)

    @property
    def vocab_size(self):
        return self.params.vocab

    @property
    def n_classes(self):
        return self.params.vocab

    def max_len(self):
        return self.params.length

    def split_size(self, split):
        return self.params.n_train if split == "train" else self.params.n_eval

    def make_split(self, split, n, seed):  # vectorised and deterministic in (split, seed)
        p = self.params
        tokens = torch.randint(0, p.vocab, (n, p.length), generator=split_generator(split, seed))
        same = tokens[:, :, None] == tokens[:, None, :]  # same[b, i, j]: token i equals token j
        earlier = torch.ones(p.length, p.length, dtype=torch.bool).tril()
        targets = (same & earlier).sum(-1) % p.vocab
        targets[:, 0] = IGNORE  # an example of an unscored position
        return Split(tokens, targets)
'''


KIND = Kind(
    name="task",
    load_registry=load_tasks,
    interface="subclass Task: cls(**params), a Params dataclass whose every field has a default ; "
              "make_split(split, n, seed) -> Split(inputs, targets), IGNORE where not scored ; vocab_size or "
              "input_dim, n_classes, max_len(), split_size(split) ; declares modality, input_kind, output_kind, "
              "causal, metric, solved_at",
    template=TEMPLATE,
    checks=("task_declares", "task_shapes", "task_deterministic", "task_trains"),
    # a task also needs its config file (see the template's class docstring)
    try_command="ablate train task={name} plugins=[{name}]   # with $ABLATE_CONFIG_DIR/task/{name}.yaml",
)

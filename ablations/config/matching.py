"""`ablation.match`: each variant at the baseline's parameter count (`params`) or training FLOPs (`flops`).

Why: a variant that removes a sublayer or adds a memory also changes the model's size, and a difference in score
may then be a difference in budget. Narang et al. (2021, https://arxiv.org/abs/2102.11972) compare modifications
at equal parameters for that reason. The variant's feed-forward width `model.d_ff` is searched (an integer) so
that its count lands within `TOLERANCE` of the baseline's; a variant with no MLP (`ffn=none`), or one that sets
`d_ff` itself, has its width `model.d_model` searched instead (a multiple of its heads; the nearest other head
count when no multiple of its own lands close enough). A variant already within the tolerance is left as it is.

The count is taken from the built model (on the meta device: no memory, no training), as a run records
`n_params`; FLOPs are `models.flops.training_flops_per_token` at the task's training length, as the report's
Cost table computes them (ablations/report/cost.py). The chosen values are returned as overrides, appended to the
variant's own, so the run, its study name and its result.json record them.
"""

from __future__ import annotations

import dataclasses

from models.errors import ConfigError

#: how far a matched variant's count may be from the baseline's, relative to the baseline's
TOLERANCE = 0.02
MEASURES = {"params": "parameters", "flops": "training FLOPs per token"}


def _task(run_cfg):
    from tasks import TASKS

    return TASKS.get(run_cfg.task["name"])(**{k: v for k, v in run_cfg.task.items() if k != "name"})


def _train_length(task) -> int:
    """T of the FLOPs formula: one training example's length, as the report's Cost table uses (else max_len)."""
    try:
        return int(task.make_split("train", 1, 0).inputs.shape[1])
    except Exception:  # noqa: BLE001 - data that cannot be made here: the declared bound
        return int(task.max_len())


def measure(how: str, model_cfg, task, pool: str, seq_len: int) -> int:
    """The parameters of the model `model_cfg` builds for `task`, or its training FLOPs per token."""
    if how == "flops":
        from models.flops import training_flops_per_token

        out_dim = task.n_classes if task.output_kind == "token" else None  # a pooled head: once per sequence
        try:
            return training_flops_per_token(model_cfg, seq_len, out_dim)
        except ValueError as error:  # a component with no FLOPs count (an ffn of a plugin)
            raise ConfigError(f"ablation.match=flops: {error}; use ablation.match=params") from None
    import torch

    from models import build_model

    def build():
        return build_model(model_cfg, vocab_size=task.vocab_size, input_dim=task.input_dim, out_dim=task.n_classes,
                           causal=task.causal, head="token" if task.output_kind == "token" else pool,
                           max_len=task.max_len())

    try:
        with torch.device("meta"):
            model = build()
    except (RuntimeError, NotImplementedError):  # a component that reads a value while it is built (meta has none)
        model = build()
    return sum(p.numel() for p in model.parameters())


def match_overrides(how: str, baseline, variant, variant_overrides, *, name: str = "variant") -> list[str]:
    """The overrides (`model.d_ff=N`, or `model.d_model=N` and maybe `model.n_heads=H`) that bring the run config
    `variant` within TOLERANCE of `baseline` by `how` (params, flops); [] when it already is, or for `none`."""
    if how == "none":
        return []
    from ablations.config import override_key

    task, base_task = _task(variant), _task(baseline)
    seq_len = _train_length(task) if how == "flops" else 0
    base_len = _train_length(base_task) if how == "flops" else 0
    target = measure(how, baseline.model, base_task, baseline.model.pool, base_len)

    def count(model_cfg) -> int:
        return measure(how, model_cfg, task, variant.model.pool, seq_len)

    def close(value: int) -> bool:
        return abs(value - target) <= TOLERANCE * target

    cfg = variant.model
    if close(count(cfg)):
        return []
    sets = {override_key(o) for o in variant_overrides}
    if cfg.ffn != "none" and "model.d_ff" not in sets:
        found = _search_d_ff(cfg, count, target)
        if found is not None and close(count(dataclasses.replace(cfg, d_ff=found))):
            return [f"model.d_ff={found}"]
    if "model.d_model" not in sets:
        found = _search_width(cfg, count, target, keep_heads="model.n_heads" in sets, close=close)
        if found is not None:
            d_model, heads = found
            return [f"model.d_model={d_model}"] + ([f"model.n_heads={heads}"] if heads != cfg.n_heads else [])
    raise ConfigError(f"ablation.match={how}: {name} cannot be brought within {TOLERANCE:.0%} of the baseline's "
                      f"{MEASURES[how]} ({count(cfg):,} vs {target:,}) by model.d_ff or model.d_model; set "
                      f"ablation.match=none or give the variant its own model.d_ff/model.d_model")


def _search_d_ff(cfg, count, target: int) -> int | None:
    """The integer d_ff >= 1 whose count is nearest `target`: the count is linear in d_ff (each MLP matrix has
    d_ff rows or columns), so two builds give the line and a third checks its neighbours."""
    low = count(dataclasses.replace(cfg, d_ff=1))
    high = count(dataclasses.replace(cfg, d_ff=1 + 64))
    slope = (high - low) / 64
    if slope <= 0:
        return None
    guess = max(1, round(1 + (target - low) / slope))
    candidates = [d for d in (guess - 1, guess, guess + 1) if d >= 1]
    return min(candidates, key=lambda d: abs(count(dataclasses.replace(cfg, d_ff=d)) - target))


def _search_width(cfg, count, target: int, *, keep_heads: bool, close) -> tuple[int, int] | None:
    """(d_model, n_heads) nearest `target`: d_model a multiple of the heads (the count grows with it, so a
    bisection over the multiples); the variant's own head count first, then the nearest others when no multiple of
    it lands within the tolerance (a step of one head-width can be 9% of the count at these widths)."""
    heads = [cfg.n_heads] if keep_heads else sorted(range(1, 2 * cfg.n_heads + 1), key=lambda h: abs(h - cfg.n_heads))
    best = None
    for h in heads:
        def at(multiple: int):
            try:
                changed = dataclasses.replace(cfg, d_model=multiple * h, n_heads=h,
                                              kv_heads=cfg.kv_heads if not cfg.kv_heads or h % cfg.kv_heads == 0
                                              else 0)
            except ConfigError:  # a width this variant cannot have (e.g. an odd head size for rope)
                return None
            return count(changed)

        lo, hi = 1, max(2, 16 * cfg.d_model // h)
        while lo < hi:  # the first multiple whose count reaches the target
            mid = (lo + hi) // 2
            value = at(mid)
            if value is not None and value >= target:
                hi = mid
            else:
                lo = mid + 1
        for multiple in (lo - 1, lo, lo + 1):
            value = at(multiple) if multiple >= 1 else None
            if value is not None and (best is None or abs(value - target) < best[0]):
                best = (abs(value - target), multiple * h, h)
        if best is not None and close(target + best[0]):
            return best[1], best[2]
    return None

"""Shell completion of `ablate`: subcommands and options (argparse's own), config keys, and the registered names
and config options a key takes (components, tasks, ablations, sweep profiles, sizes), plugins included.

Why here and not in the parser: the candidates need the composed config and the registries (torch), which a
plain `ablate --help` must not import. argcomplete (https://github.com/kislyuk/argcomplete) calls these
completers only when the shell asks (`_ARGCOMPLETE` set), so they cost nothing otherwise.

Enable it once per shell: `eval "$(register-python-argcomplete ablate)"` (bash, zsh), or
`activate-global-python-argcomplete` for every argcomplete-aware command.
"""

from __future__ import annotations

#: Keys whose values are a config group's options (files in conf/<group>/ and the user's config directory).
GROUP_KEYS = ("task", "ablation", "sweep")


def config_keys(overrides: list[str] = ()) -> list[str]:
    """Every leaf key of the composed config (`model.d_model`, `trainer.max_steps`, `sweep.space.lr.low`, ...),
    with the groups (`task`, `ablation`, `sweep`) and `size`, composed with what is already on the line."""
    from omegaconf import OmegaConf

    from ablations.config import compose_config

    try:
        cfg = OmegaConf.to_container(compose_config(list(overrides)), resolve=False)
    except Exception:  # noqa: BLE001 - a half-typed line composes badly: complete from the defaults
        cfg = OmegaConf.to_container(compose_config([]), resolve=False)
    keys: list[str] = []

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and value and name != "ablation.variants":
                walk(value, f"{name}.")
            else:
                keys.append(name)

    walk({k: v for k, v in cfg.items() if k not in ("sizes",)}, "")
    return sorted(set(keys) | set(GROUP_KEYS) | {"size"})


def values_of(key: str, overrides: list[str] = ()) -> list[str]:
    """The names a key accepts: registered components for `model.<kind>`, tasks, config-group options, sizes."""
    from ablations.config import compose_config, group_options

    if key in GROUP_KEYS:
        return list(group_options(key))
    if key == "size":
        try:
            return sorted(compose_config([o for o in overrides if o.startswith("task=")]).sizes)
        except Exception:  # noqa: BLE001
            return []
    section, _, kind = key.partition(".")
    if section == "model":
        from models import REGISTRIES

        if kind in REGISTRIES:
            return REGISTRIES[kind].names()
        if kind == "init":
            from models.components import INIT

            return INIT.names()
    if key == "trainer.stack_engine":
        from ablations.config import STACK_ENGINES

        return list(STACK_ENGINES)
    return []


def complete_overrides(prefix: str, parsed_args=None, **_) -> list[str]:
    """argcomplete's completer of the KEY=VALUE arguments: keys (each with its `=`), then a key's values."""
    from ablations.plugins import load_plugins, plugins_in_overrides

    before = list(getattr(parsed_args, "overrides", None) or [])
    try:
        load_plugins(plugins_in_overrides(before))  # their names complete too
    except Exception:  # noqa: BLE001 - a plugin that fails to import completes nothing of its own
        pass
    sign = prefix[:1] if prefix[:1] in "+~" else ""
    body = prefix[len(sign):]
    if "=" in body:
        key, _, start = body.partition("=")
        return [f"{sign}{key}={v}" for v in values_of(key, before) if v.startswith(start)]
    return [f"{sign}{k}=" for k in config_keys(before) if k.startswith(body)]

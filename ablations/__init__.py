"""Running, tuning, aggregating and reporting ablations of the configurable transformer."""

__version__ = "0.1.0"

#: The suite's other top-level packages. They keep their short import names (`from models.attention._base import
#: ...` is how every plugin, the README and `ablate new` templates reach the components), so a project of the
#: user's own with a package of the same name first on sys.path would shadow them: `shadowed_packages` says so.
OWN_PACKAGES = ("models", "tasks")


def shadowed_packages() -> str | None:
    """One line when `models` or `tasks` would be imported from somewhere other than beside this package (a
    user's own package of that name earlier on sys.path, e.g. in the working directory of `python -m` or a
    notebook); None when both are the suite's. Nothing is imported to find out."""
    import importlib.util
    from pathlib import Path

    home = Path(__file__).resolve().parent.parent
    for name in OWN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        found = None
        if spec is not None:
            found = (Path(spec.origin).parent if spec.origin and spec.origin != "namespace"
                     else next(iter(spec.submodule_search_locations or []), None))
        if found is None or Path(found).resolve() != home / name:
            where = f"the one in {found}" if found else "nothing"
            return (f"`import {name}` finds {where}, not the suite's {home / name}: a package of your own named "
                    f"{name} comes first on sys.path and shadows it; rename yours, or run from a directory where it "
                    f"is not importable")
    return None


def require_own_packages() -> None:
    """Raise ImportError (one line, see `shadowed_packages`) when the suite's own packages are shadowed."""
    problem = shadowed_packages()
    if problem:
        raise ImportError(problem)

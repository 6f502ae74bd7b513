"""Starting files for `ablate new <kind> <name>`: the common header over each kind's own template.

Each kind's template lives with the rest of its contract (`Kind.template`, in `models/kinds/<kind>.py`); here is
only what every starting file shares. Why strings in modules rather than template files: nothing to package or
find at run time. Each template is a real (if modest) idea that passes `ablate check <kind> <name>` as written
(tests/ablations/test_templates.py checks every one), so a researcher starts from something that runs and edits
the one method that matters. `$name` is the registered name and `$Class` the class name.
"""

from __future__ import annotations

from string import Template

from models.kinds import kind_named

HEADER = '''"""$name: <one line: what idea this tests, and its paper (a link on the line that implements it)>.

A plugin for transformer-resilience, started by `ablate new $kind $name`. Try it:
    ablate list plugins=[$name]
    ablate check $kind $name plugins=[$name]
    $train
"""
'''

def render(kind: str, name: str) -> str:
    """The starting file of `kind` for the registered name `name`; an unknown kind is a ConfigError."""
    spec = kind_named(kind)
    train = spec.try_command.format(kind=kind, name=name)
    class_name = "".join(part.capitalize() for part in name.split("_")) or "Plugin"
    values = {"name": name, "Class": class_name, "kind": kind, "train": train}
    return Template(HEADER).substitute(values) + "\n" + Template(spec.template).substitute(values)

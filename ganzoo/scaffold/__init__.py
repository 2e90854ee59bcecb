"""``ganzoo plugin new``: a pip-installable plugin package that passes the contract kit as
written (pyproject with the entry point, a model, a test file using ganzoo.testing, a README).
"""
from __future__ import annotations

import importlib.util
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import ganzoo
from ganzoo.errors import GanzooError
from ganzoo.scaffold import templates

TEMPLATES = {"gan": templates.GAN_MODEL, "minimal": templates.MINIMAL_MODEL}
# The contract's `small` config each template's test file starts with.
SMALL = {"gan": "dict(latent_dim=8, width=4)", "minimal": "dict(latent_dim=4)"}
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginSpec:
    """The names one plugin package is made of, derived from the CLI name."""

    name: str          # the architecture's CLI name: ganzoo train NAME
    template: str

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")

    @property
    def cls(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-"))

    @property
    def dist(self) -> str:
        return f"ganzoo-{self.name}"

    def files(self) -> dict[str, str]:
        """Relative path -> text of every file of the package."""
        values = dict(name=self.name, module=self.module, cls=self.cls, dist=self.dist,
                      ganzoo_version=ganzoo.__version__, small=SMALL[self.template])
        texts = {"pyproject.toml": templates.PYPROJECT, "README.md": templates.README,
                 f"src/{self.module}/__init__.py": templates.INIT,
                 f"src/{self.module}/model.py": TEMPLATES[self.template],
                 f"tests/test_{self.module}.py": templates.TEST}
        return {path: Template(text).substitute(values) for path, text in texts.items()}


def check_name(name: str) -> None:
    """A name that works as CLI name, import package and distribution, and that does not
    shadow a module Python already finds (`ganzoo plugin new torch` would break torch)."""
    if not NAME.match(name):
        raise GanzooError(f"plugin name {name!r}: use lower-case letters, digits and single "
                          "hyphens, starting with a letter (e.g. my-gan)")
    module = name.replace("-", "_")
    found = importlib.util.find_spec(module)
    # A folder without __init__.py (origin None: a namespace package) shadows nothing.
    if keyword.iskeyword(module) or (found is not None and found.origin is not None):
        raise GanzooError(f"plugin name {name!r}: a Python module named {module} already "
                          "exists here; pick another name")


def write_package(spec: PluginSpec, out: Path) -> Path:
    """Write the package to ``out/NAME`` and return that folder; refuses to overwrite."""
    root = out / spec.name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise GanzooError(f"{root} already exists and is not empty; choose another --out")
    check_name(spec.name)
    for rel, text in spec.files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root

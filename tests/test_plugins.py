"""The plugin system: entry points, broken plugins, duplicates, every hook documented and used."""
from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ganzoo
from ganzoo import hookspecs
from ganzoo.errors import GanzooError
from ganzoo.registry import Registry
from conftest import TINY_PLUGIN, run_ganzoo

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
         if name.startswith("ganzoo_")]


def write_module(tmp_path: Path, monkeypatch, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_builtins_come_from_entry_points():
    reg = Registry()
    dcgan = reg.architectures()["dcgan"]
    assert dcgan.plugin.distribution == "ganzoo" and dcgan.plugin.module == "ganzoo_plugins.dcgan"
    assert "shapes" in reg.datasets()
    assert ganzoo.list_architectures("dc*") == ["dcgan"]
    assert ganzoo.list_architectures("*gan") == ["cgan", "dcgan"]
    assert ganzoo.list_architectures("wgan*") == ["wgan-gp"]


def test_create_drops_none_overrides():
    model = ganzoo.create("dcgan", ganzoo.DataSpec(32, 3), latent_dim=None, base_channels=8)
    assert model.config.latent_dim == 100 and model.config.base_channels == 8
    with pytest.raises(GanzooError, match="no option"):
        ganzoo.create("dcgan", ganzoo.DataSpec(32, 3), nonsense=1)


def test_disable_autoload_and_explicit_plugin(monkeypatch):
    monkeypatch.setenv("GANZOO_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert Registry().architectures() == {}
    reg = Registry(["ganzoo_plugins.dcgan"])
    assert list(reg.architectures()) == ["dcgan"]


def test_broken_plugin_is_listed_and_does_not_break_others(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "broken_plugin",
                        "import no_such_dependency_xyz\n")
    r = cli("--plugin", name, "plugins")
    assert r.code == 0
    line = next(x for x in r.out.splitlines() if x.startswith("broken_plugin"))
    assert "FAILED" in line and "No module named 'no_such_dependency_xyz'" in line
    r = cli("--plugin", name, "list")
    assert r.code == 0 and "dcgan" in r.out and "1 plugin(s) failed to load" in r.out
    r = cli("--plugin", name, "train", name, "--data", "shapes")
    assert r.code == 1
    assert "plugin 'broken_plugin' failed to load" in r.err and "Traceback" not in r.err


def test_plugin_whose_hook_raises_is_isolated(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "raising_hook",
                        "import ganzoo\n@ganzoo.hookimpl\ndef ganzoo_architectures():\n"
                        "    raise RuntimeError('boom')\n")
    r = cli("--plugin", name, "plugins")
    assert "ganzoo_architectures() failed: RuntimeError: boom" in r.out
    assert cli("--plugin", name, "list").code == 0


def test_duplicate_architecture_name_names_both_plugins(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "dup_dcgan",
                        "import ganzoo\nfrom ganzoo_plugins.dcgan.model import DCGAN\n"
                        "class Copy(DCGAN):\n    pass\n"
                        "@ganzoo.hookimpl\ndef ganzoo_architectures():\n    return [Copy]\n")
    r = cli("--plugin", name, "list")       # other commands keep working
    assert r.code == 0 and "1 plugin(s) failed to load" in r.out
    r = cli("--plugin", name, "train", "dcgan", "--data", "shapes")   # which one is meant?
    assert r.code == 1 and "'dcgan' is registered twice" in r.err
    assert "plugin 'dcgan' (ganzoo_plugins.dcgan)" in r.err and "plugin 'dup_dcgan'" in r.err


# -- every hook is documented and tested (datasette's rule) -----------------------------------

@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_with_params(hook):
    fn = getattr(hookspecs, hook)
    doc = inspect.getdoc(fn) or ""
    assert doc, f"{hook} has no docstring"
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{hook} does not document {param}"
    returns = inspect.signature(fn).return_annotation
    assert ":return:" in doc or returns in (None, "None"), hook


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_readme(hook):
    assert f"`{hook}" in (ROOT / "README.md").read_text(), f"README does not document {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_by_the_test_plugin(hook):
    source = (TINY_PLUGIN / "ganzoo_tiny" / "__init__.py").read_text()
    assert re.search(rf"def {hook}\(", source), f"no test plugin implements {hook}"


def test_hookspecs_are_what_pluggy_knows():
    """HOOKS (what the rules below check) is every hook pluggy was given, and nothing else."""
    import pluggy
    pm = pluggy.PluginManager("ganzoo")
    pm.add_hookspecs(hookspecs)
    assert HOOKS and set(HOOKS) == {n for n in vars(pm.hook) if not n.startswith("_")}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_plugin_section(hook):
    """Documented where a plugin author reads, as a bullet of "Writing a plugin"."""
    section = readme_section("Writing a plugin")
    assert re.search(rf"^- `{hook}\(", section, re.M), f"'Writing a plugin' lacks {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    """datasette's rule: every hook has a test named test_hook_<hook> in this file."""
    assert f"test_hook_{hook}" in globals(), f"no test_hook_{hook} in tests/test_plugins.py"


def test_readme_and_test_plugin_name_only_real_hooks():
    """A hook renamed or removed cannot stay documented or implemented under the old name."""
    texts = [readme_section("Writing a plugin"),
             (TINY_PLUGIN / "ganzoo_tiny" / "__init__.py").read_text()]
    for text in texts:
        # ganzoo_cli is ganzoo.testing's pytest fixture, called like a hook in the guide.
        named = set(re.findall(r"\b(ganzoo_[a-z_]+)\(", text)) - {"ganzoo_cli"}
        assert named <= set(HOOKS), sorted(named - set(HOOKS))


def test_hook_ganzoo_architectures(monkeypatch):
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    found = Registry(["ganzoo_tiny"]).architectures()["tiny-mlp"]
    assert found.plugin.name == "ganzoo_tiny" and found.obj.__name__ == "TinyGAN"
    assert "tiny-mlp" in found.plugin.provides


def test_hook_ganzoo_datasets(monkeypatch):
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    source = Registry(["ganzoo_tiny"]).datasets()["checkers"].obj
    assert isinstance(source, ganzoo.DatasetSource)


def test_hook_ganzoo_commands(cli, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    r = cli("--plugin", "ganzoo_tiny", "tiny-hello")
    assert r.code == 0 and r.out.strip() == "hello from ganzoo-tiny-plugin", r.err


# -- a third-party plugin installed with pip ------------------------------------------------------

@pytest.fixture(scope="module")
def installed_tiny_plugin(tmp_path_factory) -> Path:
    """pip-installs tests/fixtures/ganzoo-tiny-plugin into its own directory."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / TINY_PLUGIN.name
    shutil.copytree(TINY_PLUGIN, source)      # setuptools writes build/ into the source tree
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target),
                    str(source)], check=True, cwd=source)
    return target


def test_pip_installed_plugin_is_listed_and_trains(installed_tiny_plugin, tmp_path):
    env = {"PYTHONPATH": str(installed_tiny_plugin)}
    listed = run_ganzoo("list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "tiny-mlp" in listed.stdout and "checkers" in listed.stdout
    plugins = run_ganzoo("plugins", cwd=tmp_path, env=env)
    assert "ganzoo-tiny-plugin 0.3.0" in plugins.stdout
    broken = next(x for x in plugins.stdout.splitlines() if x.startswith("tiny-broken"))
    assert "FAILED: ImportError: No module named 'some_missing_dependency'" in broken
    assert "mean-colour" in plugins.stdout
    trained = run_ganzoo("train", "tiny-mlp", "--data", "checkers", "--resolution", "8",
                         "--kimg", "0.032", "--hidden", "16", "-q", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr
    run = next((tmp_path / "runs").iterdir())
    assert run.name == "00000-tiny-mlp-checkers" and (run / "final.png").exists()
    gen = run_ganzoo("generate", "tiny-mlp", "--seeds", "0-3", cwd=tmp_path, env=env)
    assert gen.returncode == 0, gen.stderr
    assert len(list((tmp_path / "generated").glob("seed*.png"))) == 4
    hello = run_ganzoo("tiny-hello", cwd=tmp_path, env=env)
    assert hello.stdout.strip() == "hello from ganzoo-tiny-plugin"
    help_text = run_ganzoo("train", "tiny-mlp", "--help", cwd=tmp_path, env=env).stdout
    assert "--hidden INTEGER" in help_text and "[default: 32]" in help_text


def test_hook_ganzoo_feature_extractors(monkeypatch):
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    reg = Registry(["ganzoo_tiny"])
    cls = reg.feature_extractors()["mean-colour"].obj
    import torch
    assert cls()(torch.zeros(2, 3, 8, 8)).shape == (2, 3)


def test_hook_ganzoo_checkpoint_importers(monkeypatch, tmp_path):
    """A plugin's importer reads its own plain pickles; ganzoo hands it the data only."""
    import pickle
    import torch
    from ganzoo.checkpoint import load_model
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    reg = Registry(["ganzoo_tiny"])
    assert "tiny-mlp-pickle" in reg.checkpoint_importers()
    G = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 48),
                            torch.nn.Tanh())
    path = tmp_path / "upstream.pkl"
    path.write_bytes(pickle.dumps({"tiny_mlp_G": G.state_dict(), "resolution": 4,
                                   "channels": 3, "hidden": 4}, protocol=4))
    model = load_model(path, registry=reg).model
    assert model.name == "tiny-mlp" and torch.equal(model.G[0].weight, G[0].weight)
    assert model.generate(2, seed=0).shape == (2, 3, 4, 4)


# -- misbehaving plugins are isolated like import errors (issue 21, item 6) -------------------

HOOK_RESULT = "import ganzoo\n@ganzoo.hookimpl\ndef ganzoo_architectures():\n    return {}\n"
MISBEHAVING = {
    "returns_int": ("[42]", "not an Architecture subclass"),
    "returns_instance": ("[object()]", "not an Architecture subclass"),
    "returns_non_list": ("42", "must return a list"),
    "returns_string": ("'dcgan'", "must return a list"),
}


def assert_isolated(cli, name: str, error: str) -> None:
    """`plugins` lists the plugin with its error; `list` and built-ins still work; using the
    plugin's architecture is one line naming the plugin."""
    r = cli("--plugin", name, "plugins")
    assert r.code == 0, r.err
    assert "Traceback" not in r.err and "internal error" not in r.err
    line = next(x for x in r.out.splitlines() if x.startswith(name))
    assert "FAILED" in line and error in line, line
    assert "dcgan" in r.out
    r = cli("--plugin", name, "list")
    assert r.code == 0 and "dcgan" in r.out and "1 plugin(s) failed to load" in r.out, r.err
    r = cli("--plugin", name, "train", name, "--data", "shapes")
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"'{name}'" in lines[0], r.err


@pytest.mark.parametrize("name", sorted(MISBEHAVING))
def test_hook_returning_the_wrong_type_is_isolated(cli, tmp_path, monkeypatch, name):
    result, error = MISBEHAVING[name]
    write_module(tmp_path, monkeypatch, name, HOOK_RESULT.replace("{}", result))
    assert_isolated(cli, name, error)


@pytest.mark.parametrize("hook", ["ganzoo_datasets", "ganzoo_feature_extractors"])
def test_other_hooks_returning_the_wrong_type_are_isolated(cli, tmp_path, monkeypatch, hook):
    name = write_module(tmp_path, monkeypatch, f"bad_{hook}",
                        f"import ganzoo\n@ganzoo.hookimpl\ndef {hook}():\n    return [1]\n")
    r = cli("--plugin", name, "plugins")
    assert r.code == 0 and "FAILED" in next(x for x in r.out.splitlines()
                                            if x.startswith(name)), r.out + r.err
    assert cli("--plugin", name, "list").code == 0
    assert cli("--plugin", name, "data", "info", "shapes", "--resolution", "8").code == 0


def test_plugin_calling_sys_exit_at_import_is_isolated(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "exits_on_import",
                        "import sys\nsys.exit('no GPU here')\n")
    assert_isolated(cli, name, "SystemExit: no GPU here")


def test_hook_calling_sys_exit_is_isolated(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "exits_in_hook",
                        HOOK_RESULT.replace("return {}", "raise SystemExit(3)"))
    assert_isolated(cli, name, "ganzoo_architectures() failed: SystemExit: 3")


def test_commands_hook_calling_sys_exit_is_isolated(cli, tmp_path, monkeypatch):
    from ganzoo.registry import get_registry
    name = write_module(tmp_path, monkeypatch, "exits_in_commands",
                        "import ganzoo, sys\n@ganzoo.hookimpl\ndef ganzoo_commands(cli):\n"
                        "    sys.exit(1)\n")
    get_registry([name]).add_commands(__import__("click").Group())
    info = next(p for p in get_registry([name]).plugins if p.name == name)
    assert info.error == "ganzoo_commands() failed: SystemExit: 1"


def test_two_plugins_with_the_same_name(cli, tmp_path, monkeypatch):
    """The same module twice, or a --plugin named like an installed plugin: the second is
    recorded as a duplicate; everything keeps working."""
    name = write_module(tmp_path, monkeypatch, "twice", HOOK_RESULT.replace("{}", "[]"))
    r = cli("--plugin", name, "--plugin", name, "plugins")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    failed = [x for x in r.out.splitlines() if x.startswith(name) and "FAILED" in x]
    assert len(failed) == 1 and "plugin name 'twice' is already taken" in failed[0]
    assert cli("--plugin", name, "--plugin", name, "list").code == 0
    r = cli("--plugin", "ganzoo_plugins.dcgan", "plugins")   # the built-in, loaded twice
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert cli("--plugin", "ganzoo_plugins.dcgan", "list").code == 0


def test_same_architecture_name_in_two_plugins_is_isolated(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "dup_wgan",
                        "import ganzoo\nfrom ganzoo_plugins.wgan_gp.model import WGANGP\n"
                        "class Copy(WGANGP):\n    pass\n"
                        "@ganzoo.hookimpl\ndef ganzoo_architectures():\n    return [Copy]\n")
    r = cli("--plugin", name, "plugins")
    assert r.code == 0, r.err
    line = next(x for x in r.out.splitlines() if x.startswith(name))
    assert "FAILED" in line and "'wgan-gp' is registered twice" in line
    r = cli("--plugin", name, "list")
    assert r.code == 0 and "dcgan" in r.out, r.err
    r = cli("--plugin", name, "train", "wgan-gp", "--data", "shapes")
    lines = r.err.strip().splitlines()
    assert r.code == 1 and len(lines) == 1, r.err
    assert "'wgan-gp' is registered twice" in lines[0] and "plugin 'dup_wgan'" in lines[0]


# -- the plugin contract is strict (issue 19, item 3) ------------------------------------------

def assert_one_line(r, *fragments: str) -> None:
    lines = r.err.strip().splitlines()
    assert r.code == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


ARCH_SOURCE = ("import ganzoo\nfrom ganzoo_plugins.dcgan.model import DCGAN\n"
               "class Mine(DCGAN):\n    name = 'mine-gan'\n")


def test_hooks_are_called_through_pluggy(monkeypatch):
    """pluggy's hook calling runs (its checks, monitoring, tracing), one plugin at a time."""
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    reg = Registry(["ganzoo_tiny"])
    calls = []
    reg.pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: calls.append((hook, [i.plugin_name for i in impls])),
        lambda outcome, hook, impls, kwargs: None)
    reg.architectures()
    assert ("ganzoo_architectures", ["ganzoo_tiny"]) in calls
    assert ("ganzoo_architectures", ["dcgan"]) in calls       # each plugin on its own


def test_misspelt_hook_is_an_error_naming_the_plugin(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "misspelt_hook",
                        ARCH_SOURCE + "@ganzoo.hookimpl\ndef ganzoo_architecture():\n"
                        "    return [Mine]\n")
    assert_isolated(cli, name, "unknown hook 'ganzoo_architecture'")
    r = cli("--plugin", name, "plugins")
    assert "did you mean 'ganzoo_architectures'" in r.out
    # the architecture it meant to add: one line naming the plugin
    assert_one_line(cli("--plugin", name, "train", "mine-gan", "--data", "shapes"),
                    "unknown architecture 'mine-gan'", "'misspelt_hook'",
                    "unknown hook 'ganzoo_architecture'")


def test_optional_unknown_hook_is_allowed(cli, tmp_path, monkeypatch):
    """A hook of a newer ganzoo, marked optionalhook=True, loads on an older one."""
    name = write_module(tmp_path, monkeypatch, "optional_hook",
                        ARCH_SOURCE + "@ganzoo.hookimpl\ndef ganzoo_architectures():\n"
                        "    return [Mine]\n@ganzoo.hookimpl(optionalhook=True)\n"
                        "def ganzoo_future_hook():\n    return []\n")
    r = cli("--plugin", name, "plugins")
    line = next(x for x in r.out.splitlines() if x.startswith(name))
    assert "FAILED" not in line and "mine-gan" in line, line


def test_hookimpl_with_a_wrong_argument_name(cli, tmp_path, monkeypatch):
    """pluggy's PluginValidationError: the whole plugin is not loaded, its error is one line,
    and its other hooks (registered before pluggy noticed) do not linger."""
    name = write_module(tmp_path, monkeypatch, "wrong_argument",
                        ARCH_SOURCE + "@ganzoo.hookimpl\ndef ganzoo_architectures():\n"
                        "    return [Mine]\n@ganzoo.hookimpl\ndef ganzoo_commands(group):\n"
                        "    pass\n")
    assert_isolated(cli, name, "ganzoo_commands(group): argument 'group' is not in the "
                               "hookspec ganzoo_commands(cli)")
    assert "mine-gan" not in cli("--plugin", name, "list").out


NEW_COMMAND = ("import click, ganzoo\n@ganzoo.hookimpl\ndef ganzoo_commands(cli):\n"
               "    @cli.command('{command}')\n    def c():\n        click.echo('{text}')\n")


def test_plugin_command_cannot_replace_a_builtin(cli, tmp_path, monkeypatch):
    name = write_module(tmp_path, monkeypatch, "takes_train",
                        NEW_COMMAND.format(command="train", text="hijacked"))
    r = cli("--plugin", name, "plugins")
    line = next(x for x in r.out.splitlines() if x.startswith(name))
    assert "FAILED" in line and "command name 'train'" in line and "built-in" in line, line
    assert "plugin 'takes_train'" in line
    r = cli("--plugin", name, "train", "dcgan", "--help")
    assert r.code == 0 and "hijacked" not in r.out and "--base-channels" in r.out
    r = cli("--plugin", name, "list")
    assert r.code == 0 and "1 plugin(s) failed to load" in r.out


def test_two_plugins_adding_the_same_command_name_both_plugins(cli, tmp_path, monkeypatch):
    first = write_module(tmp_path, monkeypatch, "hello_one",
                         NEW_COMMAND.format(command="hello", text="one"))
    second = write_module(tmp_path, monkeypatch, "hello_two",
                          NEW_COMMAND.format(command="hello", text="two"))
    both = ("--plugin", first, "--plugin", second)
    r = cli(*both, "plugins")
    line = next(x for x in r.out.splitlines() if x.startswith(second))
    assert "FAILED" in line and "command name 'hello' is registered twice" in line, line
    assert "plugin 'hello_one'" in line and "plugin 'hello_two'" in line
    assert_one_line(cli(*both, "hello"), "'hello' is registered twice", "plugin 'hello_one'",
                    "plugin 'hello_two'")
    assert cli(*both, "list").code == 0


def test_plugin_commands_register_in_process(cli, monkeypatch):
    """main(["--plugin", M, CMD]) from Python (sys.argv is pytest's) finds M's command, and a
    later run without the plugin does not see it any more."""
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    r = cli("--plugin", "ganzoo_tiny", "tiny-hello")
    assert r.code == 0 and r.out.strip() == "hello from ganzoo-tiny-plugin", r.err
    r = cli("--plugin=ganzoo_tiny", "tiny-hello")
    assert r.code == 0 and r.out.strip() == "hello from ganzoo-tiny-plugin", r.err
    r = cli("tiny-hello")
    assert r.code == 2 and "No such command 'tiny-hello'" in r.err


def test_non_class_hook_result_names_the_plugin_where_used(cli, tmp_path, monkeypatch):
    """An instance (or any non-class) where a class is expected: using the name it meant is
    one line naming the plugin."""
    name = write_module(tmp_path, monkeypatch, "returns_not_a_class",
                        "import ganzoo\nclass Thing:\n    name = 'thing-gan'\n"
                        "@ganzoo.hookimpl\ndef ganzoo_architectures():\n    return [Thing]\n")
    assert_isolated(cli, name, "not an Architecture subclass")
    assert_one_line(cli("--plugin", name, "train", "thing-gan", "--data", "shapes"),
                    "'thing-gan'", "plugin 'returns_not_a_class'", "not an Architecture subclass")
    assert_one_line(cli("--plugin", name, "generate", "thing-gan"), "plugin 'returns_not_a_class'")


# -- the public plugin API --------------------------------------------------------------------

PLUGIN_API = ["Architecture", "CheckpointImporter", "DataSpec", "DatasetSource",
              "FeatureExtractor", "GANArchitecture", "GanzooError", "ImageSet",
              "PrepareOptions", "hookimpl", "option"]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_plugin_api_is_exported_from_ganzoo():
    from ganzoo.adversarial import GANArchitecture
    from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
    from ganzoo.features import FeatureExtractor
    assert set(PLUGIN_API) <= set(ganzoo.__all__)
    assert ganzoo.GANArchitecture is GANArchitecture and ganzoo.ImageSet is ImageSet
    assert ganzoo.DatasetSource is DatasetSource and ganzoo.PrepareOptions is PrepareOptions
    assert ganzoo.FeatureExtractor is FeatureExtractor
    assert set(ganzoo.__all__) <= set(dir(ganzoo))


@pytest.mark.parametrize("name", sorted(ganzoo.__all__))
def test_public_name_is_importable_and_documented(name):
    """`import ganzoo` alone (a fresh interpreter, no import cycle) gives every public name,
    and the README's plugin section (or, for the Python API, its own section) documents it."""
    code = f"import ganzoo; from ganzoo import {name}; assert ganzoo.{name} is {name}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    sections = readme_section("Writing a plugin")
    if name not in PLUGIN_API:
        sections += readme_section("Python API")
    assert f"ganzoo.{name}" in sections, f"README does not document ganzoo.{name}"

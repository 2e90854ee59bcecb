"""`ganzoo ops check` and `ganzoo ops build`, registered through the "ganzoo" entry point
(builtin-ops) like any plugin's commands."""
from __future__ import annotations

import os
import time

import click
import torch

from ganzoo.hookspecs import hookimpl


@hookimpl
def ganzoo_commands(cli):
    cli.add_command(ops_group)


@click.group("ops")
def ops_group():
    """Custom ops: which implementation runs where, and building the native kernels."""


def _environment_lines() -> list[str]:
    from ganzoo.ops import BUILD_ENV, IMPL_ENV, build, build_allowed
    cuda = torch.version.cuda or "none (CPU build of torch)"
    root = build.build_root()
    where = ("TORCH_EXTENSIONS_DIR" if os.environ.get("TORCH_EXTENSIONS_DIR")
             else "$GANZOO_HOME/torch_extensions; set TORCH_EXTENSIONS_DIR to move it")
    return [
        f"torch {torch.__version__}, CUDA {cuda}, CPU capability {build.cpu_capability()}",
        f"{IMPL_ENV}={os.environ.get(IMPL_ENV) or 'auto'}  {BUILD_ENV}="
        f"{'1 (auto compiles on first use)' if build_allowed() else '0 (auto never compiles)'}",
        f"build cache: {root} ({where})",
    ]


def _describe(st) -> str:
    """One line for an extension's state."""
    built = ""
    if st.build_seconds is not None:
        built = f"built {st.built_at or '?'} in {st.build_seconds:.1f} s"
    if st.status == "loaded":
        how = (f"loaded from the cache in {st.load_seconds * 1000:.0f} ms" if st.from_cache
               else "compiled and loaded by this process")
        return f"ready: {how}; {built}"
    if st.status == "built":
        return f"built, not loaded: {built}"
    if st.status == "not built":
        return ("not built: `ganzoo ops build` compiles it; so does the first auto call when "
                "GANZOO_OPS_BUILD=1")
    return f"{st.status}: {st.reason}"


def _cuda_unusable() -> str | None:
    """Why this process cannot run CUDA kernels at all, or None."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU build"
    if not torch.cuda.is_available():
        return "no CUDA device visible"
    return None


def _loaded_state(spec):
    """The extension's state, loading it first when it is built (to prove it loads)."""
    from ganzoo.errors import GanzooError
    from ganzoo.ops import build
    st = build.state(spec)
    if st.status == "built":
        try:
            build.load(spec, build=False)
        except GanzooError as e:
            st.status, st.reason = "failed", str(e)
        else:
            st = build.state(spec)
    return st


@ops_group.command("check")
def check_command():
    """Show each op's implementations per device: available, built or failed and why, build
    time and the build cache folder. Loads built kernels (to prove they load) but never
    compiles."""
    from ganzoo.errors import GanzooError
    from ganzoo.ops import NATIVE_IMPL, build, select_impl
    for line in _environment_lines():
        click.echo(line)
    lines = {}
    for spec in build.EXTENSIONS.values():
        unusable = _cuda_unusable() if spec.cuda else None
        if unusable:
            lines[spec.name] = (f"not available: {unusable}; auto runs the reference there", None)
            continue
        st = _loaded_state(spec)
        click.echo(f"extension {spec.library}: {st.directory}")
        auto = None
        if st.status == "loaded":
            probe = torch.zeros(1, 1, 1, 1, device=spec.device)
            try:
                auto = select_impl(spec.ops[0], "auto", probe)
            except GanzooError:
                auto = None
        lines[spec.name] = (_describe(st), auto)
    click.echo("")
    click.echo(f"{'op':11s} {'device':7s} {'impl':5s} state")
    for op in build.CPU_EXTENSION.ops:
        for spec in build.EXTENSIONS.values():
            impl = NATIVE_IMPL[spec.device]
            text, auto = lines[spec.name]
            note = f" (auto uses {auto})" if auto else ""
            click.echo(f"{op:11s} {spec.device:7s} {impl:5s} {text}{note}")
        click.echo(f"{op:11s} {'any':7s} {'ref':5s} ready: pure PyTorch, the specification")


@ops_group.command("build")
@click.option("--force", is_flag=True, help="rebuild from scratch, also after a failed build")
def build_command(force: bool):
    """Compile the native kernels usable here now (or load them from the cache) and print the
    time: the CPU kernels, and the CUDA kernels where torch has CUDA and sees a GPU."""
    from ganzoo.ops import build
    for spec in build.EXTENSIONS.values():
        if spec.cuda and (unusable := _cuda_unusable()):
            click.echo(f"{spec.library}: skipped: {unusable}")
            continue
        already = build.loaded(spec) is not None and not force
        was_built = build.is_built(spec) and not force
        t0 = time.perf_counter()
        build.load(spec, build=True, force=force)
        seconds = time.perf_counter() - t0
        st = build.state(spec)
        if already or was_built:
            how = "already loaded" if already else f"loaded from the cache in {seconds:.2f} s"
            click.echo(f"{spec.library}: up to date, {how} (built {st.built_at} in "
                       f"{st.build_seconds:.1f} s): {st.directory}")
        else:
            click.echo(f"{spec.library}: built in {st.build_seconds:.1f} s: {st.directory}")

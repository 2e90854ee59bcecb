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
        return ("not built: `ganzoo ops build` compiles it (about a minute on 2 cores); "
                "so does the first auto call when GANZOO_OPS_BUILD=1")
    return f"{st.status}: {st.reason}"


@ops_group.command("check")
def check_command():
    """Show each op's implementations per device: available, built or failed and why, build
    time and the build cache folder. Loads built kernels (to prove they load) but never
    compiles."""
    from ganzoo.errors import GanzooError
    from ganzoo.ops import build, select_impl
    for line in _environment_lines():
        click.echo(line)
    spec = build.CPU_EXTENSION
    st = build.state(spec)
    if st.status == "built":
        try:
            build.load(spec, build=False)
        except GanzooError as e:
            st.status, st.reason = "failed", str(e)
        else:
            st = build.state(spec)
    click.echo(f"extension {spec.library}: {st.directory}")
    click.echo("")
    cpu_line = _describe(st)
    if torch.cuda.is_available():
        cuda_line = ("not available: ganzoo has no CUDA kernels yet; auto runs the reference "
                     "on CUDA tensors")
    else:
        cuda_line = "not available: no CUDA kernels yet (and no CUDA device here)"
    rows = []
    probe = torch.zeros(1, 1, 1, 1)
    for op in build.CPU_EXTENSION.ops:
        try:
            auto = select_impl(op, "auto", probe) if st.status == "loaded" else None
        except GanzooError:
            auto = None
        auto_note = f" (auto uses {auto})" if auto else ""
        rows.append((op, "cpu", "cpp", cpu_line + auto_note))
        rows.append((op, "cuda", "cuda", cuda_line))
        rows.append((op, "any", "ref", "ready: pure PyTorch, the specification"))
    click.echo(f"{'op':11s} {'device':7s} {'impl':5s} state")
    for op, device, impl, text in rows:
        click.echo(f"{op:11s} {device:7s} {impl:5s} {text}")


@ops_group.command("build")
@click.option("--force", is_flag=True, help="rebuild from scratch, also after a failed build")
def build_command(force: bool):
    """Compile the native kernels now (or load them from the cache) and print the time."""
    from ganzoo.ops import build
    spec = build.CPU_EXTENSION
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

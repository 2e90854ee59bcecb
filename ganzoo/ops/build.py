"""Building and loading ganzoo's native ops (sources in third_party/) with
``torch.utils.cpp_extension.load`` and ninja.

Where: ``$TORCH_EXTENSIONS_DIR`` when set, else ``$GANZOO_HOME/torch_extensions`` (GANZOO_HOME
defaults to ~/.cache/ganzoo), one folder per build named ``<extension>-<key>``. The key is a
hash of everything the binary depends on: the source files' contents, the torch version, the
CUDA version ("cpu" for a CPU extension), the GPU architectures (``TORCH_CUDA_ARCH_LIST`` or
the visible GPUs; CUDA extensions only), the compile flags (which follow the CPU's vector
extension, see compile_flags), the compiler, Python and platform.
A changed source or torch gets a new folder and a fresh build; an unchanged one loads the
finished library straight from its folder, without ninja or a compiler.

A finished build leaves ``ganzoo_build.json`` (seconds taken, when, the key's parts) beside the
library; a failed one leaves ``build_failed.json`` with the reason and ``build.log`` with the
compiler output, so an automatic build is not retried by every process (``ganzoo ops build``
retries). A missing ninja or compiler (or nvcc, for CUDA extensions) is reported before any
work, as one line naming what is missing and how to get it.

The extensions register their kernels as torch.ops through TORCH_LIBRARY (public API, no
pybind11), one namespace per device, e.g. ``torch.ops.ganzoo_cpu.bias_act``. ganzoo's code
calls them through the device-independent custom ops ``torch.ops.ganzoo.*`` (defined in
Python by ganzoo/ops/bias_act.py and upfirdn2d.py, with fake implementations and autograd
formulas for torch.compile), which run the loaded kernel of their tensor's device.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import platform
import re
import shlex
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganzoo.atomic import atomic_write_text
from ganzoo.errors import GanzooError

log = logging.getLogger("ganzoo.ops")

BUILD_RECORD = "ganzoo_build.json"
FAILURE_RECORD = "build_failed.json"
BUILD_LOG = "build.log"
STALE_LOCK_SECONDS = 15 * 60   # torch waits forever on a lock left by a killed build


class OpBuildError(GanzooError):
    """A native extension cannot be built or loaded; the message is one line saying why."""


class NotBuilt(OpBuildError):
    """The extension is not in the cache and building was not allowed."""


@dataclass(frozen=True)
class ExtensionSpec:
    """One native extension: a folder of third_party/ compiled into one library."""
    name: str                    # short name: "cpu" or "cuda"
    library: str                 # library file / TORCH_EXTENSION_NAME: "ganzoo_cpu_ops"
    namespace: str               # torch.ops namespace its sources register
    source_dir: str              # folder under third_party/
    ops: tuple[str, ...]         # the ops it provides
    device: str                  # the device type its kernels run on
    # -fno-trapping-math lets the compiler vectorise selects such as lrelu's (no FP traps used);
    # vector-extension flags are added per machine by compile_flags().
    cflags: tuple[str, ...] = ("-O3", "-fno-trapping-math")
    cuda: bool = False           # nvcc, CUDA version and GPU architectures join the key
    cuda_cflags: tuple[str, ...] = field(default=())


CPU_EXTENSION = ExtensionSpec("cpu", "ganzoo_cpu_ops", "ganzoo_cpu", "cpu",
                              ("bias_act", "upfirdn2d"), "cpu")
# No --use_fast_math: the kernels are memory-bound, and the exact exp/tanh keep them within
# fp32 rounding of the reference.
CUDA_EXTENSION = ExtensionSpec("cuda", "ganzoo_cuda_ops", "ganzoo_cuda", "cuda",
                               ("bias_act", "upfirdn2d"), "cuda", cuda=True,
                               cuda_cflags=("-O3",))
EXTENSIONS: dict[str, ExtensionSpec] = {"cpu": CPU_EXTENSION, "cuda": CUDA_EXTENSION}
# The extension whose kernels run on each device type.
BY_DEVICE: dict[str, ExtensionSpec] = {spec.device: spec for spec in EXTENSIONS.values()}

SOURCE_SUFFIXES = (".cpp", ".cc", ".cu", ".h", ".cuh", ".hpp")
COMPILED_SUFFIXES = (".cpp", ".cc", ".cu")


def sources_root() -> Path:
    """third_party/: the installed ``ganzoo_third_party`` package, or the source checkout's."""
    try:
        import ganzoo_third_party
        return Path(ganzoo_third_party.__file__).resolve().parent
    except ImportError:
        return Path(__file__).resolve().parents[2] / "third_party"


def source_files(spec: ExtensionSpec) -> list[Path]:
    """Every file the build reads (headers included), sorted, so the key sees any change."""
    folder = sources_root() / spec.source_dir
    files = sorted(p for p in folder.glob("*") if p.suffix in SOURCE_SUFFIXES)
    if not any(p.suffix in COMPILED_SUFFIXES for p in files):
        raise OpBuildError(f"the sources of ganzoo's {spec.name} ops are missing: no "
                           f"{'/'.join(COMPILED_SUFFIXES)} files in {folder} (reinstall ganzoo)")
    return files


def cxx_compiler() -> str:
    return os.environ.get("CXX") or ("cl" if sys.platform == "win32" else "c++")


def cuda_arch_list() -> str:
    """TORCH_CUDA_ARCH_LIST, else the compute capabilities of the visible GPUs ("8.0;9.0")."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if env:
        return env
    if torch.cuda.is_available():
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        return ";".join(f"{a}.{b}" for a, b in sorted(caps))
    return ""


def cpu_capability() -> str:
    """The vector extension torch's own CPU kernels use here ("AVX2", "AVX512", "DEFAULT"...);
    follows ATEN_CPU_CAPABILITY."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - very old torch or an unknown platform
        return "DEFAULT"


def compile_flags(spec: ExtensionSpec) -> list[str]:
    """spec.cflags plus AVX2 + FMA code generation where torch itself runs AVX2 (or AVX-512)
    kernels (the compiler then vectorises the kernels' loops 8 floats wide; the capability is
    part of the cache key, so a cache shared with an older machine never loads such code), and
    OpenMP where torch's intra-op parallelism is OpenMP."""
    flags = list(spec.cflags)
    if (cpu_capability() in ("AVX2", "AVX512") and sys.platform != "win32"
            and platform.machine().lower() in ("x86_64", "amd64")):
        flags += ["-mavx2", "-mfma"]
    if sys.platform.startswith("linux") and _openmp_backend():
        # at::parallel_for is header-only under torch's OpenMP backend: without -fopenmp it
        # runs serially. Compile-only: the OpenMP symbols resolve to the libgomp torch loads.
        flags.append("-fopenmp")
    return flags


def _openmp_backend() -> bool:
    try:
        return "parallel backend: OpenMP" in torch.__config__.parallel_info()
    except Exception:  # noqa: BLE001
        return False


def key_parts(spec: ExtensionSpec, files: list[Path] | None = None) -> dict[str, Any]:
    """Everything the built library depends on; its hash names the build folder."""
    files = source_files(spec) if files is None else files
    root = sources_root() / spec.source_dir
    return {
        "library": spec.library,
        "sources": {str(p.relative_to(root)) if p.is_relative_to(root) else p.name:
                    hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
        "torch": torch.__version__,
        "cuda": (torch.version.cuda or "none") if spec.cuda else "cpu",
        "arch": cuda_arch_list() if spec.cuda else None,
        "cflags": compile_flags(spec),
        "cpu_capability": cpu_capability(),
        "cuda_cflags": list(spec.cuda_cflags) if spec.cuda else None,
        "compiler": cxx_compiler(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "platform": f"{sys.platform}-{platform.machine()}",
    }


def build_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def build_root() -> Path:
    """$TORCH_EXTENSIONS_DIR, else $GANZOO_HOME/torch_extensions."""
    env = os.environ.get("TORCH_EXTENSIONS_DIR")
    if env:
        return Path(env)
    from ganzoo.data.cache import ganzoo_home
    return ganzoo_home() / "torch_extensions"


def library_file(spec: ExtensionSpec, directory: Path) -> Path:
    from torch.utils.cpp_extension import LIB_EXT
    return directory / f"{spec.library}{LIB_EXT}"


def toolchain_problem(spec: ExtensionSpec) -> str | None:
    """None when ninja, a C++ compiler (and nvcc for CUDA) are there; else one line saying
    what is missing and how to get it."""
    from torch.utils.cpp_extension import is_ninja_available
    if not is_ninja_available():
        return ("ninja is not installed or not on PATH (pip install ninja, or apt install "
                "ninja-build)")
    cxx = cxx_compiler()
    if shutil.which(shlex.split(cxx)[0] if cxx.strip() else cxx) is None:   # e.g. "ccache g++"
        where = "$CXX" if os.environ.get("CXX") else "c++ on PATH"
        return (f"no C++ compiler: {cxx!r} not found ({where}); install g++ or clang "
                "(e.g. apt install g++) or point CXX at one")
    if spec.cuda:
        from torch.utils.cpp_extension import CUDA_HOME
        if torch.version.cuda is None:
            return f"this torch ({torch.__version__}) is a CPU build; install a CUDA build of torch"
        nvcc = Path(CUDA_HOME or "", "bin", "nvcc")
        if not CUDA_HOME or not nvcc.exists():
            return ("nvcc not found (set CUDA_HOME to a CUDA toolkit matching torch's CUDA "
                    f"{torch.version.cuda}, or install cuda-toolkit)")
    return None


@dataclass
class ExtensionState:
    """What `ganzoo ops check` shows for one extension."""
    spec: ExtensionSpec
    directory: Path
    status: str                  # "loaded" | "built" | "not built" | "failed" | "unavailable"
    reason: str = ""             # why failed / unavailable
    build_seconds: float | None = None
    built_at: str | None = None
    load_seconds: float | None = None
    from_cache: bool | None = None  # whether this process loaded it without compiling


_lock = threading.RLock()
_loaded: dict[str, Any] = {}           # spec.name -> torch.ops namespace
_load_info: dict[str, tuple[float, bool, Path]] = {}  # name -> (seconds, from_cache, folder)
_failed: dict[str, str] = {}           # spec.name -> reason (this process)
_keys: dict[str, tuple[str, dict]] = {}


def _key(spec: ExtensionSpec) -> tuple[str, dict]:
    """(key, parts), computed once per process (hashing the sources costs a few ms)."""
    if spec.name not in _keys:
        parts = key_parts(spec)
        _keys[spec.name] = (build_key(parts), parts)
    return _keys[spec.name]


def build_dir(spec: ExtensionSpec) -> Path:
    return build_root() / f"{spec.library}-{_key(spec)[0]}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_built(spec: ExtensionSpec) -> bool:
    d = build_dir(spec)
    return (d / BUILD_RECORD).is_file() and library_file(spec, d).is_file()


def loaded(spec: ExtensionSpec):
    """The torch.ops namespace if this process has loaded the extension, else None."""
    return _loaded.get(spec.name)


def state(spec: ExtensionSpec) -> ExtensionState:
    """The extension's state, without building or loading anything."""
    d = _load_info[spec.name][2] if spec.name in _loaded else build_dir(spec)
    record = _read_json(d / BUILD_RECORD) or {}
    st = ExtensionState(spec, d, "not built", build_seconds=record.get("seconds"),
                        built_at=record.get("finished"))
    if spec.name in _loaded:
        st.status = "loaded"
        st.load_seconds, st.from_cache, _ = _load_info[spec.name]
    elif spec.name in _failed:
        st.status, st.reason = "failed", _failed[spec.name]
    elif is_built(spec):
        st.status = "built"
    elif (failure := _read_json(d / FAILURE_RECORD)) is not None:
        st.status, st.reason = "failed", failure.get("reason", "unknown")
    elif (problem := toolchain_problem(spec)) is not None:
        st.status, st.reason = "unavailable", problem
    return st


def _namespace(spec: ExtensionSpec):
    ns = getattr(torch.ops, spec.namespace)
    for op in spec.ops:
        getattr(ns, op)   # raises if the library did not register it
    return ns


def _load_library(spec: ExtensionSpec, directory: Path):
    torch.ops.load_library(str(library_file(spec, directory)))
    return _namespace(spec)


def _first_error_line(output: str) -> str:
    for line in output.splitlines():
        if re.search(r"\berror\b", line, re.IGNORECASE) and "Error building extension" not in line:
            return line.strip()[:300]
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


def _remove_stale_lock(directory: Path) -> None:
    lock = directory / "lock"
    try:
        if time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
            log.warning("removing a stale build lock (%s) left by an interrupted build", lock)
            lock.unlink()
    except FileNotFoundError:
        pass


def load(spec: ExtensionSpec = CPU_EXTENSION, *, build: bool = True, force: bool = False):
    """The extension's torch.ops namespace: already loaded, loaded from the cache, or (with
    ``build``) compiled now. ``force`` rebuilds from scratch, also after a recorded failure.

    Raises:
        NotBuilt: not in the cache and ``build`` is False.
        OpBuildError: the toolchain is missing or compilation failed (one line; the compiler
            output is in the build folder's build.log).
    """
    with _lock:
        if spec.name in _loaded and not force:
            return _loaded[spec.name]
        if spec.name in _failed and not force:
            raise OpBuildError(_failed[spec.name])
        d = build_dir(spec)
        if force and spec.name in _loaded:
            raise OpBuildError(f"the {spec.name} ops are already loaded in this process; "
                               "rebuild in a fresh one (`ganzoo ops build --force`)")
        if force and d.exists():
            shutil.rmtree(d)
        t0 = time.perf_counter()
        if is_built(spec):
            try:
                ns = _load_library(spec, d)
            except (OSError, RuntimeError, AttributeError) as e:
                reason = (f"the cached {spec.name} ops in {d} do not load "
                          f"({_first_error_line(str(e))}); run `ganzoo ops build --force`")
                _failed[spec.name] = reason
                raise OpBuildError(reason) from e
            return _remember(spec, ns, d, time.perf_counter() - t0, from_cache=True)
        if not build:
            raise NotBuilt(f"the {spec.name} ops are not built yet (in {d})")
        failure = _read_json(d / FAILURE_RECORD)
        if failure is not None:
            reason = failure.get("reason", "unknown error")
            _failed[spec.name] = reason
            raise OpBuildError(reason)
        problem = toolchain_problem(spec)
        if problem is not None:
            reason = f"cannot build ganzoo's {spec.name} ops: {problem}"
            _failed[spec.name] = reason
            raise OpBuildError(reason)
        ns = _compile(spec, d)
        seconds = (_read_json(d / BUILD_RECORD) or {}).get("seconds", 0.0)
        return _remember(spec, ns, d, seconds, from_cache=False)


def _remember(spec: ExtensionSpec, ns, directory: Path, seconds: float, from_cache: bool):
    _loaded[spec.name] = ns
    _failed.pop(spec.name, None)
    _load_info[spec.name] = (seconds, from_cache, directory)
    return ns


def _compile(spec: ExtensionSpec, d: Path):
    from torch.utils.cpp_extension import load as cpp_load
    files = source_files(spec)
    key, parts = _key(spec)
    d.mkdir(parents=True, exist_ok=True)
    _remove_stale_lock(d)
    log.warning("compiling ganzoo's %s ops (once per source and torch version; %s) into %s",
                "CUDA" if spec.cuda else "C++ CPU", "a minute or two" if spec.cuda else
                "about a minute on 2 cores", d)
    t0 = time.perf_counter()
    try:
        cpp_load(name=spec.library,
                 sources=[str(p) for p in files if p.suffix in COMPILED_SUFFIXES],
                 extra_cflags=compile_flags(spec),
                 extra_cuda_cflags=list(spec.cuda_cflags) or None,
                 extra_include_paths=[str(sources_root() / spec.source_dir)],
                 build_directory=str(d), with_cuda=spec.cuda, is_python_module=False,
                 verbose=False)
        ns = _namespace(spec)
    except Exception as e:  # noqa: BLE001 - any failure becomes one line plus a log file
        output = str(e)
        (d / BUILD_LOG).write_text(output)
        reason = (f"building ganzoo's {spec.name} ops failed: {_first_error_line(output)} "
                  f"(full log: {d / BUILD_LOG}; `ganzoo ops build --force` retries)")
        atomic_write_text(d / FAILURE_RECORD, json.dumps({"reason": reason, "key": key}))
        _failed[spec.name] = reason
        raise OpBuildError(reason) from e
    seconds = time.perf_counter() - t0
    record = {"seconds": round(seconds, 2),
              "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "key": key, "parts": parts}
    atomic_write_text(d / BUILD_RECORD, json.dumps(record, indent=1))
    log.warning("compiled ganzoo's %s ops in %.1f s", spec.name, seconds)
    return ns

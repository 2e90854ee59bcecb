"""--compile and --cuda-graphs (ganzoo/acceleration.py): one-line refusals where unavailable,
and compiled training that equals eager training.

Tolerances, measured on this machine's CPU build (inductor fuses and reorders float work):
the first step's logged losses agree to about 1e-6 (both start from the same weights), its
regularisers (path length, R1: run after the main phases' Adam steps) to about 5e-5; the
tests allow 1e-3. The weights drift apart faster: Adam's first steps move every weight by
about lr whatever the size of its gradient, so the sign of a near-zero gradient decides, and
GAN training amplifies the rest. Measured as |a - b| / |a| per tensor: dcgan after four steps
up to 1.9e-3 (G) and 7e-4 (D); stylegan2-ada --cfg tiny after two steps up to 6.4e-3 (a noise
strength, which starts at zero) and 4.8e-3 (D); the tests allow 3e-2, well below what a
wrong compiled pass gives (the first step's losses would differ). The torch random stream is
the same: inductor draws through eager's generator.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch

from conftest import TINY_DCGAN, run_ganzoo
from ganzoo.acceleration import Acceleration, unavailable_reason
from ganzoo.checkpoint import checkpoints_of, flat_tensors, read_checkpoint

# stats.jsonl keys that are not computed by the step
NOT_COMPUTED = {"kimg", "step", "sec_per_kimg", "train_seconds", "timestamp"}
DCGAN = ["train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--tick", "0.016", "-q"]


def run_checkpoints(root: Path) -> list[dict]:
    (run,) = list(root.iterdir())
    return [read_checkpoint(p) for p in checkpoints_of(run)]


def largest_relative_difference(a: dict, b: dict, prefix: str = "") -> float:
    """max over tensors (whose names start with ``prefix``) of |a - b| / |a| (L2 norms)."""
    a, b = flat_tensors(a["state"]), flat_tensors(b["state"])
    assert a.keys() == b.keys()
    diffs = {k: ((a[k] - b[k]).norm() / a[k].norm().clamp(min=1e-12)).item()
             for k in a if k.startswith(prefix) and a[k].is_floating_point()}
    worst = max(diffs, key=diffs.get)
    print(f"{prefix or 'all'}: largest relative difference {diffs[worst]:.2e} ({worst})")
    return diffs[worst]


def first_step_stats(root: Path) -> dict[str, float]:
    (run,) = list(root.iterdir())
    first = json.loads((run / "stats.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1
    return {k: v for k, v in first.items() if k not in NOT_COMPUTED}


def assert_compiled_equals_eager(tmp_path: Path, networks: tuple[str, ...], steps: int):
    """The first step's losses agree (both start from the same weights), the weights after
    ``steps`` agree within 3e-2, and both draw the same torch random numbers."""
    eager, compiled = first_step_stats(tmp_path / "eager"), \
        first_step_stats(tmp_path / "compiled")
    assert eager.keys() == compiled.keys()
    for k in eager:
        assert compiled[k] == pytest.approx(eager[k], rel=1e-3, abs=1e-6), k
    eager, compiled = run_checkpoints(tmp_path / "eager"), run_checkpoints(tmp_path / "compiled")
    assert eager[-1]["progress"]["step"] == compiled[-1]["progress"]["step"] == steps
    for prefix in networks:
        assert largest_relative_difference(eager[-1], compiled[-1], prefix) < 3e-2, prefix
    for a, b in zip(eager, compiled):
        assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert compiled[-1]["train"]["compile"] is True


def test_reasons_name_what_is_missing():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    both = frozenset({"compile", "cuda_graphs"})
    graphs = Acceleration(cuda_graphs=True)
    assert "does not support" in unavailable_reason(graphs, "dcgan", frozenset({"compile"}),
                                                    cpu, 1)
    assert "needs a CUDA device" in unavailable_reason(graphs, "x", both, cpu, 1)
    assert "one process" in unavailable_reason(graphs, "x", both, cuda, 2)
    assert unavailable_reason(Acceleration(), "x", frozenset(), cpu, 1) is None


@pytest.mark.parametrize("args, message", [
    (["dcgan", "--cuda-graphs"], "--cuda-graphs: dcgan does not support it"),
    (["stylegan2-ada", "--cfg", "tiny", "--resolution", "32", "--cuda-graphs"],
     "--cuda-graphs needs a CUDA device; this run is on cpu (use --device cuda)"),
])
def test_unavailable_acceleration_is_one_line(cli, args, message):
    r = cli("train", *args, "--data", "shapes", "--kimg", "0.016", "--device", "cpu", "-q")
    assert r.code == 1
    assert r.err.strip() == f"error: {message}", r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_a_gan_whose_d_forward_takes_no_module_trains_but_refuses_compile():
    from ganzoo.errors import GanzooError
    from ganzoo_plugins.dcgan.model import DCGAN as DCGANArch

    class OldStyle(DCGANArch):
        def d_forward(self, images, labels):          # the signature before --compile
            return self.D(images)

    config = OldStyle.Config(base_channels=8, max_channels=16, latent_dim=8, augment="diffaug")
    arch = OldStyle(config, _spec(), torch.device("cpu"))
    with pytest.raises(GanzooError, match=r"d_forward\(images, labels, D=None\)"):
        arch.accelerate(Acceleration(compile=True))
    stats = arch.train_step(torch.rand(4, 3, 32, 32) * 2 - 1, None)   # eager, augmented
    assert set(stats) >= {"loss_d", "loss_g"}


def test_a_compile_that_fails_is_one_line(tmp_path):
    """No working C++ compiler for inductor (a fresh cache, so it must build): one line
    naming the flag to drop, not a torch._dynamo traceback."""
    r = run_ganzoo(*DCGAN, "--kimg", "0.016", "--compile", cwd=tmp_path,
                   env={"CXX": "/nonexistent/g++",
                        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --compile failed: "), r.stderr
    assert lines[0].endswith("(train without --compile)")


def _spec():
    from ganzoo.architecture import DataSpec
    return DataSpec(resolution=32, channels=3, num_classes=0)


@pytest.mark.slow
def test_compiled_dcgan_steps_equal_eager_ones(cli, tmp_path):
    args = [*DCGAN, "--kimg", "0.064", "--snap", "0.016", "--keep", "4"]
    assert cli(*args, "--out", "eager").code == 0
    r = cli(*args, "--out", "compiled", "--compile")
    assert r.code == 0, r.err
    assert_compiled_equals_eager(tmp_path, ("G.", "D."), steps=4)


@pytest.mark.slow
def test_resumed_compiled_run_equals_an_uninterrupted_one(cli, tmp_path):
    args = [*DCGAN, "--snap", "0.032", "--compile"]
    assert cli(*args, "--kimg", "0.064", "--out", "straight").code == 0
    assert cli(*args, "--kimg", "0.032", "--out", "resumed").code == 0
    r = cli("train", "dcgan", "--resume", "latest", "--out", "resumed", "--kimg", "0.064",
            "-q")
    assert r.code == 0, r.err
    straight, resumed = run_checkpoints(tmp_path / "straight"), \
        run_checkpoints(tmp_path / "resumed")
    a, b = flat_tensors(straight[-1]["state"]), flat_tensors(resumed[-1]["state"])
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"
    assert resumed[-1]["train"]["compile"] is True     # carried over by --resume


@pytest.mark.slow
def test_compiled_stylegan2_steps_equal_eager_ones(cli, tmp_path):
    """Two minibatches of --cfg tiny: Gmain, Greg, Dmain and Dreg all run in the first; the
    main phases compiled, the regularisers eager."""
    args = ["train", "stylegan2-ada", "--data", "shapes", "--resolution", "32", "--cfg",
            "tiny", "--batch", "16", "--kimg", "0.032", "--snap", "0.016", "--tick", "0.016",
            "-q"]
    assert cli(*args, "--out", "eager").code == 0
    r = cli(*args, "--out", "compiled", "--compile")
    assert r.code == 0, r.err
    assert_compiled_equals_eager(tmp_path, ("G.", "D.", "G_ema."), steps=2)


@pytest.mark.slow
def test_stylegan2_main_phases_trace_without_graph_breaks(monkeypatch):
    """Gmain and Dmain as the loss runs them (mapping, style mixing, synthesis with random
    noise, D on fakes and reals): one graph each. Style mixing once read its cutoff on the
    host (.item(), a break and a GPU wait); now it decides by masks."""
    import ganzoo
    from ganzoo.architecture import DataSpec
    monkeypatch.setenv("GANZOO_OPS_IMPL", "ref")
    torch.manual_seed(0)
    arch = ganzoo.create("stylegan2-ada", DataSpec(16, 3, 0), cfg="tiny", style_mixing=0.9,
                         aug="none")
    loss = arch.loss
    z, c = torch.randn(4, arch.config.z_dim), torch.zeros(4, 0)
    reals = torch.rand(4, 3, 16, 16) * 2 - 1
    torch._dynamo.reset()
    for name, phase in (("Gmain", lambda z: loss.generator_main(z, c)[0]),
                        ("Dmain", lambda z: loss.discriminator_main(reals, c, z, c)[0])):
        explained = torch._dynamo.explain(phase)(z)
        assert explained.graph_break_count == 0, (name, [r.reason for r in
                                                         explained.break_reasons])


# -- CUDA graphs ----------------------------------------------------------------------------------

class FakeCuda:
    """torch.cuda's stream and graph calls, recorded on a CPU: what PhaseGraphs decides
    (which call runs the phase, which captures, which only replays) without a GPU."""

    def __init__(self, monkeypatch):
        self.captures, self.replays = [], 0
        fake = self

        class Graph:
            def replay(self):
                fake.replays += 1

        @contextlib.contextmanager
        def graph(g, pool=None, stream=None):
            fake.captures.append(g)
            yield

        class Stream:
            def wait_stream(self, other):
                pass

        for name, value in {"CUDAGraph": Graph, "graph": graph, "Stream": Stream,
                            "stream": lambda s: contextlib.nullcontext(),
                            "current_stream": Stream,
                            "graph_pool_handle": lambda: "pool"}.items():
            monkeypatch.setattr(torch.cuda, name, value)


def test_phase_graphs_run_once_capture_once_then_only_replay(monkeypatch):
    from ganzoo.acceleration import PhaseGraphs
    fake = FakeCuda(monkeypatch)
    graphs, runs = PhaseGraphs(), []

    def phase():
        runs.append(1)
        return {"loss": torch.ones(())}
    first = graphs.run(("Gmain", False), phase)          # eager warm-up
    assert (len(runs), len(fake.captures), fake.replays) == (1, 0, 0)
    captured = graphs.run(("Gmain", False), phase)       # captured, then replayed
    assert (len(runs), len(fake.captures), fake.replays) == (2, 1, 1)
    for _ in range(3):                                    # replays only: no Python runs
        assert graphs.run(("Gmain", False), phase) is captured
    assert (len(runs), len(fake.captures), fake.replays) == (2, 1, 4)
    assert first is not captured
    graphs.run(("Gmain", True), phase)                   # another key: its own warm-up
    assert len(runs) == 3 and len(fake.captures) == 1


def test_phase_graph_inputs_keep_their_place(monkeypatch):
    from ganzoo.acceleration import PhaseGraphs
    FakeCuda(monkeypatch)
    graphs = PhaseGraphs()
    a = graphs.static("reals", torch.zeros(2, 3))
    b = graphs.static("reals", torch.ones(2, 3))
    assert a is b and torch.equal(b, torch.ones(2, 3))
    graphs.graphs["x"] = ("graph", None)
    c = graphs.static("reals", torch.ones(4, 3))          # a new shape: capture again
    assert c is not a and not graphs.graphs


# -- CUDA graphs on a GPU (skipped without one) -------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _stylegan2_trainer(tmp_path: Path, name: str, **train):
    from ganzoo import make_config
    from ganzoo.registry import Registry
    from ganzoo.trainer import Trainer, TrainConfig
    from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA
    torch.manual_seed(0)
    config = TrainConfig(data="shapes", resolution=32, batch=16, kimg=1000, tick=1000,
                         snap=1000, out=str(tmp_path / name), device="cuda", **train)
    return Trainer(StyleGAN2ADA, make_config(StyleGAN2ADA, {"cfg": "tiny"}), config,
                   Registry(), quiet=True)


@needs_cuda
def test_cuda_graph_steps_equal_eager_ones(tmp_path):
    """Six minibatches: Gmain and Dmain run eagerly once, are captured at the second and
    replayed four times; Greg (every 4th) is captured at the fifth. Both trainers live in one
    process, so cuDNN picks the same algorithms for both: the logged values should agree to
    float rounding, step by step (the same random numbers included), and the weights after
    six steps within the drift that Adam's first steps allow (see the module docstring)."""
    runs, logged = {}, {}
    for name, train in (("eager", {}), ("graphs", {"cuda_graphs": True})):
        trainer = _stylegan2_trainer(tmp_path, name, **train)
        logged[name] = []
        step = trainer.arch.train_step

        def recorded(reals, labels, step=step, log=logged[name]):
            stats = step(reals, labels)
            log.append({k: float(v) for k, v in stats.items()})
            return stats
        trainer.arch.train_step = recorded
        trainer.advance(6 * 16)
        runs[name] = trainer
    graphs = runs["graphs"].arch.graphs
    assert {key[0] for key in graphs.graphs} == {"Gmain", "Dmain", "Greg"}
    for i, (a, b) in enumerate(zip(logged["eager"], logged["graphs"])):
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-5), f"step {i + 1}: {k}"
    for attr in ("G", "D"):
        a = dict(getattr(runs["eager"].arch, attr).named_parameters())
        b = dict(getattr(runs["graphs"].arch, attr).named_parameters())
        for k in a:
            rel = ((a[k] - b[k]).norm() / a[k].norm().clamp(min=1e-12)).item()
            assert rel < 3e-2, f"{attr}.{k}: {rel}"


@needs_cuda
def test_a_captured_augmentation_follows_p():
    """The pipe reads p on the GPU: a graph captured at p = 1 augments nothing once p is 0."""
    from ganzoo.augment.pipeline import AugmentPipe
    pipe = AugmentPipe("bgc").cuda()
    pipe.p.fill_(1.0)
    images = torch.rand(8, 3, 16, 16, device="cuda") * 2 - 1
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        pipe(images)                                  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = pipe(images)
    graph.replay()
    assert not torch.equal(out, images)
    pipe.p.fill_(0.0)
    graph.replay()
    assert torch.equal(out, images)


@pytest.mark.parametrize("cond", [False, True], ids=["unconditional", "conditional"])
def test_stylegan2_phases_read_nothing_back_from_the_device(monkeypatch, cond):
    """What a CUDA graph cannot hold: a phase that reads a tensor's value on the host (item,
    tolist, float, bool, nonzero) would wait for the GPU and break the capture. Every phase
    of the first minibatch (Gmain, Greg, Dmain, Dreg; style mixing on, conditional labels
    drawn) runs here with those reads turned into errors. (The augmentation's GPU path
    selects by masks; its CPU path, not used on a GPU, does read, so it is off here.)"""
    import ganzoo
    from ganzoo.architecture import DataSpec
    from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA
    monkeypatch.setenv("GANZOO_OPS_IMPL", "ref")
    torch.manual_seed(0)
    data = DataSpec(16, 3, 3 if cond else 0, label_counts=(5, 3, 2) if cond else ())
    arch = ganzoo.create("stylegan2-ada", data, cfg="tiny", style_mixing=0.9, aug="none",
                         cond=cond)
    phases = []
    real_run = StyleGAN2ADA._run

    def guarded(module, opt, phase):
        # Adam's step is left out: on a CPU its step count lives on the host by design, and
        # --cuda-graphs makes it capturable (counts on the GPU).
        real_step = opt.step
        opt.step = lambda: _unguarded(real_step)
        try:
            with _host_reads_refused():
                phases.append(module)
                return real_run(module, opt, phase)
        finally:
            del opt.step
    monkeypatch.setattr(StyleGAN2ADA, "_run", staticmethod(guarded))
    labels = torch.tensor([0, 1, 2, 0]) if cond else None
    arch.train_step(torch.rand(4, 3, 16, 16) * 2 - 1, labels)
    assert len(phases) == 4                      # Gmain, Greg, Dmain, Dreg all ran


HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "nonzero")
_ORIGINAL_READS = {name: getattr(torch.Tensor, name) for name in HOST_READS}


@contextlib.contextmanager
def _host_reads_refused():
    for name in HOST_READS:
        setattr(torch.Tensor, name, _host_read(name))
    try:
        yield
    finally:
        for name, fn in _ORIGINAL_READS.items():
            setattr(torch.Tensor, name, fn)


def _unguarded(fn):
    saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}
    for name, original in _ORIGINAL_READS.items():
        setattr(torch.Tensor, name, original)
    try:
        return fn()
    finally:
        for name, f in saved.items():
            setattr(torch.Tensor, name, f)


def _host_read(name: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"Tensor.{name} inside a training phase")
    return refuse

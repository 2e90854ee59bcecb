"""The trainer end to end: run directories, grids, checkpoints, resume, signals."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from conftest import TINY_DCGAN, run_ganzoo
from ganzoo.checkpoint import checkpoints_of, flat_tensors, read_checkpoint

TRAIN = ["train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--tick", "0.032", "-q"]


def final_state(run: Path) -> dict[str, torch.Tensor]:
    return flat_tensors(read_checkpoint(checkpoints_of(run)[-1])["state"])


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def test_run_directory_contents(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["architecture"] == "dcgan"
    assert config["config"]["base_channels"] == 8
    assert config["data_spec"] == {"resolution": 32, "channels": 3, "num_classes": 5,
                                   "class_names": ["circle", "square", "triangle", "star",
                                                   "ring"],
                                   "label_counts": [1000] * 5}
    stats = [json.loads(line) for line in (trained_run / "stats.jsonl").read_text().splitlines()]
    assert [round(s["kimg"], 3) for s in stats] == [0.032, 0.064, 0.096, 0.128]
    assert all({"loss_d", "loss_g", "sec_per_kimg", "step"} <= s.keys() for s in stats)
    grids = sorted(p.name for p in (trained_run / "samples").glob("fakes*.png"))
    assert grids == ["fakes000000.064.png", "fakes000000.128.png"]
    final = Image.open(trained_run / "final.png")
    assert final.size == (320, 320)     # 10 x 10 samples of 32 px, as the thesis sampled 100
    assert Image.open(trained_run / "samples" / "reals.png").size == (320, 320)
    gif = Image.open(trained_run / "progress.gif")
    assert gif.n_frames == 2
    ckpts = checkpoints_of(trained_run)
    assert [p.name for p in ckpts] == ["ckpt-0000000064.pt", "ckpt-0000000128.pt"]
    data = read_checkpoint(ckpts[-1])     # weights_only=True load
    assert data["progress"]["images"] == 128 and data["progress"]["step"] == 8



def test_sample_grids_of_a_resumed_run_read_nothing_until_the_first_snapshot(trained_run,
                                                                            tmp_path):
    """CI failure: under torchrun, rank 1 built its callbacks while rank 0 rewound the run,
    and read a grid rank 0 had just deleted (FileNotFoundError on the restart)."""
    import shutil
    from ganzoo.run_dir import RunDirectory
    from ganzoo.snapshots import SampleGrids
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    files = RunDirectory(run)
    grids = SampleGrids(files, resumed=True)
    files.rewind(0.064)                     # what rank 0 does meanwhile
    assert [p.name for p in files.grids()] == ["fakes000000.064.png"]
    trainer = SimpleNamespace(sample_grid=lambda: torch.zeros(4, 3, 8, 8), grid_cols=2,
                              grid_titles=lambda: (), progress=SimpleNamespace(kimg=0.128))
    grids(trainer, final=False)
    assert Image.open(run / "progress.gif").n_frames == 2     # the kept grid and the new one

def test_keep_last_k(cli, tmp_path):
    r = cli(*TRAIN, "--kimg", "0.128", "--snap", "0.016", "--keep", "2")
    assert r.code == 0, r.err
    run = next((tmp_path / "runs").iterdir())
    assert [p.name for p in checkpoints_of(run)] == ["ckpt-0000000112.pt", "ckpt-0000000128.pt"]
    assert not list((run / "checkpoints").glob(".*"))   # no temp files left behind


def test_same_seed_same_run_and_extension_by_resume_equals_one_long_run(cli, tmp_path):
    """Training to 0.064 kimg, then resuming to 0.128, ends bit-identical to a straight run."""
    assert cli(*TRAIN, "--kimg", "0.128", "--snap", "0.064", "--out", "a").code == 0
    assert cli(*TRAIN, "--kimg", "0.064", "--snap", "0.064", "--out", "b").code == 0
    r = cli("train", "dcgan", "--resume", "latest", "--out", "b", "--kimg", "0.128", "-q")
    assert r.code == 0, r.err
    run_a, run_b = (next((tmp_path / d).iterdir()) for d in ("a", "b"))
    assert_same_state(final_state(run_a), final_state(run_b))
    stats_b = [json.loads(x)["kimg"] for x in (run_b / "stats.jsonl").read_text().splitlines()]
    assert stats_b == [0.032, 0.064, 0.096, 0.128]


def test_generate_is_deterministic_and_writes_files(cli, trained_run, tmp_path):
    r = cli("generate", "--checkpoint", str(trained_run), "--seeds", "0-2,7", "--out", "g")
    assert r.code == 0, r.err
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    r = cli("generate", "--checkpoint", str(trained_run), "--seeds", "7", "--out", "h")
    assert r.code == 0
    same = [Image.open(tmp_path / d / "seed0007.png").tobytes() for d in ("g", "h")]
    assert same[0] == same[1]
    assert Image.open(tmp_path / "g" / "seed0000.png").tobytes() != same[0]
    r = cli("generate", "dcgan", "--checkpoint", str(trained_run), "--seeds", "0-8", "--grid",
            "--out", "grid")
    assert r.code == 0
    assert Image.open(tmp_path / "grid" / "grid.png").size == (96, 96)


def test_generate_defaults_to_newest_run(cli, trained_run, tmp_path):
    import shutil
    shutil.copytree(trained_run, tmp_path / "runs" / "00003-dcgan-shapes")
    r = cli("generate", "--seeds", "0")
    assert r.code == 0, r.err
    assert "00003-dcgan-shapes" in r.out


def test_non_finite_loss_stops_with_step(cli, tmp_path, monkeypatch):
    module = tmp_path / "nan_plugin.py"
    module.write_text(
        "import ganzoo\n"
        "from ganzoo_plugins.dcgan.model import DCGAN\n"
        "class NanGAN(DCGAN):\n"
        "    '''Diverges on its third step.'''\n"
        "    name = 'nan-gan'\n"
        "    def train_step(self, reals, labels):\n"
        "        self.calls = getattr(self, 'calls', 0) + 1\n"
        "        out = super().train_step(reals, labels)\n"
        "        return {**out, 'loss_g': float('nan') if self.calls == 3 else 1.0}\n"
        "@ganzoo.hookimpl\n"
        "def ganzoo_architectures():\n"
        "    return [NanGAN]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = cli("--plugin", "nan_plugin", "train", "nan-gan", "--data", "shapes", *TINY_DCGAN,
            "--kimg", "1", "-q")
    assert r.code == 1
    assert "loss_g became nan at step 3" in r.err and "Traceback" not in r.err


class _TensorStatsGAN:
    """A DCGAN whose train_step logs 0-d tensors (as GPU architectures do), loss_g = the step
    number, NaN at step ``nan_at``."""

    @staticmethod
    def make(nan_at: int | None):
        from ganzoo_plugins.dcgan.model import DCGAN

        class TensorStats(DCGAN):
            name = "tensor-stats"

            def train_step(self, reals, labels):
                self.calls = getattr(self, "calls", 0) + 1
                out = super().train_step(reals, labels)
                value = float("nan") if self.calls == nan_at else float(self.calls)
                return {**out, "loss_g": torch.tensor(value), "d_real": torch.tensor(2.0)}
        return TensorStats


def _tensor_stats_trainer(tmp_path, nan_at, read_every):
    from ganzoo.registry import Registry
    from ganzoo.trainer import Trainer, TrainConfig
    from ganzoo_plugins.dcgan.model import DCGANConfig
    config = TrainConfig(data="shapes", resolution=32, batch=8, kimg=0.08, tick=0.04,
                         out=str(tmp_path / "runs"), device="cpu")
    trainer = Trainer(_TensorStatsGAN.make(nan_at), DCGANConfig(base_channels=8, latent_dim=8),
                      config, Registry(), quiet=True)
    trainer.stats.read_every = read_every      # TickStats: steps between device reads
    return trainer


def test_tensor_stats_are_read_in_batches_with_the_same_means(tmp_path):
    """Tensor stats read every 4 steps give the tick means of reading them every step; a NaN
    is caught at the next read (step 8; the tick ended at step 5), naming the steps since
    the last read."""
    trainer = _tensor_stats_trainer(tmp_path, None, 4)
    trainer.run()
    ticks = [json.loads(line) for line in
             (trainer.run_dir / "stats.jsonl").read_text().splitlines()]
    assert [t["loss_g"] for t in ticks] == [3.0, 8.0]      # means of steps 1-5 and 6-10
    assert all(t["d_real"] == 2.0 for t in ticks)
    from ganzoo.errors import GanzooError
    trainer = _tensor_stats_trainer(tmp_path / "nan", 6, 4)
    with pytest.raises(GanzooError, match="loss_g became nan between steps 6 and 8"):
        trainer.run()


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ganzoo", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_saves_checkpoint_and_resume_matches(tmp_path):
    args = [*TRAIN, "--kimg", "0.4", "--snap", "1"]
    ref = run_ganzoo(*args, "--out", "ref", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    proc = _start([*args, "--out", "int"], tmp_path)
    run_dir = tmp_path / "int"
    deadline = time.time() + 120
    while not (run_dir.exists() and any(run_dir.glob("*/stats.jsonl"))):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    run = next(run_dir.iterdir())
    (ckpt,) = checkpoints_of(run)
    images = read_checkpoint(ckpt)["progress"]["images"]
    assert 0 < images < 400
    done = run_ganzoo("train", "dcgan", "--resume", "latest", "--out", "int", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_state(final_state(next((tmp_path / "ref").iterdir())), final_state(run))


def test_second_trainer_on_a_running_run_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    """`--resume` of a run another process is still training is one line, exit 1, and
    touches nothing; once that process is SIGKILLed the lock is gone with it."""
    proc = _start([*TRAIN, "--kimg", "5", "--snap", "0.032", "--out", "out"], tmp_path)
    deadline = time.time() + 120
    while not any((tmp_path / "out").glob("*/checkpoints/ckpt-*.pt")):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    run = next((tmp_path / "out").iterdir())
    config_before = (run / "config.json").read_bytes()
    second = run_ganzoo("train", "dcgan", "--resume", str(run), "-q", cwd=tmp_path)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert "being trained by another process" in second.stderr
    assert f"pid {proc.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert (run / "config.json").read_bytes() == config_before
    proc.kill()
    proc.wait()
    images = read_checkpoint(checkpoints_of(run)[-1])["progress"]["images"]
    done = run_ganzoo("train", "dcgan", "--resume", str(run), "--kimg",
                      str((images + 64) / 1000), "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def _stats_lines(out: Path) -> int:
    files = list(out.glob("*/stats.jsonl"))
    return len(files[0].read_text().splitlines()) if files else 0


def kill_and_resume(tmp_path: Path, args: list[str], kills: int, rng: random.Random,
                    window: tuple[float, float]) -> tuple[Path, int]:
    """SIGKILL a training run at a random moment, ``window`` seconds after each (re)started
    process has trained a tick and a checkpoint exists, resuming each time; every checkpoint
    that exists after a kill must be readable. Returns the run and how many kills landed."""
    out = tmp_path / "killed"
    proc = _start([*args, "--out", str(out)], tmp_path)
    landed = 0
    for _ in range(kills):
        lines, deadline = _stats_lines(out), time.time() + 600
        while _stats_lines(out) <= lines or not list(out.glob("*/checkpoints/ckpt-*.pt")):
            if proc.poll() is not None:
                break
            assert time.time() < deadline
            time.sleep(0.02)
        time.sleep(rng.uniform(*window))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        landed += 1
        run = next(out.iterdir())
        for ckpt in checkpoints_of(run):
            read_checkpoint(ckpt)
        proc = _start(["train", "dcgan", "--resume", "latest", "--out", str(out), "-q"],
                      tmp_path)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    return next(out.iterdir()), landed


@pytest.mark.slow
def test_sigkill_five_times_then_resume_equals_uninterrupted(tmp_path):
    args = [*TRAIN, "--kimg", "8", "--snap", "0.096"]
    ref = run_ganzoo(*args, "--out", str(tmp_path / "ref"), cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    run, landed = kill_and_resume(tmp_path, args, kills=5, rng=random.Random(os.getpid()),
                                  window=(0.0, 1.0))
    assert landed == 5
    ref_run = next((tmp_path / "ref").iterdir())
    assert_same_state(final_state(ref_run), final_state(run))
    grids = sorted(p.name for p in (run / "samples").glob("fakes*.png"))
    assert grids == sorted(p.name for p in (ref_run / "samples").glob("fakes*.png"))
    assert Image.open(run / "progress.gif").n_frames == len(grids)
    kimgs = [json.loads(x)["kimg"] for x in (run / "stats.jsonl").read_text().splitlines()]
    assert kimgs == sorted(set(kimgs)) and kimgs[-1] == 8


DOUBLE_SIGNAL_SCRIPT = """
import os, signal, sys
import ganzoo.trainer as trainer
real = trainer.save_checkpoint
calls = []
def save_under_fire(path, **kw):
    calls.append(path)
    if len(calls) == 1:            # two signals arrive while the first checkpoint is written
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return real(path, **kw)
trainer.save_checkpoint = save_under_fire
from ganzoo.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_two_signals_during_a_save_leave_a_whole_checkpoint(tmp_path, sig):
    """Issue 21: a double Ctrl-C during a save printed an internal RuntimeError, and a
    double SIGTERM left the temp file. Now the save finishes, then the run stops."""
    from conftest import TINY_DCGAN
    from ganzoo.checkpoint import read_checkpoint
    args = ["train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "0.096",
            "--snap", "0.032", "--tick", "0.032", "-q", "--out", str(tmp_path / "runs")]
    proc = subprocess.run([sys.executable, "-c", DOUBLE_SIGNAL_SCRIPT, sig, *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 128 + getattr(signal, sig), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "second " + sig in proc.stderr
    ckpt_dir = next((tmp_path / "runs").iterdir()) / "checkpoints"
    assert [p.name for p in ckpt_dir.iterdir()] == ["ckpt-0000000032.pt"]   # no temp files
    assert read_checkpoint(ckpt_dir / "ckpt-0000000032.pt")["progress"]["images"] == 32

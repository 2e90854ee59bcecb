"""Data-parallel training on 2 CPU processes (gloo on 127.0.0.1), against one process.

What is exact: gradients averaged over ranks equal one process's on the global batch (with
BatchNorm synced, and through the gradient penalty's double backward); D's first output on the
reals (same weights, same images, global BatchNorm statistics); metrics computed by 2 ranks
during training equal `ganzoo eval` of the checkpoint in one process. What is within a
tolerance: the loss trajectory, since each rank draws its own latents (seeded from the run
seed and its rank), so the fakes differ from the single process's.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_DCGAN, run_ganzoo

HERE = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}     # 2 ranks on 2 cores: no oversubscription
STEP_KIMG = "0.016"                       # TINY_DCGAN's batch 16: one stats line per step

# |2 processes - 1 process| allowed per logged loss over the first steps: the runs share
# weights, data and global batch but not latents. Measured (dcgan, 6 steps): at most 0.28;
# (wgan-gp ResNet, 6 steps of 5 critic updates): at most 0.41 on a loss of 7.
TOLERANCE_ABS, TOLERANCE_REL = 0.3, 0.1


def torchrun(nproc: int, *args: str, cwd: Path, timeout: float = 300, **kw):
    return subprocess.run([*TORCHRUN, str(nproc), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, **ONE_THREAD}, **kw)


def stats_lines(run_root: Path) -> list[dict]:
    (run,) = list((run_root / "runs").iterdir())
    return [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]


def train_args(arch: str, kimg: str, *extra: str) -> list[str]:
    return ["train", arch, "--data", "shapes", "--kimg", kimg, "--device", "cpu", "-q", *extra]


def assert_trajectories_match(one: list[dict], two: list[dict], keys: tuple[str, ...]) -> None:
    assert [x["kimg"] for x in one] == [x["kimg"] for x in two]
    for a, b in zip(one, two):
        for k in keys:
            allowed = TOLERANCE_ABS + TOLERANCE_REL * abs(a[k])
            assert abs(a[k] - b[k]) <= allowed, (a["kimg"], k, a[k], b[k])


# -- the primitives, exactly -----------------------------------------------------------------

def test_averaged_gradients_equal_one_process_on_the_global_batch(tmp_path):
    done = torchrun(2, str(HERE / "distributed_worker.py"), str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    sys.path.insert(0, str(HERE))
    try:
        from distributed_worker import fixed_batch, gradients, networks
    finally:
        sys.path.remove(str(HERE))
    whole = gradients(*fixed_batch(), *networks())

    grads = [k for k in whole if k.endswith(".grad")]
    assert len(grads) > 20
    # Each rank's own gradient differs from the whole batch's (all but those that cancel,
    # such as the critic's output bias); the average equals it.
    own = [k for k in grads if not torch.allclose(ranks[0][k], whole[k], atol=1e-6)]
    assert len(own) >= len(grads) - 2
    for k in grads:
        for r in ranks:
            torch.testing.assert_close(r[k + ".averaged"], whole[k], rtol=1e-4, atol=1e-6)
    # BatchNorm running statistics over the global batch, as one process keeps them.
    buffers = [k for k in whole if "running_" in k]
    assert buffers
    for k in buffers:
        for r in ranks:
            torch.testing.assert_close(r[k], whole[k], rtol=1e-4, atol=1e-6)
    assert ranks[0]["agree_before"] == [] and ranks[0]["agree_after"] == [1]
    assert ranks[0]["gathered"] == [("rank", 0), ("rank", 1)]
    assert ranks[1]["gathered"] is None


# -- training ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_dcgan_on_two_processes_follows_the_single_process_run(tmp_path):
    args = train_args("dcgan", "0.096", *TINY_DCGAN, "--tick", STEP_KIMG)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = run_ganzoo(*args, cwd=tmp_path / "one", env=ONE_THREAD)
    assert one.returncode == 0, one.stderr
    two = torchrun(2, "-m", "ganzoo", *args, cwd=tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "differ from rank 0" not in two.stderr
    a, b = stats_lines(tmp_path / "one"), stats_lines(tmp_path / "two")
    print("\nstep  loss_d 1 proc / 2 procs   loss_g 1 proc / 2 procs")
    for x, y in zip(a, b):
        print(f"{x['step']:4d}  {x['loss_d']:.4f} / {y['loss_d']:.4f}   "
              f"{x['loss_g']:.4f} / {y['loss_g']:.4f}")
    # Step 1's D output on the reals is computed before any latent matters: exact.
    assert b[0]["d_real"] == pytest.approx(a[0]["d_real"], abs=1e-4)
    assert_trajectories_match(a, b, ("loss_d", "loss_g", "d_real", "d_fake"))
    (run,) = list((tmp_path / "two" / "runs").iterdir())
    config = json.loads((run / "config.json").read_text())
    assert config["processes"] == 2 and config["train"]["batch"] == 16
    assert (run / "final.png").exists() and len(list((tmp_path / "two" / "runs").iterdir())) == 1


@pytest.mark.slow
def test_wgan_gp_on_two_processes_follows_the_single_process_run(tmp_path):
    args = train_args("wgan-gp", "0.48", "--resolution", "32", "--dim", "16", "--batch", "16",
                      "--tick", "0.08")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = run_ganzoo(*args, cwd=tmp_path / "one", env=ONE_THREAD)
    assert one.returncode == 0, one.stderr
    two = run_ganzoo(*args, "--gpus", "2", cwd=tmp_path / "two", env=ONE_THREAD)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = stats_lines(tmp_path / "one"), stats_lines(tmp_path / "two")
    assert len(a) == 6
    assert_trajectories_match(a, b, ("loss_d", "loss_g", "wdist", "gp"))


@pytest.mark.slow
def test_metrics_of_two_ranks_equal_one_process_eval(tmp_path):
    done = torchrun(2, "-m", "ganzoo", *train_args(
        "dcgan", "0.064", *TINY_DCGAN, "--tick", "0.064", "--metrics", "fid1k",
        "--metrics-extractor", "domain"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    during = [x["metrics"]["fid1k"] for x in stats_lines(tmp_path) if "metrics" in x]
    ev = run_ganzoo("eval", "--metrics", "fid1k", "--extractor", "domain", "--device", "cpu",
                    "00000", cwd=tmp_path, env=ONE_THREAD)
    assert ev.returncode == 0, ev.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    after = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert during[-1] == pytest.approx(after[-1]["scores"]["fid1k"], rel=1e-9)


# -- failures and resume -----------------------------------------------------------------------

def pid_of_rank(rank: int, pattern: str) -> int | None:
    for pid in subprocess.run(["pgrep", "-f", pattern], capture_output=True,
                              text=True).stdout.split():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


def start_and_kill_rank_1(command: list[str], cwd: Path) -> tuple[subprocess.Popen, float]:
    """Start a 2-process job, wait for its first checkpoint, SIGKILL rank 1; returns the job
    and how long it took to end after the kill."""
    job = subprocess.Popen(command, cwd=cwd, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env={**os.environ, **ONE_THREAD})
    deadline = time.monotonic() + 240
    while not list(cwd.glob("runs/*/checkpoints/*.pt")):
        assert job.poll() is None, job.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    pid = pid_of_rank(1, f"ganzoo train dcgan.*--out {cwd}")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    job.wait(timeout=60)
    return job, time.monotonic() - killed


@pytest.mark.slow
def test_killed_rank_ends_the_job_and_one_process_resumes_it(tmp_path):
    command = [sys.executable, "-m", "ganzoo", *train_args(
        "dcgan", "1", *TINY_DCGAN, "--snap", "0.064", "--tick", "0.064", "--out",
        str(tmp_path / "runs"), "--gpus", "2")]
    job, seconds = start_and_kill_rank_1(command, tmp_path)
    err = job.stderr.read()
    assert job.returncode != 0 and seconds < 60
    assert "rank 1" in err and "SIGKILL" in err and "Traceback" not in err, err
    print(f"\njob ended {seconds:.1f} s after the kill: {err.strip().splitlines()[-1]}")
    resumed = run_ganzoo("train", "dcgan", "--resume", "latest", "-q", cwd=tmp_path,
                         env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr
    lines = stats_lines(tmp_path)
    assert lines[-1]["kimg"] == pytest.approx(1.008)     # 63 minibatches of 16
    steps = [x["step"] for x in lines]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    (run,) = list((tmp_path / "runs").iterdir())
    assert (run / "final.png").exists()


@pytest.mark.slow
def test_torchrun_restart_resumes_the_same_run(tmp_path):
    command = [*TORCHRUN, "2", "--max-restarts", "1", "-m", "ganzoo", *train_args(
        "dcgan", "0.5", *TINY_DCGAN, "--snap", "0.064", "--tick", "0.064", "--out",
        str(tmp_path / "runs"))]
    job, _ = start_and_kill_rank_1(command, tmp_path)
    err = job.stderr.read()
    assert job.returncode == 0, err[-3000:]
    assert "torchrun restart 1: resuming" in err
    assert len(list((tmp_path / "runs").iterdir())) == 1
    assert stats_lines(tmp_path)[-1]["kimg"] == pytest.approx(0.512)


@pytest.mark.slow
def test_one_process_checkpoint_resumes_on_two(tmp_path):
    first = run_ganzoo(*train_args("dcgan", "0.064", *TINY_DCGAN, "--tick", "0.032"),
                       cwd=tmp_path, env=ONE_THREAD)
    assert first.returncode == 0, first.stderr
    more = run_ganzoo("train", "dcgan", "--resume", "latest", "--kimg", "0.128", "--gpus",
                      "2", "--device", "cpu", "-q", cwd=tmp_path, env=ONE_THREAD)
    assert more.returncode == 0, more.stderr[-3000:]
    lines = stats_lines(tmp_path)
    assert [x["kimg"] for x in lines] == pytest.approx([0.032, 0.064, 0.096, 0.128])


def test_global_batch_must_divide_among_processes(tmp_path):
    done = run_ganzoo(*train_args("dcgan", "0.1", "--resolution", "32", "--batch", "15",
                                  "--gpus", "2"), cwd=tmp_path, env=ONE_THREAD)
    assert done.returncode != 0
    assert "--batch 15 is the global minibatch; it must be a multiple of the 2 processes" \
        in done.stderr
    assert "Traceback" not in done.stderr


def test_gpus_without_gpus_is_one_line(cli, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = cli("train", "dcgan", "--data", "shapes", "--gpus", "2")
    assert r.code == 1
    assert r.err.strip() == ("error: --gpus 2: no CUDA device is available; add --device cpu "
                             "to train in 2 CPU processes")

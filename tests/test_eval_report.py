"""Metrics on real data and runs: the domain extractor, `ganzoo eval`, `train --metrics`, and
report.html (checked in headless Chromium: skipped without /usr/bin/chromium, except in CI)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_DCGAN
from ganzoo.data import PrepareOptions, resolve_data
from ganzoo.metrics.extract import ExtractorContext, build_extractor, uint8_batches
from ganzoo.metrics.measures import frechet_distance, mean_and_cov
from ganzoo.registry import Registry

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def shapes():
    return resolve_data("shapes", PrepareOptions(32, 3), Registry())


def fid(a, b) -> float:
    return frechet_distance(*mean_and_cov(a), *mean_and_cov(b))


def test_domain_fid_is_small_between_halves_of_shapes_and_large_against_bin_objects(shapes):
    reg = Registry()
    extractor = build_extractor("domain", ExtractorContext(reg, shapes, "shapes"))
    assert extractor.net.info["accuracy"] > 0.95          # it learned the five classes
    bins = resolve_data("bin-objects", PrepareOptions(32, 3), reg)
    half_a, _ = extractor.run(uint8_batches(shapes.images[:2500]))
    half_b, _ = extractor.run(uint8_batches(shapes.images[2500:]))
    other, _ = extractor.run(uint8_batches(bins.images[:2500]))
    same, different = fid(half_a, half_b), fid(half_a, other)
    print(f"\ndomain FID: shapes half vs half {same:.3f}, shapes vs bin-objects {different:.2f}")
    assert same < 0.5 and different > 10 and different > 100 * same
    again = build_extractor("domain", ExtractorContext(reg, shapes, "shapes"))
    assert again.weights == extractor.weights        # cached in $GANZOO_HOME, not retrained


@pytest.fixture
def run(trained_run, tmp_path) -> Path:
    """A private copy of the shared tiny run (eval and report write into it)."""
    return Path(shutil.copytree(trained_run, tmp_path / "runs" / trained_run.name))


def test_eval_prints_and_appends_records(cli, run):
    r = cli("eval", str(run), "--metrics", "fid,kid,pr,nn,is", "--num", "300",
            "--extractor", "domain")
    assert r.code == 0, r.err
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["metric"] for x in records] == ["fid", "kid", "pr", "nn", "is"]
    for rec in records:
        assert rec["extractor"] == "domain" and rec["extractor_weights"].startswith("domain(")
        assert rec["resize"] == "none (32px)" and rec["seed"] == 0 and rec["kimg"] == 0.128
        assert rec["fid_mode"] is None                 # modes are Inception's input only
        assert rec["num_fake"] == 300 and rec["num_real"] in (300, 5000)
        assert rec["checkpoint"].endswith("ckpt-0000000128.pt")
        assert all(np.isfinite(v) for v in rec["scores"].values())
        assert rec["metric"] in r.out
    fid_rec, kid_rec, pr_rec, nn_rec, is_rec = records
    assert fid_rec["scores"]["fid"] > 0 and kid_rec["subset_size"] == 300
    assert 0 <= pr_rec["scores"]["precision"] <= 1 and pr_rec["k"] == 3
    assert 1 <= is_rec["scores"]["is"] <= 5
    mem = nn_rec["memorisation"]["feature"]
    assert mem["threshold"] == pytest.approx(0.5 * mem["train_nn_median"])
    grid = Image.open(nn_rec["grid"])
    assert grid.size[0] > 7 * 64 and grid.size[1] > 8 * 64    # 8 rows of 1 + 3 + 3 tiles


def test_eval_errors_are_one_line(cli, run, tmp_path):
    r = cli("eval", str(run), "--metrics", "fid,fdi")
    assert r.code == 1 and "unknown metric 'fdi'" in r.err and r.err.count("\n") == 1
    r = cli("eval", str(run), "--extractor", "inceptoin")
    assert r.code == 1 and "unknown feature extractor 'inceptoin'" in r.err
    r = cli("train", "dcgan", "--data", "shapes", "--metrics", "fid,fdi", "--kimg", "0.1")
    assert r.code == 1 and "unknown metric 'fdi'" in r.err       # before any training
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run.name]   # no new run
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    r = cli("eval", str(run), "--feature-weights", str(tmp_path / "bad.pth"))
    assert r.code == 1 and "bad.pth: unreadable" in r.err and r.err.count("\n") == 1


def test_fid_mode_errors_are_one_line(cli, run):
    r = cli("eval", str(run), "--fid-mode", "tf")
    assert r.code == 1 and r.err.count("\n") == 1
    assert "unknown FID preprocessing mode 'tf' (modes: legacy-tf, pytorch-fid, clean" in r.err
    r = cli("eval", str(run), "--fid-mode", "clean", "--extractor", "domain")
    assert r.code == 1 and r.err.count("\n") == 1
    assert "--fid-mode applies to the inception extractor only" in r.err
    r = cli("train", "dcgan", "--data", "shapes", "--metrics", "fid", "--metrics-fid-mode",
            "tf", "--kimg", "0.1")
    assert r.code == 1 and "unknown FID preprocessing mode 'tf'" in r.err


def test_nn_offline_says_to_use_the_domain_extractor(cli, run, monkeypatch, tmp_path):
    """nn's default extractor is Inception, whose weights an offline machine cannot fetch:
    one line that names the file and --extractor domain (which needs no download)."""
    from local_http import closed_port
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{closed_port()}")
    r = cli("eval", str(run), "--metrics", "nn", "--num", "100")
    assert r.code == 1 and r.err.count("\n") == 1, r.err
    assert "pt_inception-2015-12-05-6726825d.pth" in r.err and "--extractor domain" in r.err
    assert "Traceback" not in r.err


def test_train_with_metrics_writes_stats_lines_and_the_report(cli, tmp_path):
    r = cli("train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "0.128", "--snap",
            "0.032", "--tick", "0.032", "--metrics", "fid1k,kid1k", "--metrics-every", "0.064",
            "--metrics-extractor", "domain")
    assert r.code == 0, r.err
    run = next((tmp_path / "runs").iterdir())
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    metric_lines = [x for x in lines if "metrics" in x]
    assert [x["kimg"] for x in metric_lines] == [0.064, 0.128]     # every 0.064, and the end
    assert set(metric_lines[0]["metrics"]) == {"fid1k", "kid1k", "kid1k_std"}
    assert metric_lines[0]["metric_records"][0]["num_fake"] == 1000
    ticks = [x for x in lines if "metrics" not in x]
    assert [x["kimg"] for x in ticks] == [0.032, 0.064, 0.096, 0.128]
    assert "metrics at kimg 0.064: fid1k" in r.err
    assert "FID vs kimg" in (run / "report.html").read_text()


def test_report_is_one_self_contained_file(cli, run):
    assert cli("eval", str(run), "--metrics", "fid,nn", "--num", "200",
               "--extractor", "domain").code == 0
    r = cli("report", str(run))
    assert r.code == 0 and "report.html" in r.out
    page = (run / "report.html").read_text()
    assert page.count("<svg") >= 4                       # FID, nn, losses, speed, ...
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)         # nothing fetched
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') >= 4   # reals, 2 grids, nn grid
    assert 'src="data:image/gif;base64,' in page
    assert "FID vs kimg" in page and "losses" in page and '"architecture": "dcgan"' in page


def need_chromium(browser: Path = CHROMIUM) -> None:
    """Skip without a browser, except in CI (CI=true), which installs one (.ci/run): there
    a missing browser fails the test instead of silently dropping the check."""
    if browser.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {browser} is missing (.ci/run installs Debian's chromium)")
    pytest.skip(f"needs Debian's chromium ({browser})")


def test_missing_chromium_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="is missing"):
        need_chromium(tmp_path / "no-chromium")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        need_chromium(tmp_path / "no-chromium")


def test_report_renders_plots_and_grids_in_headless_chromium(cli, run, tmp_path):
    need_chromium()
    assert cli("eval", str(run), "--metrics", "fid,nn", "--num", "200",
               "--extractor", "domain").code == 0
    assert cli("report", str(run)).code == 0
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
         f"--screenshot={shot}", "--window-size=1200,2000",
         (run / "report.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), done.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2000, 1200)
    shutil.copy(shot, Path(tempfile.gettempdir()) / "ganzoo-report-test.png")  # to look at
    page_bg = (np.abs(img - [244, 245, 247]).sum(2) <= 6)
    white = (img.min(2) >= 250)
    drawn = 1 - page_bg.mean() - white.mean()
    assert white.mean() > 0.1 and drawn > 0.03, f"the page looks blank ({drawn:.3f} drawn)"
    colours = len(np.unique(img.reshape(-1, 3) // 8, axis=0))
    assert colours > 100                                  # text, plots and sample grids
    blue = (np.abs(img - [0x1f, 0x77, 0xb4]).sum(2) < 40).sum()
    assert blue > 200, "no plot lines drawn"               # the first series' colour


def test_axis_ticks_of_values_a_rounding_error_apart():
    """A loss series whose min and max differ in the last bit (one tick, averaged) once made
    nice_ticks loop forever, hanging the first snapshot of a run with --snap == --tick."""
    from ganzoo.report import nice_ticks
    ticks = nice_ticks(1.5824199616909027, 1.582419961690903)
    assert 2 <= len(ticks) <= 10 and ticks[0] <= 1.58241996 <= ticks[-1]


def test_report_of_a_run_that_logs_ada_p(tmp_path):
    """Curves come from stats.jsonl alone: losses (raw + EMA), ADA p when logged, sec/kimg;
    a half-written last line (a killed run) is skipped."""
    from ganzoo.report import ema, write_report
    run = tmp_path / "00000-stylegan-x"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"architecture": "x", "train": {"kimg": 4}}))
    lines = [json.dumps({"kimg": k / 10, "step": k, "sec_per_kimg": 2.0, "loss_g": 1 / (k + 1),
                         "ada_p": k / 100}) for k in range(1, 41)]
    (run / "stats.jsonl").write_text("\n".join(lines) + '\n{"kimg": 4.1, "loss')
    page = write_report(run).read_text()
    assert "ADA augmentation probability p" in page and "loss_g (EMA 0.75)" in page
    assert "speed" in page and "No metrics yet" in page
    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])   # debiased start


def test_report_names_the_preprocessing_mode(tmp_path):
    from ganzoo.report import write_report
    run = tmp_path / "00000-dcgan-x"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"architecture": "dcgan", "train": {}}))
    record = {"metric": "fid", "kimg": 1.0, "scores": {"fid": 12.5}, "extractor": "inception",
              "extractor_weights": "pt_inception-2015-12-05", "fid_mode": "clean",
              "resize": "pil-bicubic 32->299", "num_fake": 100, "num_real": 100, "seed": 0}
    (run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    assert "pil-bicubic 32-&gt;299 (clean)" in write_report(run).read_text()

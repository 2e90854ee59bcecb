"""Small-data workflows: --init, --freeze-d, --data A+B, data expand, experiment small-data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_DCGAN
from ganzoo.checkpoint import checkpoints_of, read_checkpoint
from ganzoo.data import PrepareOptions, resolve_data
from ganzoo.expand import flat_unit, memorisation_threshold, nearest_training_distance
from ganzoo.registry import get_registry

TINY_CGAN = ["--resolution", "32", "--base-channels", "8", "--max-channels", "16",
             "--latent-dim", "16", "--batch", "16"]


def only_run(root: Path) -> Path:
    (run,) = list(root.iterdir())
    return run


def d_params(ckpt: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(ckpt)["state"]["D"]


def test_init_loads_weights_and_leaves_optimisers_fresh(cli, trained_run, tmp_path):
    from ganzoo.trainer import Trainer, TrainConfig, read_init
    from ganzoo_plugins.dcgan.model import DCGAN
    from ganzoo import make_config
    source = checkpoints_of(trained_run)[-1]
    init = read_init(DCGAN, str(trained_run), tmp_path / "runs", trust=False)
    assert init.checkpoint == source
    config = TrainConfig(data="bin-objects", resolution=32, batch=16, kimg=0.016,
                         out=str(tmp_path / "runs"), device="cpu", init=str(trained_run))
    trainer = Trainer(DCGAN, make_config(DCGAN, init.data["config"]), config, get_registry(),
                      init=init, quiet=True)
    saved = init.data["state"]
    for name in ("G", "D"):
        mine = getattr(trainer.arch, name).state_dict()
        for key, tensor in saved[name].items():
            assert torch.equal(mine[key], tensor), (name, key)
    assert saved["opt_g"]["state"], "the source run's optimiser has moments"
    assert trainer.arch.opt_g.state_dict()["state"] == {}
    assert trainer.arch.opt_d.state_dict()["state"] == {}
    assert trainer.progress.images == 0 and trainer.arch.images_seen == 0


def test_freeze_d_keeps_frozen_blocks_bit_identical(cli, trained_run):
    r = cli("train", "dcgan", "--data", "bin-objects", *TINY_DCGAN, "--kimg", "0.064",
            "--init", str(trained_run), "--freeze-d", "2", "--out", "fine", "-q")
    assert r.code == 0, r.err
    assert "--init: " in r.err and "optimisers fresh" in r.err
    before = d_params(checkpoints_of(trained_run)[-1])
    after = d_params(checkpoints_of(only_run(Path("fine")))[-1])
    # dcgan's D.net: [conv, lrelu] [conv, norm, lrelu] [conv, norm, lrelu] [conv]
    frozen = ("net.0.weight", "net.0.bias", "net.2.weight", "net.3.weight", "net.3.bias")
    for key in frozen:
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["net.5.weight"], after["net.5.weight"])
    assert not torch.equal(before["net.8.weight"], after["net.8.weight"])


def test_init_with_new_classes_reinitialises_only_the_class_embeddings(cli):
    assert cli("train", "cgan", "--data", "shapes", *TINY_CGAN, "--kimg", "0.016",
               "--out", "src", "-q").code == 0
    src = only_run(Path("src"))
    r = cli("train", "cgan", "--data", "bin-objects/count", *TINY_CGAN, "--kimg", "0.016",
            "--init", str(src), "--out", "dst", "-q")
    assert r.code == 0, r.err
    assert "these start fresh: G.label.embed.weight, D.label.embed.weight" in r.err


@pytest.mark.parametrize("extra, message", [
    (["--resolution", "64"], "trained at resolution 32, but this run has 64"),
    (["--resolution", "32", "--base-channels", "16"],
     "G.net.6.weight is shape [16, 8, 4, 4] there but [16, 16, 4, 4] here"),
])
def test_init_that_cannot_be_bridged_is_one_line(cli, trained_run, extra, message):
    r = cli("train", "dcgan", "--data", "shapes", "--batch", "16", "--kimg", "0.016",
            "--init", str(trained_run), *extra, "-q")
    assert r.code == 1
    assert message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    r = cli("train", "wgan-gp", "--data", "shapes", "--resolution", "32", "--kimg", "0.016",
            "--init", str(trained_run), "-q")
    assert r.code == 1 and "is a dcgan checkpoint, not wgan-gp" in r.err


def test_freeze_d_needs_an_unfrozen_block(cli, trained_run):
    r = cli("train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "0.016",
            "--init", str(trained_run), "--freeze-d", "4", "-q")
    assert r.code == 1
    assert "--freeze-d 4: dcgan's discriminator has 4 blocks here; freeze at most 3" in r.err


def test_data_union_matches_classes_by_name(tmp_path):
    for name, classes in (("a", ["cat", "dog"]), ("b", ["dog", "eel"])):
        for c in classes:
            (tmp_path / name / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / name / c / "x.png")
    data = resolve_data(f"{tmp_path / 'a'}+{tmp_path / 'b'}", PrepareOptions(8),
                        get_registry())
    assert len(data) == 4 and data.class_names == ("cat", "dog", "eel")
    assert data.labels.tolist() == [0, 1, 1, 2]
    limited = resolve_data(f"{tmp_path / 'a'}+{tmp_path / 'b'}", PrepareOptions(8, 3, 3),
                           get_registry())
    assert len(limited) == 3


def test_data_expand_never_writes_a_near_copy(cli):
    assert cli("train", "dcgan", "--data", "shapes", "--max-images", "50", *TINY_DCGAN,
               "--kimg", "0.32", "--out", "src", "-q").code == 0
    run = only_run(Path("src"))
    train = resolve_data("shapes", PrepareOptions(32, 3, 50), get_registry())
    probe = cli("data", "expand", str(run), "--count", "64", "--out", "probe",
                "--min-nn-distance", "0")
    assert probe.code == 0, probe.err
    written = np.stack([np.asarray(Image.open(p)) for p in sorted(Path("probe").glob("*.png"))])
    distances = nearest_training_distance(flat_unit(written.transpose(0, 3, 1, 2)),
                                          flat_unit(train.images)).sort().values
    # A threshold in the widest gap between the samples' distances near the median: it
    # drops some samples, and no rounding can put a sample on its edge.
    gaps = distances[1:] - distances[:-1]
    middle = slice(16, 48)
    k = 16 + int(gaps[middle].argmax())
    assert gaps[k] > 1e-6
    threshold = float((distances[k] + distances[k + 1]) / 2)
    r = cli("data", "expand", str(run), "--count", "64", "--out", "kept",
            "--min-nn-distance", repr(threshold))
    assert r.code == 0, r.err
    kept = sorted(Path("kept").glob("*.png"))
    assert len(kept) == 64 - (k + 1)
    assert f"kept {len(kept)} of 64 generated images ({k + 1} near-copies" in r.out
    images = np.stack([np.asarray(Image.open(p)) for p in kept]).transpose(0, 3, 1, 2)
    assert (nearest_training_distance(flat_unit(images), flat_unit(train.images))
            >= threshold).all()
    auto = memorisation_threshold(train.images)
    default = cli("data", "expand", str(run), "--count", "8", "--out", "default",
                  "--min-d-score", "-1000")
    assert default.code == 0 and f"closer than {auto:.4f}" in default.out, default.out


@pytest.mark.slow
def test_small_data_experiment_writes_a_table_of_every_arm(cli):
    r = cli("experiment", "small-data", "--arch", "dcgan", "--data", "bin-objects",
            "--kimg", "0.128", "--pretrain-kimg", "0.128", "--batch", "16", "--out", "sd",
            "--device", "cpu", "--base-channels", "16")
    assert r.code == 0, r.err
    results = json.loads(Path("sd/results.json").read_text())
    arms = {a["arm"]: a for a in results["arms"]}
    assert list(arms) == ["scratch", "scratch+diffaug", "scratch+ada", "pretrained",
                          "pretrained+diffaug", "expanded", "real-2N"]
    assert arms["scratch"]["train_images"] == 10 and arms["real-2N"]["train_images"] == 20
    best = min((a for a in results["arms"][:5]), key=lambda a: a["fid"])
    assert arms["expanded"]["note"] == f"from {best['arm']}"
    for a in arms.values():
        assert a["fid"] > 0 and 0 <= a["memorisation"] <= 1
        assert Path(f"sd/grid-{a['arm']}.png").exists()
    table = Path("sd/table.md").read_text()
    assert table.count("\n| ") == 8 and "(best FID)" in table
    # The architecture option after --arch reached every run.
    config = json.loads(next(Path("sd/seed-0/runs/scratch+ada").iterdir()).joinpath(
        "config.json").read_text())
    assert config["config"]["base_channels"] == 16 and config["config"]["augment"] == "ada"
    pretrain = next(Path("sd/seed-0/runs/pretrain").iterdir())
    assert read_checkpoint(checkpoints_of(pretrain)[-1])["data_spec"]["resolution"] == 32
    # The pre-training set leaves out the 2N images the arms train on.
    assert json.loads((pretrain / "config.json").read_text())["data"]["images"] == 4980


def test_small_data_experiment_over_seeds_reports_mean_and_spread(cli):
    r = cli("experiment", "small-data", "--arch", "dcgan", "--data", "bin-objects",
            "--kimg", "0.032", "--batch", "16", "--out", "sd", "--device", "cpu",
            "--seeds", "0,1", "--arms", "scratch,scratch+diffaug", "--base-channels", "8",
            "--max-channels", "16")
    assert r.code == 0, r.err
    summary = json.loads(Path("sd/results.json").read_text())["summary"]
    assert [s["arm"] for s in summary] == ["scratch", "scratch+diffaug"]
    for s in summary:
        assert len(s["fids"]) == 2 and s["fid_mean"] == pytest.approx(sum(s["fids"]) / 2)
        assert s["fid_std"] == pytest.approx(abs(s["fids"][0] - s["fids"][1]) / 2 ** 0.5)
    assert "mean ± sd" in r.out and "seeds 0, 1" in r.out


def test_small_data_experiment_refuses_unknown_arms_and_options(cli):
    r = cli("experiment", "small-data", "--arch", "dcgan", "--data", "bin-objects",
            "--arms", "scratch,dreamed")
    assert r.code == 1 and "--arms: dreamed not among scratch, scratch+diffaug" in r.err
    r = cli("experiment", "small-data", "--arch", "dcgan", "--data", "bin-objects",
            "--no-such-option", "1")
    assert r.code == 2 and "No such option '--no-such-option'" in r.err

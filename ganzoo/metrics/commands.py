"""`ganzoo eval` and `ganzoo report`."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ganzoo.errors import GanzooError


def format_record(r: dict) -> str:
    scores = "  ".join(f"{k} {v:.4g}" for k, v in r["scores"].items())
    kimg = "" if r.get("kimg") is None else f" at kimg {r['kimg']:g}"
    mode = f"mode {r['fid_mode']}, " if r.get("fid_mode") else ""
    return (f"{r['metric']}{kimg}: {scores}  ({r['extractor']} [{r['extractor_weights']}], "
            f"{mode}resize {r['resize']}, {r['num_fake']} generated / {r['num_real']} real, "
            f"seed {r['seed']}, {r['seconds']:.1f} s)")


def _registry(ctx: click.Context):
    from ganzoo.cli import registry_from
    return registry_from(ctx)


@click.command("eval")
@click.argument("ref", default="latest", metavar="[RUN|CKPT]")
@click.option("--metrics", "metrics", default="fid", show_default=True,
              help="comma-separated: fid, kid, is, pr, nn; an Nk suffix fixes the sample "
              "count (fid50k)")
@click.option("--num", type=int, default=10_000, show_default=True,
              help="generated samples for metrics without an Nk suffix")
@click.option("--extractor", default="inception", show_default=True,
              metavar="inception|domain[:SPEC]|NAME",
              help="feature network; domain trains a classifier on labelled data (the run's, "
              "or SPEC's) for offline use")
@click.option("--feature-weights", metavar="PATH", help="Inception weights file (offline "
              "machines): pt_inception-2015-12-05-6726825d.pth")
@click.option("--fid-mode", metavar="legacy-tf|pytorch-fid|clean",
              help="how images are resized and scaled into Inception, as the named reference "
              "does (legacy-tf: the TF graph as NVlabs and torch-fidelity run it; pytorch-fid; "
              "clean: clean-fid) [default: legacy-tf]")
@click.option("--data", "data_spec", metavar="SPEC",
              help="real images to compare with [default: the run's --data]")
@click.option("--seed", type=int, default=0, show_default=True, help="sampling seed")
@click.option("--runs", default="runs", show_default=True, help="where runs live")
@click.option("--device", default="auto", show_default=True)
@click.option("--trust", is_flag=True, help="allow checkpoints that need pickle code execution")
@click.pass_context
def eval_command(ctx, ref, metrics, num, extractor, feature_weights, fid_mode, data_spec,
                 seed, runs, device, trust):
    """Score a run's newest (or the given) checkpoint: FID, KID, IS, precision/recall,
    nearest neighbours. Results are printed and appended to the run's metrics.jsonl."""
    from ganzoo.checkpoint import load_model, resolve_checkpoint, run_of_checkpoint
    from ganzoo.data import PrepareOptions, resolve_data
    from ganzoo.metrics.evaluate import Evaluator, parse_metrics
    from ganzoo.trainer import pick_device
    specs = parse_metrics(metrics)
    if not specs:
        raise GanzooError("--metrics: name at least one metric (fid, kid, is, pr, nn)")
    if num <= 1:
        raise GanzooError(f"--num must be > 1, got {num}")
    reg = _registry(ctx)
    dev = pick_device(device)
    path = resolve_checkpoint(ref, Path(runs))
    loaded = load_model(path, trust=trust, device=dev, registry=reg)
    train = loaded.data.get("train", {})
    spec = data_spec or train.get("data")
    if not spec:
        raise GanzooError(f"{path} does not say what data it was trained on; pass --data SPEC")
    model = loaded.model
    options = PrepareOptions(model.data.resolution, model.data.channels,
                             train.get("max_images"),
                             resize_filter=train.get("resize_filter", "lanczos"))
    data = resolve_data(spec, options, reg)
    run = run_of_checkpoint(path)
    log = lambda text: click.echo(text, err=True)   # noqa: E731
    evaluator = Evaluator.build(specs, extractor, registry=reg, data=data, data_name=spec,
                                weights=feature_weights, device=dev, default_num=num,
                                seed=seed, fid_mode=fid_mode, log=log)
    out_dir = (run or Path(".")) / "eval"
    records = evaluator.evaluate(model, kimg=loaded.progress.kimg, out_dir=out_dir,
                                 extra={"checkpoint": str(path)})
    for r in records:
        click.echo(format_record(r))
        if "grid" in r:
            click.echo(f"  nearest-neighbour grid: {r['grid']}")
    if run is not None:
        with open(run / "metrics.jsonl", "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
        click.echo(f"appended to {run / 'metrics.jsonl'}", err=True)
    else:
        click.echo(f"({path} is not inside a run directory: results not saved)", err=True)


@click.command("report")
@click.argument("run", default="latest", metavar="[RUN]")
@click.option("--runs", default="runs", show_default=True, help="where runs live")
@click.option("--out", metavar="FILE", help="where to write [default: RUN/report.html]")
def report_command(run, runs, out):
    """Write RUN/report.html: curves, metrics, sample grids, progress GIF, config; one
    self-contained file (no network, no scripts)."""
    from ganzoo.checkpoint import list_runs
    from ganzoo.report import write_report
    if run == "latest":
        found = list_runs(Path(runs))
        if not found:
            raise GanzooError(f"no runs under {runs}/")
        path = found[-1]
    else:
        path = Path(run)
        if not path.is_dir():
            matches = [r for r in list_runs(Path(runs))
                       if r.name == run or r.name.startswith(run + "-")]
            if len(matches) != 1:
                raise GanzooError(f"no such run: {run}")
            path = matches[0]
    if not (path / "config.json").exists():
        raise GanzooError(f"{path} is not a run directory (no config.json)")
    click.echo(f"wrote {write_report(path, Path(out) if out else None)}")

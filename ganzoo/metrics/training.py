"""Metrics during training (`ganzoo train ... --metrics fid2k --metrics-every 5`).

The trainer calls :meth:`TrainingMetrics.maybe_run` at each snapshot (on every rank of a
distributed run: each generates its share of the samples, rank 0 scores them), before the checkpoint
is saved (a run killed in between computes them again after resume). Metrics are computed at
the first snapshot at or after each multiple of ``--metrics-every`` kimg (every snapshot when
not given) and at the end, and written to stats.jsonl as lines of their own::

    {"kimg": 4.0, "step": 125, "timestamp": ..., "metrics": {"fid2k": 31.2},
     "metric_records": [{...extractor, fid_mode, resize, counts, seed...}]}
"""
from __future__ import annotations

import json
import time

from ganzoo.metrics.evaluate import Evaluator, parse_metrics


class TrainingMetrics:
    def __init__(self, trainer, registry):
        cfg = trainer.config
        self.every = round(cfg.metrics_every * 1000) if cfg.metrics_every else None
        self.last = trainer.progress.images
        self.evaluator = Evaluator.build(
            parse_metrics(cfg.metrics), cfg.metrics_extractor, registry=registry,
            data=trainer.data, data_name=cfg.data, weights=cfg.feature_weights,
            device=trainer.device, seed=0, fid_mode=cfg.metrics_fid_mode,
            log=trainer.view.message)

    def due(self, images: int, final: bool) -> bool:
        if images == self.last and images:
            return False                  # already measured here (the final snapshot)
        if final or self.every is None:
            return True
        return images // self.every > self.last // self.every

    def maybe_run(self, trainer, final: bool = False) -> None:
        images = trainer.progress.images
        if not self.due(images, final):
            return
        t0 = time.monotonic()
        records = self.evaluator.evaluate(trainer.arch, kimg=round(trainer.progress.kimg, 6),
                                          out_dir=trainer.run_dir / "eval")
        self.last = images
        if not trainer.is_main:        # distributed: it sampled its share; rank 0 scores
            return
        scores = {k: v for r in records for k, v in r["scores"].items()}
        line = {"kimg": round(trainer.progress.kimg, 6), "step": trainer.progress.step,
                "timestamp": time.time(), "metrics": scores, "metric_records": records}
        with open(trainer.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        trainer.view.message(
            f"metrics at kimg {trainer.progress.kimg:g}: "
            + "  ".join(f"{k} {v:.4g}" for k, v in scores.items() if not k.endswith("_std"))
            + f"  ({time.monotonic() - t0:.1f} s)")

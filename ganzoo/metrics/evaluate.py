"""Scoring a generator: metric names, sampling, and one record per metric.

Metric names: ``fid``, ``kid``, ``is``, ``pr`` (precision/recall), ``nn`` (nearest
neighbours and memorisation), each with an optional ``<N>k`` suffix fixing the number of
generated samples (``fid50k``: 50,000); without one, ``--num`` decides. Every record says
which extractor (and weights), preprocessing mode (``fid_mode``; None for extractors without
modes), resize filter, sample counts and seed produced it.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganzoo import distributed
from ganzoo.architecture import Architecture
from ganzoo.data.source import ImageSet
from ganzoo.errors import GanzooError
from ganzoo.metrics import measures
from ganzoo.metrics.extract import Extractor, ExtractorContext, build_extractor, quantise
from ganzoo.metrics.reference import MAX_REALS, Reference, reference_stats

KINDS = {"fid": "Frechet Inception Distance", "kid": "Kernel Inception Distance",
         "is": "Inception Score", "pr": "precision and recall (k=3)",
         "nn": "nearest training images and memorisation rate"}
_SPEC = re.compile(r"^(fid|kid|is|pr|nn)(?:(\d+)k)?$")
DEFAULT_NUM = 10_000
NN_MAX = 1000          # samples whose nearest training images are searched (pixels are big)
NN_ROWS = 8            # samples shown in the nearest-neighbour grid
NN_K = 3               # neighbours shown per space
SAMPLE_BATCH = 64


@dataclass(frozen=True)
class MetricSpec:
    text: str          # as the user wrote it: "fid50k"
    kind: str          # "fid"
    num: int | None    # samples fixed by the suffix, else None (--num)

    def samples(self, default: int) -> int:
        n = self.num or default
        return min(n, NN_MAX) if self.kind == "nn" else n


def parse_metrics(text: str | None) -> list[MetricSpec]:
    """'fid50k,kid,pr' -> specs; an unknown name is one line listing the valid ones."""
    specs = []
    for part in (text or "").split(","):
        part = part.strip().lower()
        if not part:
            continue
        m = _SPEC.match(part)
        if not m or (m.group(2) is not None and int(m.group(2)) == 0):
            raise GanzooError(f"unknown metric '{part}'; metrics: fid, kid, is, pr, nn, "
                              "each optionally with a sample count such as fid50k or kid10k")
        specs.append(MetricSpec(part, m.group(1), int(m.group(2)) * 1000 if m.group(2)
                                else None))
    if len({s.text for s in specs}) != len(specs):
        raise GanzooError(f"metric listed twice in '{text}'")
    return specs


@dataclass
class Samples:
    """What one round of sampling keeps: features (and logits) of every sample, pixels of the
    first few (for nearest neighbours)."""

    features: np.ndarray
    logits: np.ndarray | None
    pixels: torch.Tensor             # uint8 NCHW, the first NN_MAX samples
    seconds: float


def sample_batches(model: Architecture, n: int, seed: int, labels_pool: np.ndarray | None,
                   batch: int = SAMPLE_BATCH, part: tuple[int, int] = (0, 1)):
    """uint8 batches of ``n`` generated images; batch b uses seed ``seed * 2**20 + b``, and a
    conditional model gets labels drawn (seeded) from the real label distribution.
    ``part=(rank, ranks)`` yields only batches b with b % ranks == rank (distributed
    evaluation), each the same as in the whole sequence."""
    rng = np.random.default_rng(seed)
    for b, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        labels = None
        if model.conditional and labels_pool is not None:
            labels = torch.from_numpy(rng.choice(labels_pool, m)).to(model.device)
        if b % part[1] != part[0]:
            continue
        with torch.no_grad():
            images = model.generate(m, seed=seed * 2 ** 20 + b, labels=labels)
        yield quantise(images)


class Evaluator:
    """Holds an extractor and the reference statistics of one data set, and scores models
    against them."""

    def __init__(self, specs: list[MetricSpec], extractor: Extractor, data: ImageSet,
                 data_name: str, reference: Reference, *, default_num: int = DEFAULT_NUM,
                 seed: int = 0, log: Callable[[str], None] | None = None):
        self.specs, self.extractor, self.data = specs, extractor, data
        self.data_name, self.reference = data_name, reference
        self.default_num, self.seed = default_num, seed
        self.log = log or (lambda text: None)
        for spec in specs:
            if spec.kind == "is" and not extractor.has_logits:
                raise GanzooError(f"metric {spec.text}: extractor '{extractor.name}' has no "
                                  "class logits (IS needs them; inception and domain have)")

    @classmethod
    def build(cls, specs: list[MetricSpec], extractor_spec: str, *, registry, data: ImageSet,
              data_name: str, weights: str | None = None, device=None,
              default_num: int = DEFAULT_NUM, seed: int = 0, max_reals: int = MAX_REALS,
              fid_mode: str | None = None,
              log: Callable[[str], None] | None = None) -> "Evaluator":
        log = log or (lambda text: None)
        context = ExtractorContext(registry, data, data_name, weights, fid_mode,
                                   device=torch.device(device or "cpu"), log=log)
        extractor = build_extractor(extractor_spec, context)
        reference = reference_stats(data, extractor, max_reals=max_reals, log=log)
        return cls(specs, extractor, data, data_name, reference, default_num=default_num,
                   seed=seed, log=log)

    # -- sampling ---------------------------------------------------------------------------

    def sample(self, model: Architecture, n: int) -> Samples | None:
        """Features of ``n`` samples. In a distributed run every rank generates its share
        of the batches and rank 0 gets them all, in order (the same samples as one process);
        the other ranks get None."""
        t0 = time.monotonic()
        rank, ranks = distributed.rank(), distributed.world_size()
        mine = []
        batches = sample_batches(model, n, self.seed, self.data.labels, part=(rank, ranks))
        for b, batch in zip(range(rank, math.ceil(n / SAMPLE_BATCH), ranks), batches):
            f, lg = self.extractor(batch)
            mine.append((b, f, lg, batch if b * SAMPLE_BATCH < NN_MAX else None))
        gathered = distributed.gather_objects(mine)
        if gathered is None:
            return None
        parts = sorted((p for part in gathered for p in part), key=lambda p: p[0])
        logits = [p[2] for p in parts if p[2] is not None]
        pixels = torch.cat([p[3] for p in parts if p[3] is not None])[:NN_MAX]
        return Samples(torch.cat([p[1] for p in parts]).numpy(),
                       torch.cat(logits).numpy() if logits else None, pixels,
                       time.monotonic() - t0)

    # -- scoring ----------------------------------------------------------------------------

    def evaluate(self, model: Architecture, *, kimg: float | None = None,
                 out_dir: Path | None = None, extra: dict | None = None) -> list[dict]:
        """Score ``model`` on every metric; one record per metric."""
        n = max(spec.samples(self.default_num) for spec in self.specs)
        self.log(f"sampling {n} images, extracting {self.extractor.name} features")
        samples = self.sample(model, n)
        if samples is None:       # a distributed run's other ranks: rank 0 scores
            return []
        records = []
        for spec in self.specs:
            t0 = time.monotonic()
            count = min(spec.samples(self.default_num), n)
            scores, details = getattr(self, f"_{spec.kind}")(spec, samples, count, kimg,
                                                             out_dir)
            num_real = details.pop("num_real", self.reference.count)
            records.append({
                "metric": spec.text, "kimg": kimg, "scores": scores, **details,
                "extractor": self.extractor.name, "extractor_weights": self.extractor.weights,
                "fid_mode": self.extractor.fid_mode,
                "resize": self.extractor.resize_description(self.data.resolution),
                "num_fake": count, "num_real": num_real, "seed": self.seed, "data": self.data_name,
                "seconds": round(time.monotonic() - t0 + samples.seconds * count / n, 3),
                "timestamp": time.time(), **(extra or {})})
        return records

    def _fid(self, spec, s: Samples, n, kimg, out_dir):
        mu, sigma = measures.mean_and_cov(s.features[:n])
        value = measures.frechet_distance(mu, sigma, self.reference.mu, self.reference.sigma)
        return {spec.text: value}, {}

    def _kid(self, spec, s: Samples, n, kimg, out_dir):
        r = measures.kernel_inception_distance(s.features[:n], self.reference.features,
                                               seed=self.seed)
        return {spec.text: r["kid"], f"{spec.text}_std": r["kid_std"]}, {
            "subsets": r["subsets"], "subset_size": r["subset_size"]}

    def _is(self, spec, s: Samples, n, kimg, out_dir):
        r = measures.inception_score(s.logits[:n])
        return {spec.text: r["is"], f"{spec.text}_std": r["is_std"]}, {"splits": r["splits"]}

    def _pr(self, spec, s: Samples, n, kimg, out_dir):
        real = self.reference.features
        m = min(n, len(real))
        pick = np.sort(np.random.default_rng(self.seed).permutation(len(real))[:m])
        r = measures.precision_recall(s.features[:n], real[pick], k=3)
        prefix = spec.text.replace("pr", "", 1)     # pr10k -> precision10k, recall10k
        return {f"precision{prefix}": r["precision"], f"recall{prefix}": r["recall"]}, {
            "k": r["k"], "num_real": m}

    def _nn(self, spec, s: Samples, n, kimg, out_dir):
        from ganzoo.metrics.nn_grid import nearest_neighbours
        return nearest_neighbours(self, s, n, kimg, out_dir, spec.text)

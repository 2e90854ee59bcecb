"""Metrics: FID, KID, IS, precision/recall and nearest neighbours, on registered feature
extractors (the FID Inception-v3, or a classifier trained on the data's own labels).

    from ganzoo.metrics import Evaluator, parse_metrics
    ev = Evaluator.build(parse_metrics("fid,kid"), "domain", registry=reg, data=images,
                         data_name="shapes")
    records = ev.evaluate(model, kimg=20)

``ganzoo eval`` and ``ganzoo train --metrics`` are built on this.
"""
from ganzoo.metrics.evaluate import Evaluator, MetricSpec, parse_metrics
from ganzoo.metrics.measures import (frechet_distance, inception_score,
                                     kernel_inception_distance, precision_recall)

__all__ = ["Evaluator", "MetricSpec", "frechet_distance", "inception_score",
           "kernel_inception_distance", "parse_metrics", "precision_recall"]

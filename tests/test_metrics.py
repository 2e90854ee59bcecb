"""The metric formulas against closed forms and known point sets (no networks, no data)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ganzoo.errors import GanzooError
from ganzoo.metrics.evaluate import parse_metrics
from ganzoo.metrics.measures import (frechet_distance, inception_score,
                                     kernel_inception_distance, mean_and_cov, memorisation,
                                     mmd2_unbiased, polynomial_kernel, precision_recall)


def random_rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# -- Frechet distance ---------------------------------------------------------------------------

def closed_form_shared_eigenbasis(mu1, a, mu2, b) -> float:
    """FD of N(mu1, Q diag(a) Q^T) and N(mu2, Q diag(b) Q^T): the covariances commute, so
    tr((S1 S2)^(1/2)) = sum sqrt(a_i b_i) and FD = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2."""
    return float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())


@pytest.mark.parametrize("case", ["well-conditioned", "nearly singular", "rank deficient"])
def test_frechet_distance_equals_the_closed_form(case):
    d = 256
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    if case == "nearly singular":       # eigenvalues spread over 14 orders of magnitude
        a = 10.0 ** rng.uniform(-12, 2, d)
        b = 10.0 ** rng.uniform(-12, 2, d)
    elif case == "rank deficient":      # as with fewer samples than feature dimensions
        a[100:], b[60:] = 0.0, 0.0
    q = random_rotation(d, 2)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = closed_form_shared_eigenbasis(mu1, a, mu2, b)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_frechet_distance_of_non_commuting_covariances():
    """2x2: for PSD M, tr(M^(1/2)) = sqrt(tr M + 2 sqrt(det M)); with M similar to S1 S2
    this gives the FD of any two 2x2 covariances, including a nearly singular one."""
    for s1, s2 in [(np.array([[2.0, 0.3], [0.3, 0.5]]), np.array([[1.0, -0.4], [-0.4, 0.8]])),
                   (np.array([[1.0, 1.0], [1.0, 1.0 + 1e-10]]), np.array([[3.0, 0.5],
                                                                          [0.5, 0.2]]))]:
        p = s1 @ s2
        tr_sqrt = np.sqrt(np.trace(p) + 2 * np.sqrt(max(np.linalg.det(p), 0)))
        mu1, mu2 = np.array([0.5, -1.0]), np.array([0.0, 2.0])
        expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)


def test_frechet_distance_of_identical_singular_statistics_is_zero():
    """500 samples in 2048 dimensions: a covariance of rank 499 (where a general matrix
    square root of S S often returns complex values); the distance to itself is 0."""
    x = np.random.default_rng(0).standard_normal((500, 2048)).astype(np.float32)
    mu, sigma = mean_and_cov(x)
    fd = frechet_distance(mu, sigma, mu, sigma)
    assert 0 <= fd < 1e-6 * np.trace(sigma)


def test_frechet_distance_from_samples_approaches_the_population_value():
    rng = np.random.default_rng(3)
    d, n = 8, 200_000
    a, b = rng.uniform(0.2, 3, d), rng.uniform(0.2, 3, d)
    q = random_rotation(d, 4)
    x = rng.standard_normal((n, d)) * np.sqrt(a) @ q.T
    y = rng.standard_normal((n, d)) * np.sqrt(b) @ q.T + 1.0
    expected = closed_form_shared_eigenbasis(np.zeros(d), a, np.ones(d), b)
    assert frechet_distance(*mean_and_cov(x), *mean_and_cov(y)) == pytest.approx(expected,
                                                                                 rel=0.02)


def test_frechet_distance_rejects_statistics_that_are_no_covariance():
    bad = np.diag([1.0, -5.0])
    with pytest.raises(GanzooError, match="not valid covariance"):
        frechet_distance(np.zeros(2), np.eye(2) * 4, np.zeros(2), bad)


# -- KID -------------------------------------------------------------------------------------

def discrete_mmd2(points: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> float:
    """The exact MMD^2 between two distributions on the same finite support."""
    k = polynomial_kernel(points, points)
    return float(p @ k @ p + q @ k @ q - 2 * p @ k @ q)


@pytest.mark.parametrize("same", [False, True])
def test_kid_is_unbiased(same):
    """Distributions on 12 points in R^4, so the true MMD^2 is exact. Over 4000 draws of
    m = 6 samples per side, the unbiased estimate averages to the truth (within 4 standard
    errors) while the biased one (the diagonal kept) is clearly off."""
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(12, 4, generator=gen, dtype=torch.float64) * 1.5
    p = torch.rand(12, generator=gen, dtype=torch.float64) + 0.1
    p /= p.sum()
    q = p.clone() if same else torch.softmax(torch.randn(12, generator=gen,
                                                         dtype=torch.float64) * 1.5, 0)
    truth = discrete_mmd2(points, p, q)
    m, draws = 6, 4000
    unbiased, biased = [], []
    for _ in range(draws):
        x = points[torch.multinomial(p, m, replacement=True, generator=gen)]
        y = points[torch.multinomial(q, m, replacement=True, generator=gen)]
        unbiased.append(mmd2_unbiased(x, y))
        biased.append(float(polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean()
                            - 2 * polynomial_kernel(x, y).mean()))
    u, v = np.asarray(unbiased), np.asarray(biased)
    se = u.std() / np.sqrt(draws)
    assert abs(u.mean() - truth) < 4 * se, (u.mean(), truth, se)
    assert abs(v.mean() - truth) > 10 * se          # the test can tell bias from noise
    if same:
        assert truth == pytest.approx(0, abs=1e-12)


def test_kid_over_subsets():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3000, 16))
    r_same = kernel_inception_distance(a[:1500], a[1500:], subsets=20, subset_size=500)
    r_shift = kernel_inception_distance(a[:1500] + 0.5, a[1500:], subsets=20, subset_size=500)
    assert r_same["subset_size"] == 500 and r_same["subsets"] == 20
    assert abs(r_same["kid"]) < 3 * r_same["kid_std"]
    assert r_shift["kid"] > 10 * r_shift["kid_std"] > 0
    small = kernel_inception_distance(a[:50], a[50:], subsets=3)
    assert small["subset_size"] == 50


def test_kid_std_is_the_population_std_over_subsets():
    """ddof=0, as torch-fidelity and the KID authors' code (numpy's .std()) report it."""
    gen = torch.Generator().manual_seed(3)
    fake, real = torch.randn(60, 4, generator=gen), torch.randn(80, 4, generator=gen) + 0.3
    r = kernel_inception_distance(fake, real, subsets=5, subset_size=20, seed=7)
    draw = torch.Generator().manual_seed(7)            # the same subsets, drawn again
    values = []
    for _ in range(5):
        fi = torch.randperm(60, generator=draw)[:20]
        ri = torch.randperm(80, generator=draw)[:20]
        values.append(mmd2_unbiased(fake[fi].double(), real[ri].double()))
    assert r["kid"] == pytest.approx(np.mean(values), rel=1e-12)
    assert r["kid_std"] == pytest.approx(np.std(values, ddof=0), rel=1e-12)


# -- IS ----------------------------------------------------------------------------------------

def test_inception_score_limits():
    n, classes = 1000, 10
    assert inception_score(torch.zeros(n, classes))["is"] == pytest.approx(1.0)
    confident = torch.full((n, classes), -1e4)
    confident[torch.arange(n), torch.arange(n) % classes] = 0      # sure, and every class
    r = inception_score(confident, splits=10)
    assert r["is"] == pytest.approx(classes, rel=1e-6) and r["is_std"] < 1e-6
    one_class = torch.full((n, classes), -1e4)
    one_class[:, 3] = 0                                            # sure, but always the same
    assert inception_score(one_class)["is"] == pytest.approx(1.0)


def _reference_inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """The original IS code's loop (and NVlabs', torch-fidelity's): split i is
    rows [i N // splits, (i + 1) N // splits), numpy std (ddof=0) over the splits."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    n, scores = len(p), []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(np.exp(kl.sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_splits_follow_i_n_over_splits():
    """25 samples in 10 splits: the references' boundaries 0, 2, 5, 7, 10, ... give splits
    of 2 and 3 alternately (tensor_split would give five 3s, then five 2s)."""
    logits = np.random.default_rng(0).standard_normal((25, 7)) * 3
    r = inception_score(logits, splits=10)
    mean, std = _reference_inception_score(logits, 10)
    assert r["is"] == pytest.approx(mean, rel=1e-12) and r["is_std"] == pytest.approx(std)
    chunked = [inception_score(c, splits=1)["is"]
               for c in torch.tensor_split(torch.as_tensor(logits), 10)]
    assert abs(np.mean(chunked) - mean) > 1e-3        # the two splittings do differ here


# -- precision / recall -----------------------------------------------------------------------

def test_precision_recall_on_known_point_clouds():
    """Reals: clouds A and B far apart. Fakes: near-copies of A (1e-4 away) and a cloud C far
    from both. Half the fakes lie on the real manifold (precision 1/2); exactly the reals of
    A are covered by the fakes' manifold (recall 1/2)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(400, 2, generator=gen)
    b = torch.randn(400, 2, generator=gen) + 100
    c = torch.randn(400, 2, generator=gen) - 100
    reals = torch.cat([a, b])
    fakes = torch.cat([a + 1e-4, c])
    r = precision_recall(fakes, reals, k=3)
    assert r == {"precision": 0.5, "recall": 0.5, "k": 3}
    assert precision_recall(reals, reals) == {"precision": 1.0, "recall": 1.0, "k": 3}
    assert precision_recall(c, reals)["precision"] == 0.0


def test_precision_recall_separate_quality_from_coverage():
    """A generator that samples well but only one of two modes: precision stays high,
    recall drops to about one half."""
    gen = torch.Generator().manual_seed(1)
    reals = torch.cat([torch.randn(1000, 8, generator=gen), torch.randn(1000, 8, generator=gen)
                       + 20])
    dropped = torch.randn(1000, 8, generator=gen)            # only the first mode
    r = precision_recall(dropped, reals)
    assert r["precision"] > 0.8 and 0.4 < r["recall"] < 0.55


def test_memorisation_rate():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(2000, 32, generator=gen)
    copies = train[:300] + 1e-3 * torch.randn(300, 32, generator=gen)
    fresh = torch.randn(300, 32, generator=gen)
    assert memorisation(copies, train)["rate"] == 1.0
    assert memorisation(fresh, train)["rate"] == 0.0


# -- metric names -----------------------------------------------------------------------------

def test_metric_names():
    specs = parse_metrics("fid50k, kid,pr,nn,is10k")
    assert [(s.text, s.kind, s.num) for s in specs] == [
        ("fid50k", "fid", 50000), ("kid", "kid", None), ("pr", "pr", None),
        ("nn", "nn", None), ("is10k", "is", 10000)]
    assert specs[3].samples(10_000) == 1000          # nearest neighbours: at most 1000
    for bad in ("fdi", "fid0k", "fid50", "fid,fid"):
        with pytest.raises(GanzooError):
            parse_metrics(bad)

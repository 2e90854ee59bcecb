"""The numbers: Frechet distance, KID, Inception Score, precision/recall, nearest neighbours.

Pure functions of feature arrays (numpy or torch), written from the papers:

- FID: Heusel et al. 2017, the Frechet distance between Gaussians fitted to two feature sets,
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.
- KID: Binkowski et al. 2018, the unbiased estimate of the squared MMD with the cubic
  polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets; its std is
  the population std (ddof=0) over the subsets, as Binkowski et al.'s code and
  torch-fidelity report it (NVlabs reports no std).
- IS: Salimans et al. 2016, ``exp(E_x KL(p(y|x) || p(y)))``, mean and population std over
  splits ``[i N // splits, (i + 1) N // splits)``, as the original code, NVlabs and
  torch-fidelity split.
- Precision/recall: Kynkaanniemi et al. 2019, k-NN balls around each feature vector as the
  estimate of a manifold; precision = share of generated samples inside the real manifold,
  recall = share of real samples inside the generated one.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ganzoo.errors import GanzooError


# -- Frechet distance -----------------------------------------------------------------------

def mean_and_cov(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [d] and unbiased covariance [d, d] of features [n, d], in float64."""
    x = torch.as_tensor(features).double()
    if x.ndim != 2 or len(x) < 2:
        raise GanzooError(f"need at least 2 feature vectors to fit a Gaussian, got "
                          f"{tuple(x.shape)}")
    mu = x.mean(0)
    xc = x - mu
    cov = xc.T @ xc / (len(x) - 1)
    return mu.numpy(), cov.numpy()


def _psd_factor(a: torch.Tensor) -> torch.Tensor:
    """A matrix F with F F^T = a, for a symmetric positive semi-definite: the Cholesky
    factor when a is positive definite (fast), else a^(1/2) from an eigendecomposition
    (eigenvalues that rounding made slightly negative count as 0)."""
    factor, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0 and torch.isfinite(factor).all():
        return factor
    w, v = torch.linalg.eigh(a)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """``tr((S1 S2)^(1/2))`` for covariance matrices S1, S2, stably.

    S1 S2 is not symmetric, and for the nearly singular covariances FID meets (fewer samples
    than dimensions, dead features) a general matrix square root of it (scipy's sqrtm) may
    come back complex or with a large error, and is slow. But with any F such that
    S1 = F F^T, S1 S2 has the same eigenvalues as ``M = F^T S2 F`` (AB and BA share their
    eigenvalues), and M is symmetric positive semi-definite: its eigenvalues are real and
    >= 0, and the trace of the square root is the sum of their square roots. F is the
    Cholesky factor, or S1^(1/2) when S1 is singular. Eigenvalues below 0 can only come from
    rounding; one clearly below 0 means an input was not a covariance matrix, which is an
    error rather than a silently wrong score (the counterpart of the usual imaginary-part
    check after sqrtm).
    """
    a = torch.as_tensor(np.asarray(s1), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(s2), dtype=torch.float64)
    f = _psd_factor((a + a.T) / 2)
    m = f.T @ b @ f
    w = torch.linalg.eigvalsh((m + m.T) / 2)
    scale = max(float(w.abs().max()) if len(w) else 0.0, 1e-300)
    if float(w.min()) < -1e-6 * scale:
        raise GanzooError(f"Frechet distance: the covariance product has an eigenvalue of "
                          f"{float(w.min()):.3g} (largest {scale:.3g}); the statistics are "
                          "not valid covariance matrices")
    return float(w.clamp(min=0).sqrt().sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise GanzooError(f"Frechet distance: statistics of different sizes ({mu1.shape} vs "
                          f"{mu2.shape})")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                  - 2 * trace_sqrt_product(sigma1, sigma2))
    return max(value, 0.0)    # rounding can take an exact 0 a hair below


# -- KID --------------------------------------------------------------------------------------

def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(x.y / d + 1)^3``: the kernel of the KID paper."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased estimate of MMD^2 between the distributions of x [m, d] and y [n, d]:
    within-set kernel means leave out the diagonal (a sample with itself)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise GanzooError("KID needs at least 2 samples in each set")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kernel_inception_distance(fake: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor,
                              *, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> dict:
    """KID: mean and std of the unbiased MMD^2 over ``subsets`` random subsets of
    ``subset_size`` (fewer when a set is smaller), drawn without replacement. The std is
    numpy's default (ddof=0), the convention of the KID authors' code and torch-fidelity, so
    that ``kid_std`` compares with theirs."""
    f, r = torch.as_tensor(fake).double(), torch.as_tensor(real).double()
    size = min(subset_size, len(f), len(r))
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        fi = torch.randperm(len(f), generator=gen)[:size]
        ri = torch.randperm(len(r), generator=gen)[:size]
        values.append(mmd2_unbiased(f[fi], r[ri]))
    v = np.asarray(values)
    return {"kid": float(v.mean()), "kid_std": float(v.std()),
            "subsets": subsets, "subset_size": size}


# -- Inception Score --------------------------------------------------------------------------

def split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    """The references' IS splits: ``[i n // splits, (i + 1) n // splits)``. (torch's
    tensor_split puts the remainder in the first splits instead: other members, another
    score when n is not a multiple of ``splits``.)"""
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10) -> dict:
    """IS from class logits [n, classes]: exp of the mean KL divergence between each sample's
    class distribution and the split's marginal; mean and std over ``splits`` splits."""
    logp = torch.log_softmax(torch.as_tensor(logits).double(), dim=1)
    splits = max(1, min(splits, len(logp)))
    scores = []
    for start, stop in split_bounds(len(logp), splits):
        part = logp[start:stop]
        log_marginal = torch.logsumexp(part, 0) - math.log(len(part))
        kl = (part.exp() * (part - log_marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    s = np.asarray(scores)
    return {"is": float(s.mean()), "is_std": float(s.std()), "splits": splits}


# -- nearest neighbours ----------------------------------------------------------------------

def pairwise_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Euclidean distances [len(a), len(b)], computed in float64 row blocks."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    b2 = (b * b).sum(1)
    out = torch.empty(len(a), len(b), dtype=torch.float64)
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk]
        d2 = (x * x).sum(1, keepdim=True) + b2[None] - 2 * x @ b.T
        out[i:i + chunk] = d2.clamp_(min=0).sqrt_()
    return out


def kth_neighbour_distance(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """For each row of x, the distance to its k-th nearest other row (itself excluded)."""
    x = torch.as_tensor(x).double()
    if len(x) <= k:
        raise GanzooError(f"k-NN radii need more than k={k} samples, got {len(x)}")
    out = torch.empty(len(x), dtype=torch.float64)
    for i in range(0, len(x), chunk):
        d = pairwise_distances(x[i:i + chunk], x)
        # The k+1 smallest include the row itself (distance 0).
        out[i:i + chunk] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return out


def knn(queries: torch.Tensor, chunks, k: int = 1, *,
        exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest reference rows of each query: (distances [n, k], indices [n, k]).

    ``chunks`` is a tensor [m, d] or an iterable of ``(offset, tensor)`` blocks of it (so a
    large reference set, such as the training images, never sits in memory as floats at
    once). ``exclude[i]`` is a reference index query i must not match (itself).
    """
    queries = torch.as_tensor(queries).double()
    if isinstance(chunks, (torch.Tensor, np.ndarray)):
        chunks = [(0, torch.as_tensor(chunks))]
    best_d = torch.full((len(queries), k), float("inf"), dtype=torch.float64)
    best_i = torch.full((len(queries), k), -1, dtype=torch.long)
    for offset, block in chunks:
        d = pairwise_distances(queries, block)
        idx = torch.arange(offset, offset + len(block))
        if exclude is not None:
            d[idx[None] == exclude[:, None]] = float("inf")
        d = torch.cat([best_d, d], 1)
        i = torch.cat([best_i, idx[None].expand(len(queries), -1)], 1)
        best_d, pos = d.topk(k, dim=1, largest=False)
        best_i = i.gather(1, pos)
    return best_d, best_i


def _inside_manifold(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor,
                     chunk: int = 2048) -> torch.Tensor:
    """For each query, whether it lies in some ball B(points[j], radii[j])."""
    inside = torch.zeros(len(queries), dtype=torch.bool)
    for i in range(0, len(queries), chunk):
        d = pairwise_distances(queries[i:i + chunk], points)
        inside[i:i + chunk] = (d <= radii[None]).any(1)
    return inside


def precision_recall(fake: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor,
                     k: int = 3) -> dict:
    """Improved precision and recall with k-NN manifolds (k=3 as in the paper)."""
    f, r = torch.as_tensor(fake).double(), torch.as_tensor(real).double()
    real_radii = kth_neighbour_distance(r, k)
    fake_radii = kth_neighbour_distance(f, k)
    precision = _inside_manifold(f, r, real_radii).double().mean().item()
    recall = _inside_manifold(r, f, fake_radii).double().mean().item()
    return {"precision": precision, "recall": recall, "k": k}


#: A sample counts as memorised when its nearest training image is closer than this share of
#: the median distance between a training image and its nearest other training image.
MEMORISATION_FACTOR = 0.5


def memorisation_rate(sample_nn: torch.Tensor, train_nn: torch.Tensor,
                      factor: float = MEMORISATION_FACTOR) -> dict:
    """Share of samples closer to some training image than ``factor`` x the typical
    distance between a training image and its nearest other training image.

    ``sample_nn``: each sample's distance to its nearest training image; ``train_nn``: each
    (of a subset of) training image's distance to its nearest other training image. Two
    distinct training images are typically ``median(train_nn)`` apart; a sample much closer
    than that to one of them is most likely a copy of it.
    """
    typical = float(torch.as_tensor(train_nn).double().median())
    threshold = factor * typical
    d = torch.as_tensor(sample_nn).double()
    return {"rate": float((d < threshold).double().mean()), "threshold": threshold,
            "train_nn_median": typical, "sample_nn_median": float(d.median()),
            "factor": factor}


def memorisation(fake: torch.Tensor, real: torch.Tensor, *, max_reference: int = 1000,
                 factor: float = MEMORISATION_FACTOR, seed: int = 0) -> dict:
    """:func:`memorisation_rate` of samples ``fake`` against training set ``real`` (both
    [n, d]); the typical training distance is taken over a seeded subset of up to
    ``max_reference`` training images."""
    r = torch.as_tensor(real).double()
    sub = torch.randperm(len(r), generator=torch.Generator().manual_seed(seed))[:max_reference]
    train_nn, _ = knn(r[sub], r, 1, exclude=sub)
    sample_nn, _ = knn(torch.as_tensor(fake), r, 1)
    return memorisation_rate(sample_nn[:, 0], train_nn[:, 0], factor)

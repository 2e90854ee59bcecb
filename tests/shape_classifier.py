"""A small CNN that tells the five `shapes` classes apart: the yardstick of the quality test.

A generator whose samples this classifier labels confidently draws recognisable shapes; one
that draws blobs or noise gets low confidence.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.data.shapes import SHAPE_KINDS, make_shapes


def train_shape_classifier(resolution: int = 32, images: int = 3000, epochs: int = 4,
                           seed: int = 0) -> tuple[nn.Module, float]:
    """Returns the classifier and its accuracy on 500 held-out images."""
    torch.manual_seed(seed)
    data = make_shapes(images + 500, resolution, seed=seed + 100)
    x = torch.from_numpy(data.images).float() / 127.5 - 1
    y = torch.from_numpy(data.labels)
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, len(SHAPE_KINDS)))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    for _ in range(epochs):
        for idx in torch.randperm(images).split(64):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(x[images:]).argmax(1) == y[images:]).float().mean().item()
    return net, accuracy


@torch.no_grad()
def recognisability(net: nn.Module, images: torch.Tensor, threshold: float = 0.9) -> dict:
    """Share of images the classifier labels with confidence >= threshold, and how evenly
    those spread over the classes (1.0 = all five classes equally often)."""
    probs = F.softmax(net(images), dim=1)
    confident = probs.max(1).values >= threshold
    counts = torch.bincount(probs.argmax(1)[confident], minlength=probs.shape[1]).float()
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {"confident": confident.float().mean().item(),
            "class_balance": entropy / torch.log(torch.tensor(float(probs.shape[1]))).item()}

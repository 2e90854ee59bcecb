"""Feeding the trainer: a resumable, seeded order over an in-memory uint8 image set.

The order is a stream of per-epoch permutations seeded by (run seed, epoch), so the batch at
any position is known in advance: resuming at image N continues exactly where an
uninterrupted run would be, and each rank of a distributed run takes its slice of each global
batch.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ganzoo.data.source import ImageSet


class BatchOrder(Sampler[list[int]]):
    """Endless batches of indices, starting at ``start`` images into the stream."""

    def __init__(self, num_images: int, batch: int, seed: int, start: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch, self.seed, self.start = num_images, batch, seed, start
        self.rank, self.world_size = rank, world_size

    def _epoch(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=gen)

    def __iter__(self) -> Iterator[list[int]]:
        pos = self.start
        epoch, perm = pos // self.n, self._epoch(pos // self.n)
        while True:
            idx = []
            while len(idx) < self.batch:
                if pos // self.n != epoch:
                    epoch, perm = pos // self.n, self._epoch(pos // self.n)
                take = min(self.batch - len(idx), self.n - pos % self.n)
                idx += perm[pos % self.n: pos % self.n + take].tolist()
                pos += take
            yield idx[self.rank::self.world_size]


class ImageSetDataset(Dataset):
    """Serves whole batches (uint8 NCHW tensor, int64 labels or None) from memory.

    With ``xflip``, indices N..2N-1 are the mirror images of 0..N-1, as stylegan2-ada's
    --mirror does it: the set doubles, each epoch shows every image once each way, and which
    way a batch sees an image follows from the seeded order alone (resume stays exact).
    """

    def __init__(self, data: ImageSet, xflip: bool = False):
        self.images = torch.from_numpy(np.ascontiguousarray(data.images))
        self.labels = None if data.labels is None else torch.from_numpy(data.labels)
        self.xflip = xflip

    def __len__(self) -> int:
        return len(self.images) * (2 if self.xflip else 1)

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices)
        source = idx % len(self.images)
        images = self.images[source]          # a copy: flipping it leaves the set alone
        if self.xflip:
            mirrored = idx >= len(self.images)
            images[mirrored] = images[mirrored].flip(-1)
        labels = None if self.labels is None else self.labels[source]
        return images, labels


def _keep_batch(batch):
    """collate_fn: __getitems__ already returned a collated batch."""
    return batch


def make_loader(dataset: ImageSetDataset, order: BatchOrder, workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    if order.n != len(dataset):
        raise ValueError(f"batch order over {order.n} images for a set of {len(dataset)}")
    # Own generator: the DataLoader draws a base seed at every iterator creation, which would
    # otherwise consume the global RNG and make resumed runs diverge from uninterrupted ones.
    return DataLoader(dataset, batch_sampler=order, collate_fn=_keep_batch,
                      num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(order.seed),
                      persistent_workers=workers > 0)

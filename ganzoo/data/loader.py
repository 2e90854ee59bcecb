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
    """Serves whole batches (uint8 NCHW tensor, int64 labels or None) from memory."""

    def __init__(self, data: ImageSet):
        self.images = torch.from_numpy(np.ascontiguousarray(data.images))
        self.labels = None if data.labels is None else torch.from_numpy(data.labels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices)
        labels = None if self.labels is None else self.labels[idx]
        return self.images[idx], labels


def _keep_batch(batch):
    """collate_fn: __getitems__ already returned a collated batch."""
    return batch


def make_loader(data: ImageSet, order: BatchOrder, workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    # Own generator: the DataLoader draws a base seed at every iterator creation, which would
    # otherwise consume the global RNG and make resumed runs diverge from uninterrupted ones.
    return DataLoader(ImageSetDataset(data), batch_sampler=order, collate_fn=_keep_batch,
                      num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(order.seed),
                      persistent_workers=workers > 0)

"""The one training loop for every architecture.

The trainer owns everything architectures share: data, kimg counting, ticks, the progress
line, stats.jsonl, sample grids, checkpoints, resume and signals. Under torchrun it trains
data-parallel (ganzoo/distributed.py): ``--batch`` is the global minibatch, each rank trains on
its slice of it, ranks agree on stop requests and logged values every step, and only rank 0
writes to the run directory.
"""
from __future__ import annotations

import dataclasses
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import ganzoo
from ganzoo import distributed
from ganzoo.acceleration import Acceleration, unavailable_reason
from ganzoo.architecture import Architecture, DataSpec, forked_rng, option
from ganzoo.checkpoint import (Progress, checkpoint_path, load_state, new_run_dir,
                               prune_checkpoints, read_checkpoint, resolve_checkpoint,
                               restore_rng, save_checkpoint)
from ganzoo.data import PrepareOptions, resolve_data
from ganzoo.data.loader import BatchOrder, ImageSetDataset, make_loader
from ganzoo.data.prepare import RESIZE_FILTERS
from ganzoo.data.source import ImageSet
from ganzoo.distributed import GradientAverager, Rank
from ganzoo.errors import GanzooError
from ganzoo.importers import IMPORTED_KEY
from ganzoo.progress import ProgressLine
from ganzoo.run_dir import RunDirectory
from ganzoo.runlock import RunLock
from ganzoo.snapshots import Metrics, Report, SampleGrids, SnapshotCallback
from ganzoo.stop_signals import StopSignals
from ganzoo.tick_stats import TickStats
from ganzoo.transfer import FrozenParameters, frozen_parameters, transfer_weights
from ganzoo.viz import grid_image, grid_side

SAMPLE_SEED = 1234   # fixed latents for sample grids, so grids are comparable over time


MAX_DEFAULT_SNAP_KIMG = 200.0
# Limits that catch typos before they become an out-of-memory crash after the run directory
# was made: 4x BigGAN's 2048, the largest GAN minibatch we know of; 2x the largest published
# GAN training resolution. Seeds are what torch.Generator.manual_seed takes.
MAX_BATCH = 8192
MAX_RESOLUTION = 4096
SEED_LIMIT = 2 ** 64
DEVICES = "auto, cpu, cuda or cuda:N"
STATS_READ_EVERY = 16  # steps between reads of logged values left on a GPU (tick_stats.py)


@dataclass
class TrainConfig:
    """Options shared by every architecture (architecture options live in its Config).

    Declared once: each field's option() metadata becomes its `ganzoo train ARCH` option
    (cli.config_options), and the names are the reserved ones no architecture option may take.
    """

    data: str | None = option(None, "image folder or data set name (see `ganzoo list`); "
                              "required unless --resume", metavar="SPEC")
    resolution: int = option(64, "training resolution (images are centre-cropped and "
                             "resized)")
    channels: int = option(3, "3 for RGB, 1 for greyscale")
    kimg: float = option(1000.0, "train until this many thousand real images were shown")
    batch: int | None = option(None, "images per minibatch  [default: {batch_default}]")
    seed: int = option(0, "seed of the weights' initialisation, the data order and every "
                       "random draw of training")
    tick: float = option(1.0, "kimg between progress/stats lines")
    snap: float | None = option(None, "kimg between sample grids and checkpoints "
                                "[default: kimg/10, at most 200]")
    keep: int = option(3, "how many checkpoints to keep")
    max_images: int | None = option(None, "use only the first N images")
    xflip: bool = option(False, "also train on mirror images (doubles the set, as "
                         "stylegan2-ada's --mirror)", switch=True, aliases=("--mirror",))
    resize_filter: str = option("lanczos", "filter that resizes images when they are "
                                "prepared", choices=list(RESIZE_FILTERS))
    out: str = option("runs", "directory that holds run directories")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    workers: int = option(0, "DataLoader worker processes")
    metrics: str = option("", "score at snapshots, e.g. fid2k,kid (see `ganzoo eval "
                          "--help`); written to stats.jsonl", metavar="LIST")
    metrics_every: float | None = option(None, "kimg between metric rounds [default: every "
                                         "snapshot]", metavar="KIMG")
    metrics_extractor: str = option("inception", "feature network for --metrics",
                                    metavar="inception|domain[:SPEC]|NAME")
    feature_weights: str | None = option(None, "Inception weights file for --metrics "
                                         "(offline machines)", metavar="PATH")
    metrics_fid_mode: str | None = option(None, "Inception preprocessing for --metrics (see "
                                          "`ganzoo eval --help`) [default: legacy-tf]",
                                          metavar="legacy-tf|pytorch-fid|clean")
    init: str | None = option(None, "start from another run's network weights (transfer "
                              "learning; optimisers fresh, its architecture options kept)",
                              metavar="RUN|CKPT")
    freeze_d: int = option(0, "keep the first N discriminator blocks (from the image side) "
                           "unchanged (FreezeD; with --init)", metavar="N")
    compile: bool = option(False, "compile the networks' training passes with torch.compile "
                           "(architectures that support it; a one-time compile of minutes)",
                           switch=True)
    cuda_graphs: bool = option(False, "capture each phase of the training step as a CUDA "
                               "graph and replay it (CUDA, one process; architectures that "
                               "support it)", switch=True)

    def __post_init__(self):
        checks = [(self.kimg > 0 and math.isfinite(self.kimg),
                   f"--kimg must be > 0, got {self.kimg:g}"),
                  (self.batch is None or 0 < self.batch <= MAX_BATCH,
                   f"--batch must be in 1-{MAX_BATCH}, got {self.batch}"),
                  (self.tick > 0, f"--tick must be > 0, got {self.tick:g}"),
                  (self.snap is None or self.snap > 0, f"--snap must be > 0, got {self.snap}"),
                  (counts_images(self.tick), f"--tick must be a finite number of kimg, at "
                   f"least one image (0.001), got {self.tick:g}"),
                  (self.snap is None or counts_images(self.snap), f"--snap must be a finite "
                   f"number of kimg, at least one image (0.001), got {self.snap}"),
                  (self.keep > 0, f"--keep must be > 0, got {self.keep}"),
                  (4 <= self.resolution <= MAX_RESOLUTION,
                   f"--resolution must be in 4-{MAX_RESOLUTION}, got {self.resolution}"),
                  (0 <= self.seed < SEED_LIMIT,
                   f"--seed must be in 0-{SEED_LIMIT - 1}, got {self.seed}"),
                  (self.channels in (1, 3), f"--channels must be 1 or 3, got {self.channels}"),
                  (self.workers >= 0, f"--workers must be >= 0, got {self.workers}"),
                  (self.max_images is None or self.max_images > 0,
                   f"--max-images must be > 0, got {self.max_images}"),
                  (self.resize_filter in RESIZE_FILTERS,
                   f"--resize-filter must be one of {', '.join(RESIZE_FILTERS)}, "
                   f"got {self.resize_filter}"),
                  (self.metrics_every is None or self.metrics_every > 0,
                   f"--metrics-every must be > 0, got {self.metrics_every}"),
                  (self.freeze_d >= 0, f"--freeze-d must be >= 0, got {self.freeze_d}")]
        for ok, message in checks:
            if not ok:
                raise GanzooError(message)
        check_device(self.device)
        if self.metrics:
            from ganzoo.metrics.evaluate import parse_metrics
            parse_metrics(self.metrics)      # an unknown name fails before any training
        if self.metrics_fid_mode is not None:
            from ganzoo.metrics.preprocess import check_fid_mode
            check_fid_mode(self.metrics_fid_mode)

    @property
    def snap_kimg(self) -> float:
        # At most 200 kimg between checkpoints by default (stylegan2-ada's snapshot interval),
        # so a 25,000-kimg run does not go 2,500 kimg without one.
        default = max(self.tick, min(self.kimg / 10, MAX_DEFAULT_SNAP_KIMG))
        return self.snap if self.snap is not None else default


def counts_images(kimg: float) -> bool:
    """Whether an interval in kimg is finite and at least one image once rounded (the loop
    divides by it)."""
    return math.isfinite(kimg) and round(kimg * 1000) >= 1


def check_device(name: str) -> None:
    """Refuse what ganzoo cannot train or sample on (mps, meta, typos, a missing GPU) with one
    line, before data is prepared or a run directory made."""
    kind, _, index = name.partition(":")
    if name in ("auto", "cpu") or (kind == "cuda" and (not index or index.isdigit())):
        if kind == "cuda" and not torch.cuda.is_available():
            raise GanzooError(f"--device {name}: no CUDA device is available (torch "
                              f"{torch.__version__}, built "
                              f"{'with' if torch.version.cuda else 'without'} CUDA)")
        if index and int(index) >= torch.cuda.device_count():
            raise GanzooError(f"--device {name}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return
    raise GanzooError(f"--device {name}: expected {DEVICES}")


def pick_device(name: str) -> torch.device:
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class ResumeState:
    """What a checkpoint hands back to the trainer."""

    checkpoint: Path
    data: dict


def read_init(arch_cls: type[Architecture], ref: str, out: Path, trust: bool = False
              ) -> ResumeState:
    """The checkpoint ``--init`` names (a run, a checkpoint file, or latest of ``arch``);
    one of another architecture is an error here, before its options are used."""
    arch = arch_cls.name
    path = resolve_checkpoint(ref, out, arch=arch)
    data = read_checkpoint(path, trust=trust)
    if data["architecture"] != arch:
        raise GanzooError(f"--init {ref}: {path} is a {data['architecture']} checkpoint, not "
                          f"{arch}")
    return ResumeState(path, arch_cls.upgrade_checkpoint(data))


def label_counts(data: ImageSet) -> tuple[int, ...]:
    """Images per class ((): unlabelled)."""
    if data.labels is None or not data.class_names:
        return ()
    counts = np.bincount(np.asarray(data.labels, dtype=np.int64),
                         minlength=len(data.class_names))
    return tuple(int(n) for n in counts)


class Stop(Exception):
    """Raised inside the loop when a signal asked training to stop."""


class Trainer:
    """Builds (or resumes) a run and trains it to ``config.kimg``.

    The parts, each in its own module: the run directory's files (run_dir.RunDirectory), the
    tick's logged values (tick_stats.TickStats), what a snapshot does besides the checkpoint
    (snapshots: sample grids and GIF, metrics, report), and the stop signals
    (stop_signals.StopSignals). __init__ runs the setup steps below in their order.
    """

    def __init__(self, arch_cls: type[Architecture], arch_config, config: TrainConfig,
                 registry, *, resume: ResumeState | None = None,
                 init: ResumeState | None = None, run_dir: Path | None = None,
                 quiet: bool = False, plugin: tuple[str, str] = ("?", "?")):
        self.config = config
        self.plugin_name, self.plugin_version = plugin
        self.signals = StopSignals()
        self._setup_device()
        self._load_data(arch_cls, registry)
        self._build_model(arch_cls, arch_config)                # seeded by --seed
        self._start_from(resume, init)                          # weights, progress, RNG
        self.frozen = FrozenParameters(frozen_parameters(self.arch, config.freeze_d),
                                       self.arch.optimizers())
        if self.ranks.distributed:
            self._start_ranks()
        self._accelerate()
        self._open_run_dir(run_dir, quiet)
        self._make_loader()
        self.stats = TickStats(1 if self.device.type == "cpu" else STATS_READ_EVERY,
                               self._non_finite)
        self._tick_images = self.progress.images
        self._last_sec_per_kimg: float | None = None
        if self.is_main:
            self.lock.acquire()        # before anything in the run directory is touched
            self._prepare_run_dir(resumed=resume is not None)
            self._write_network_summary()
        self.gradient_averager = None
        if self.ranks.distributed:     # after the summary: rank 0 alone runs its passes
            self._average_gradients()
        self.callbacks = self._snapshot_callbacks(registry, resumed=resume is not None)
        self._tick_start = time.monotonic()     # setup is not training time

    # -- setup steps, in order -----------------------------------------------------------------

    def _setup_device(self) -> None:
        self.ranks = Rank.from_env()
        self.rank, self.world_size = self.ranks.rank, self.ranks.world_size
        self.is_main = self.ranks.is_main
        self.device = distributed.start(self.ranks, pick_device(self.config.device))
        if self.device.type == "cuda":
            # Training shapes never change, so cuDNN's per-shape algorithm search pays off:
            # without it its heuristics chose legacy kernels taking ~7 ms per call for some of
            # stylegan2-ada's fp16 convolutions on an H100 (a fifth of the GPU time).
            torch.backends.cudnn.benchmark = True

    def _load_data(self, arch_cls: type[Architecture], registry) -> None:
        config = self.config
        arch_cls.check_resolution(config.resolution)     # before preparing data at that size
        self.data: ImageSet = resolve_data(
            config.data, PrepareOptions(config.resolution, config.channels, config.max_images,
                                        resize_filter=config.resize_filter), registry)
        self.spec = DataSpec(self.data.resolution, self.data.channels,
                             len(self.data.class_names), tuple(self.data.class_names),
                             label_counts(self.data))
        if (arch_cls.conditional or arch_cls.trains_on_labels) and not self.spec.num_classes:
            what = "is conditional" if arch_cls.conditional else "trains on labels"
            raise GanzooError(f"{arch_cls.name} {what} but --data {config.data} has "
                              "no labels (use class subfolders or a labelled data set)")

    def _build_model(self, arch_cls: type[Architecture], arch_config) -> None:
        torch.manual_seed(self.config.seed)
        self.arch = arch_cls(arch_config, self.spec, self.device)
        if self.config.batch is None:     # resolved before config.json and checkpoints record it
            self.config.batch = self.arch.preferred_batch()
        self.step_images = self.config.batch * self.arch.batches_per_step

    def _start_from(self, resume: ResumeState | None, init: ResumeState | None) -> None:
        self.progress = Progress()
        if resume is not None:
            self._restore(resume)
        elif init is not None:
            self._init_from(init)

    def _restore(self, resume: ResumeState) -> None:
        data = resume.data
        theirs = DataSpec.from_dict(data["data_spec"])
        if IMPORTED_KEY in data:   # another project's snapshot: no class names, no RNG state
            theirs = dataclasses.replace(theirs, class_names=self.spec.class_names)
        if theirs != self.spec:
            raise GanzooError(f"checkpoint {resume.checkpoint} was trained on data "
                              f"{data['data_spec']}, but --data gives {self.spec.to_dict()}")
        load_state(self.arch, data["state"], resume.checkpoint)
        self.progress = Progress(**data["progress"])
        if "rng" in data:
            restore_rng(data["rng"])

    def _init_from(self, init: ResumeState) -> None:
        done = transfer_weights(self.arch, init.data, init.checkpoint)
        if self.is_main:
            fresh = (f"; new classes, so these start fresh: {', '.join(done.reinitialised)}"
                     if done.reinitialised else "")
            print(f"--init: {done.copied} weight tensors from {init.checkpoint}, optimisers "
                  f"fresh{fresh}", file=sys.stderr)

    def _accelerate(self) -> None:
        """--compile / --cuda-graphs, after the weights and optimiser states are in place;
        refused with one line where unavailable."""
        acceleration = Acceleration(compile=self.config.compile,
                                    cuda_graphs=self.config.cuda_graphs)
        if not acceleration:
            return
        reason = unavailable_reason(acceleration, self.arch.name, self.arch.accelerations,
                                    self.device, self.world_size)
        if reason is not None:
            raise GanzooError(reason)
        self.arch.accelerate(acceleration)

    def _start_ranks(self) -> None:
        """Distributed setup: every rank starts from rank 0's weights, and draws its own
        random numbers (seeded from the run seed, its rank and the images trained)."""
        if self.config.batch % self.world_size:
            raise GanzooError(f"--batch {self.config.batch} is the global minibatch; it must "
                              f"be a multiple of the {self.world_size} processes")
        distributed.broadcast_module_states(self.arch.networks())
        torch.manual_seed(distributed.rank_seed(self.config.seed, self.rank,
                                                self.progress.images))

    def _open_run_dir(self, run_dir: Path | None, quiet: bool) -> None:
        if run_dir is None and self.is_main:
            run_dir = new_run_dir(Path(self.config.out), self.arch.name, self.data.name)
        self.run_dir = distributed.broadcast_object(run_dir)
        self.files = RunDirectory(self.run_dir)
        self.lock = RunLock(self.run_dir)
        self.view = ProgressLine(self.config.kimg, quiet=quiet or not self.is_main)
        n = grid_side(self.spec.resolution)
        # Conditional models: one class per column, as the cGAN report laid them out.
        self.grid_cols = self.spec.num_classes if self.arch.conditional else n
        self.grid_count = n * self.grid_cols

    def _make_loader(self) -> None:
        dataset = ImageSetDataset(self.data, xflip=self.config.xflip)
        self.loader_iter = iter(make_loader(
            dataset, BatchOrder(len(dataset), self.step_images, self.config.seed,
                                start=self.progress.images, rank=self.rank,
                                world_size=self.world_size),
            workers=self.config.workers, pin_memory=self.device.type == "cuda"))

    def _prepare_run_dir(self, resumed: bool) -> None:
        config = {"architecture": self.arch.name, "plugin": self.plugin_name,
                  "plugin_version": self.plugin_version, "ganzoo_version": ganzoo.__version__,
                  "torch_version": torch.__version__,
                  "config": dataclasses.asdict(self.arch.config),
                  "train": dataclasses.asdict(self.config), "data_spec": self.spec.to_dict(),
                  "data": {"name": self.data.name, "images": len(self.data)},
                  "command": sys.argv, "processes": self.world_size,
                  "job": distributed.job_id()}   # a torchrun restart finds its run by this
        self.files.prepare(config)
        if resumed:
            self.files.rewind(self.progress.kimg)
        else:
            self.files.save_reals(grid_image(self._grid_reals(), self.grid_cols,
                                             col_titles=self.grid_titles()))

    def _write_network_summary(self) -> None:
        """network.txt, and the same table on the console, for architectures that give one.
        Its forward passes run on a forked RNG, so training draws the same numbers with or
        without it (a resumed run stays identical to an uninterrupted one)."""
        with forked_rng(self.device):
            text = self.arch.network_summary(self.config.batch)
        if text:
            self.files.write_network_summary(text)
            self.view.message(text.rstrip("\n"))

    def _average_gradients(self) -> None:
        for net in self.arch.networks():
            distributed.convert_batchnorm(net)
        # Registered after --freeze-d's hooks, which run first: frozen gradients are
        # dropped on every rank before the average (they stay None everywhere).
        self.gradient_averager = GradientAverager(self.arch.optimizers())

    def _snapshot_callbacks(self, registry, resumed: bool) -> list[SnapshotCallback]:
        callbacks: list[SnapshotCallback] = [SampleGrids(self.files, resumed)]
        if self.config.metrics:
            callbacks.append(Metrics(self._training_metrics(registry)))
        return callbacks + [Report()]

    def _training_metrics(self, registry):
        from ganzoo.metrics.training import TrainingMetrics
        metrics = TrainingMetrics(self, registry) if self.is_main else None
        # Other ranks build theirs from what rank 0 just built and cached (feature network,
        # reference statistics), instead of all computing them at once.
        distributed.barrier()
        return metrics if self.is_main else TrainingMetrics(self, registry)

    def grid_titles(self) -> tuple[str, ...]:
        return self.spec.class_names if self.arch.conditional else ()

    def _grid_reals(self):
        """Real images in the sample grid's layout (row r, column c: r-th image of class c)."""
        if not self.arch.conditional:
            return self.data.images[:self.grid_count]
        rows = self.grid_count // self.grid_cols
        by_class = [np.flatnonzero(self.data.labels == c)[:rows] for c in range(self.grid_cols)]
        order = [by_class[c][r % len(by_class[c])] for r in range(rows)
                 for c in range(self.grid_cols) if len(by_class[c])]
        return self.data.images[order]

    # -- the loop ------------------------------------------------------------------------------

    @property
    def stop_signal(self) -> int | None:
        """The signal that asked this run to stop, if one did."""
        return self.signals.requested

    def run(self) -> Path:
        """Train to ``config.kimg`` images; returns the run directory. On SIGINT/SIGTERM it
        saves a checkpoint and raises :class:`Stop`."""
        total = round(self.config.kimg * 1000)
        self.view.message(f"training {self.arch.name} on {self.data.name} "
                          f"({len(self.data)} images, {self.spec.resolution}px) -> {self.run_dir}")
        try:
            with self.signals.watching():
                self.advance(total)
            if self.stop_signal is not None:
                path = self.save()
                raise Stop(f"stopped by {signal.Signals(self.stop_signal).name} at kimg "
                           f"{self.progress.kimg:.3f}; checkpoint {path}; continue with "
                           f"--resume {self.run_dir}")
            self.finish()
            return self.run_dir
        finally:
            self.lock.release()
            if self.gradient_averager is not None:
                self.gradient_averager.remove()
            self.frozen.remove()

    def advance(self, target_images: int) -> None:
        """Train until ``target_images`` have been shown (or a stop signal arrives)."""
        tick_images = round(self.config.tick * 1000)
        snap_images = round(self.config.snap_kimg * 1000)
        while self.progress.images < target_images and self.stop_signal is None:
            self._step()
            images = self.progress.images
            if images // tick_images > self._tick_images // tick_images or images >= target_images:
                self._end_tick()
            if images // snap_images > (images - self.step_images) // snap_images \
                    and images < target_images:
                self.snapshot()

    def _step(self) -> None:
        reals, labels = next(self.loader_iter)
        reals = reals.to(self.device, non_blocking=True).float().div_(127.5).sub_(1)
        if labels is not None and (self.arch.conditional or self.arch.trains_on_labels):
            labels = labels.to(self.device, non_blocking=True)
        else:
            labels = None
        if self.ranks.distributed:
            stats = self._distributed_step(reals, labels)
        else:
            stats = self.arch.train_step(reals, labels)
        self.progress.step += 1
        self.progress.images += reals.shape[0] * self.world_size
        if self.stats.add(stats, self.progress.step):
            self.view.update(self.progress.kimg, self._last_sec_per_kimg, self.stats.means())

    def _non_finite(self, key: str, value: float, since: int, step: int) -> GanzooError:
        when = f"at step {step}" if since == step else f"between steps {since} and {step}"
        return GanzooError(f"{key} became {value} {when} (kimg {self.progress.kimg:.3f}); "
                           f"stopped ({self.files.last_checkpoint_text()})")

    def _distributed_step(self, reals, labels) -> dict[str, float]:
        """train_step on this rank's slice, then one all-reduce that averages the logged
        values over the ranks and spreads a stop request, so every rank stops on the same
        step. A lost rank surfaces here as a collective error: one line naming this rank."""
        try:
            stats = self.arch.train_step(reals, labels)
            keys = sorted(stats)
            # Stacked where the values live: 0-d tensor stats join without a wait per value.
            values = [float(self.stop_signal is not None), *(stats[k] for k in keys)]
            packed = torch.stack([torch.as_tensor(v, dtype=torch.float64,
                                                  device=self.device).detach() for v in values])
            distributed.all_reduce_sum_(packed)
        except RuntimeError as e:
            raise GanzooError(f"rank {self.rank}: step {self.progress.step + 1} failed: "
                              f"{distributed.first_line(e)} (a lost rank shows here; the "
                              f"launcher names it); {self.files.last_checkpoint_text()}"
                              ) from None
        if packed[0] > 0 and self.stop_signal is None:
            self.signals.requested = signal.SIGTERM    # another rank was asked to stop
        return {k: float(v) / self.world_size for k, v in zip(keys, packed[1:].tolist())}

    def _end_tick(self) -> None:
        self.stats.read()
        now = time.monotonic()
        seconds = now - self._tick_start
        kimg_done = (self.progress.images - self._tick_images) / 1000
        sec_per_kimg = seconds / kimg_done if kimg_done > 0 else None
        self.progress.train_seconds += seconds
        means = self.stats.means()
        if self.device.type == "cuda":    # the tick's peak, as the official loop reports it
            means["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 30
            torch.cuda.reset_peak_memory_stats(self.device)
        if self.is_main:
            self.files.append_stats({"kimg": round(self.progress.kimg, 6),
                                     "step": self.progress.step, "sec_per_kimg": sec_per_kimg,
                                     "train_seconds": self.progress.train_seconds,
                                     "timestamp": time.time(), **means})
        self.view.tick(self.progress.kimg, sec_per_kimg, means)
        self._last_sec_per_kimg = sec_per_kimg
        self.stats.reset()
        self._tick_start, self._tick_images = now, self.progress.images

    # -- outputs -------------------------------------------------------------------------------

    def sample_grid(self) -> torch.Tensor:
        """Fixed-seed samples (one class per column for conditional models)."""
        labels = None
        if self.arch.conditional:
            labels = torch.arange(self.grid_count, device=self.device) % self.spec.num_classes
        return self.arch.generate(self.grid_count, seed=SAMPLE_SEED, labels=labels)

    def snapshot(self, final: bool = False) -> None:
        """The callbacks that come before the checkpoint, the checkpoint, the ones after."""
        self.stats.read()   # a non-finite loss stops the run before it is saved
        for callback in self.callbacks:
            if callback.before_save:
                self._run_callback(callback, final)
        self.save()
        for callback in self.callbacks:
            if not callback.before_save:
                self._run_callback(callback, final)

    def _run_callback(self, callback: SnapshotCallback, final: bool) -> None:
        if callback.main_only and not self.is_main:
            return
        started = time.monotonic()
        callback(self, final)
        if not callback.training_time:
            self._tick_start += time.monotonic() - started

    def save(self) -> Path:
        path = checkpoint_path(self.run_dir, self.progress.images)
        if self.ranks.distributed:
            self._check_ranks_agree()
        if self.is_main:
            with self.signals.deferred():
                save_checkpoint(path, arch=self.arch, plugin=self.plugin_name,
                                plugin_version=self.plugin_version,
                                train=dataclasses.asdict(self.config), progress=self.progress)
                prune_checkpoints(self.run_dir, self.config.keep)
            if self.signals.during_save is not None:    # a second signal: stop right now
                name = signal.Signals(self.signals.during_save).name
                raise Stop(f"stopped by a second {name} at kimg {self.progress.kimg:.3f}, "
                           f"after writing checkpoint {path}; continue with --resume "
                           f"{self.run_dir}")
        return path

    def _check_ranks_agree(self) -> None:
        """Rank 0's checkpoint stands for every rank only if all hold the same weights: they
        do unless a plugin changes weights outside its optimisers' step()."""
        differ = distributed.ranks_disagreeing(self.arch.networks())
        if differ:
            self.view.message(f"warning: the weights of rank(s) {', '.join(map(str, differ))} "
                              "differ from rank 0's, whose checkpoint this is (does the "
                              "architecture update weights outside optimizer.step()?)")

    def finish(self) -> None:
        self.snapshot(final=True)
        self.view.message(f"done: {self.progress.kimg:g} kimg in "
                          f"{self.progress.train_seconds:.1f} s; final grid "
                          f"{self.run_dir / 'final.png'}")

"""The interface every architecture implements, and what the data tells a model (DataSpec).

An architecture owns its networks, losses and optimisers, nothing else: the trainer owns data
loading, kimg counting, snapshots, checkpoints, resume and signals.
"""
from __future__ import annotations

import abc
import dataclasses
import math
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ganzoo.acceleration import Acceleration
from ganzoo.errors import GanzooError


def forked_rng(device: torch.device):
    """A context in which random draws leave the global RNG (CPU, and ``device``'s if it is a
    GPU) as it was: sampling and summaries must not change what training draws next."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


@dataclass(frozen=True)
class DataSpec:
    """What a data set tells a model about its images."""

    resolution: int
    channels: int
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    #: Images per class in the training data (empty: unknown). Conditional GANs draw the
    #: labels of generated images from it, as StyleGAN2-ADA draws them from the data set's
    #: labels. Not part of equality: a resumed run may come from a checkpoint without it.
    label_counts: tuple[int, ...] = dataclasses.field(default=(), compare=False)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "class_names": list(self.class_names),
                "label_counts": list(self.label_counts)}

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        return cls(int(d["resolution"]), int(d["channels"]), int(d.get("num_classes", 0)),
                   tuple(d.get("class_names", ())),
                   tuple(int(n) for n in d.get("label_counts", ())))

    def label_weights(self) -> Tensor:
        """[num_classes] float weights to draw a label from: the data's class frequencies,
        or uniform when they are unknown."""
        if len(self.label_counts) == self.num_classes and sum(self.label_counts) > 0:
            return torch.tensor(self.label_counts, dtype=torch.float)
        return torch.ones(self.num_classes)


def option(default: Any, help: str, *, at_least: float | None = None,
           above: float | None = None, at_most: float | None = None,
           below: float | None = None, **metadata: Any) -> Any:
    """A Config field that becomes a documented CLI option (``--field-name``).

    ``choices=[...]`` in metadata restricts a string option; ``at_least``, ``above``,
    ``at_most`` and ``below`` bound a number (:func:`check_config` enforces them).
    """
    bounds = {k: v for k, v in (("at_least", at_least), ("above", above),
                                ("at_most", at_most), ("below", below)) if v is not None}
    return dataclasses.field(default=default, metadata={"help": help, **bounds, **metadata})


BOUNDS = {"at_least": (operator.ge, ">="), "above": (operator.gt, ">"),
          "at_most": (operator.le, "<="), "below": (operator.lt, "<")}


def check_config(config: Any) -> None:
    """Every number in a Config (or GenerateConfig) is finite and inside the bounds its
    option() declares. Checked before any network is built or run directory made: a nan
    learning rate or a zero latent size is one line, not a crash minutes later."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = "--" + f.name.replace("_", "-")
        if not math.isfinite(value):
            raise GanzooError(f"{flag} must be a finite number, got {value}")
        for key, (ok, sign) in BOUNDS.items():
            bound = f.metadata.get(key)
            if bound is not None and not ok(value, bound):
                raise GanzooError(f"{flag} must be {sign} {bound:g}, got {value:g}")


@dataclass(frozen=True)
class LatentSpace:
    """What an architecture lets ``ganzoo video|mix|truncation|project`` do with its
    generator's latents (:meth:`Architecture.latent_space`).

    Latents travel as ``[N, layers, dim]`` in the working space: z itself (``layers`` = 1)
    for a generator fed Gaussian noise, or the per-layer ws of a style-based generator, so
    interpolation, mixing and projection are one code path for both.
    """

    space: str                 # "z": the Gaussian input; "w": a style-based G's mapped latent
    dim: int                   # size of one latent vector in that space
    z_dim: int                 # size of the Gaussian input the seeds draw
    layers: int = 1            # latents one image takes (a style-based G: num_ws)
    truncation: bool = False   # truncation towards the mean latent (needs a mean w)
    noise_maps: bool = False   # per-layer noise inputs that projection may optimise

    @property
    def style_based(self) -> bool:
        return self.space == "w"

    @property
    def mixing(self) -> bool:
        """Different latents per layer (style mixing) are meaningful."""
        return self.style_based and self.layers > 1

    @property
    def interpolation(self) -> str:
        """Spherical for Gaussian z (a straight line cuts through the low-density centre of
        the shell where the samples live); linear in W, which is not Gaussian."""
        return "linear" if self.style_based else "spherical"


@dataclass
class GenerateRequest:
    """The common options of ``ganzoo generate NAME``, handed to an architecture that writes
    its own outputs (see :meth:`Architecture.generate_files`)."""

    checkpoint: str | None        # --checkpoint as given; None when not given
    runs: Path                    # where runs live (--runs)
    seeds: list[int] | None       # --seeds/--seed; None when not given
    out: Path                     # output directory (--out)
    device: torch.device
    trust: bool                   # --trust: allow checkpoints that need pickle code execution
    registry: Any                 # the plugin registry, to load checkpoints of any architecture


class Architecture(abc.ABC):
    """Base class of every generator in the zoo.

    Subclasses set ``name`` (kebab-case CLI name) and ``Config`` (a dataclass whose fields,
    declared with :func:`option`, become CLI options), and implement the abstract methods.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    #: Whether the model draws a given class. An architecture whose conditioning is an
    #: option (stylegan2-ada --cond) sets it per instance and checks the data's labels itself.
    conditional: bool = False
    #: What ``--class`` on an unconditional model tells the user to do instead.
    unconditional_hint: ClassVar[str] = "use a conditional model such as cgan"
    #: Whether generate() understands ``truncation_psi``.
    supports_truncation: ClassVar[bool] = False
    #: Whether generate() understands ``noise_mode`` ("const", "random" or "none").
    supports_noise_mode: ClassVar[bool] = False
    #: Resolutions this architecture can train at; None means any.
    resolutions: ClassVar[tuple[int, ...] | None] = None
    #: Defaults of ``ganzoo train``'s --batch and --kimg for this architecture.
    default_batch: ClassVar[int] = 64
    default_kimg: ClassVar[float] = 1000.0
    #: Whether train_step needs the data's labels although the model is not conditional
    #: (a classifier: DeepDream's backbone). Conditional models always get them.
    trains_on_labels: ClassVar[bool] = False
    #: Extra options of ``ganzoo generate NAME`` (a dataclass declared like Config), for
    #: architectures whose generation takes more than seeds (DeepDream: a photo, a layer,
    #: octaves). Such an architecture implements :meth:`generate_files`.
    GenerateConfig: ClassVar[type | None] = None
    #: Which of ``--compile`` ("compile") and ``--cuda-graphs`` ("cuda_graphs") train_step
    #: supports (ganzoo/acceleration.py); the trainer refuses the others with one line.
    accelerations: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any, data: DataSpec, device: torch.device):
        self.config = config
        self.data = data
        self.device = torch.device(device)
        self.check_resolution(data.resolution)

    @classmethod
    def check_resolution(cls, resolution: int) -> None:
        """Refuse a resolution this architecture cannot train at (the trainer asks before it
        prepares data: 5000 images at 100000 px would not fit in memory)."""
        if cls.resolutions is not None and resolution not in cls.resolutions:
            raise GanzooError(
                f"{cls.name} cannot train at resolution {resolution}; "
                f"supported: {', '.join(map(str, cls.resolutions))}")

    @property
    def batches_per_step(self) -> int:
        """Minibatches of ``--batch`` images one train_step consumes (n_critic for WGAN-GP:
        each critic update sees its own real minibatch, and kimg counts them all)."""
        return 1

    def preferred_batch(self) -> int:
        """The minibatch ``ganzoo train`` uses when --batch is not given; an architecture whose
        config derives it from the data overrides this (stylegan2-ada --cfg auto)."""
        return self.default_batch

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The optimisers whose gradients distributed training averages over the ranks before
        each step (ganzoo/distributed.py); by default every optimiser attribute."""
        return [v for v in vars(self).values() if isinstance(v, torch.optim.Optimizer)]

    def networks(self) -> list[nn.Module]:
        """The trained networks: distributed training starts them equal on every rank and
        turns their BatchNorm layers into SyncBatchNorm; by default every module attribute."""
        return [v for v in vars(self).values() if isinstance(v, nn.Module)]

    def discriminator_blocks(self) -> list[nn.Module]:
        """D's blocks in order from the image side, for ``--freeze-d N`` (which freezes the
        first N); [] means the architecture does not support freezing."""
        return []

    def discriminator_score(self, images: Tensor, labels: Tensor | None) -> Tensor | None:
        """D's realness logit per image ([N]; images NCHW in [-1, 1]), for ``ganzoo data
        expand --min-d-score``; None if the architecture has no discriminator."""
        return None

    def network_summary(self, batch: int) -> str | None:
        """A text table of the networks (layers, parameters, output shapes) for a minibatch
        of ``batch``, which training prints and writes to network.txt; None = nothing.
        It may run the networks, but must not change their state."""
        return None

    def accelerate(self, acceleration: Acceleration) -> None:
        """Switch train_step to compiled networks and/or captured CUDA graphs. Called once,
        after weights and optimiser states are loaded, with only what :attr:`accelerations`
        lists. The checkpointed state must not change: compile a wrapper, keep the modules."""
        if acceleration:
            raise NotImplementedError(f"{self.name} lists accelerations it does not implement")

    @abc.abstractmethod
    def train_step(self, reals: Tensor, labels: Tensor | None) -> dict[str, float | Tensor]:
        """One optimisation step on a batch of real images (NCHW, float in [-1, 1]).

        :return: scalar losses and statistics to log, e.g. ``{"loss_g": .., "loss_d": ..}``:
            floats, or detached 0-d tensors, which the trainer sums where they live and reads
            every few steps (on a GPU, ``.item()`` per value and step makes the host wait for
            the GPU each time).
        """

    @abc.abstractmethod
    def generate(self, n: int, *, seed: int | None = None, labels: Tensor | None = None,
                 **options: Any) -> Tensor:
        """Sample ``n`` images, NCHW float in [-1, 1], on this architecture's device.

        The same ``seed`` must give the same images; sampling must not change any state that
        training depends on (networks in eval mode, no global RNG use).
        """

    @abc.abstractmethod
    def state_dict(self) -> dict:
        """Everything needed to continue training: networks, EMA, optimisers, schedules.

        Only tensors and plain Python data, so checkpoints load with ``weights_only=True``.
        """

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    @classmethod
    def upgrade_checkpoint(cls, data: dict) -> dict:
        """A checkpoint's data written by an older version of this architecture, brought up
        to date (a changed weight layout, a new option's value for old runs). Called on every
        checkpoint before its config or state is used; returns new dicts, never edits
        ``data``. The default changes nothing."""
        return data

    @classmethod
    def generate_files(cls, request: GenerateRequest, options: Any) -> list[Path]:
        """Do what ``ganzoo generate NAME`` asks and return the files written.

        Called instead of the seeds-to-images path when ``GenerateConfig`` is set; ``options``
        is a ``GenerateConfig`` instance. A classmethod, because such an architecture may
        generate without a checkpoint of its own (DeepDream on ImageNet InceptionV1 weights).
        """
        raise NotImplementedError(f"{cls.name} declares GenerateConfig but not generate_files")

    # -- latent exploration (ganzoo video, mix, truncation, project) ----------------------

    def latent_space(self) -> LatentSpace | None:
        """The generator's latent space, or None when the architecture has none to explore
        (DeepDream). Architectures that return one implement the three methods below."""
        return None

    def map_latents(self, z: Tensor, labels: Tensor | None,
                    truncation_psi: float = 1.0) -> Tensor:
        """z [N, z_dim] (and class indices [N] for conditional models) -> working latents
        [N, layers, dim]; ``truncation_psi`` != 1 only where the space supports it."""
        raise GanzooError(f"{self.name} has no latent space to explore")

    def mean_latent(self, labels: Tensor | None) -> Tensor:
        """The working latent truncation pulls towards, [N, layers, dim]."""
        raise GanzooError(f"{self.name} does not support truncation")

    def render_latents(self, latents: Tensor, labels: Tensor | None, *,
                       noise_mode: str = "const", noise: dict[str, Tensor] | None = None
                       ) -> Tensor:
        """Images NCHW in [-1, 1] (not clamped: projection needs the gradient) from working
        latents. ``noise`` replaces named noise maps (style-based G, projection); under
        autograd when ``latents`` requires grad, otherwise as in :meth:`generate`."""
        raise GanzooError(f"{self.name} has no latent space to explore")

    def noise_maps(self) -> dict[str, Tensor]:
        """The generator's per-layer noise inputs by name (copies), for projection to start
        from; {} when there are none."""
        return {}

    # -- helpers for subclasses -----------------------------------------------------------

    def seeded_normal(self, n: int, dim: int, seed: int | None) -> Tensor:
        """``n`` latent vectors from N(0, 1): reproducible per seed, without touching the
        global RNG when a seed is given (so sampling cannot perturb training)."""
        if seed is None:
            return torch.randn(n, dim, device=self.device)
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, dim, generator=gen).to(self.device)

"""StyleGAN2-ADA as a ganzoo architecture: networks, optimisers, the generator's weight
average, the augmentation and its adaptive probability, and the training state.

One ``train_step`` is one minibatch of the published loop: the phases Gmain, Greg (every
``pl_interval`` minibatches), Dmain and Dreg (every ``r1_interval``), each its own Adam step
with the lazy-regularisation correction of learning rate and betas; then the EMA update of G
and, every 4 minibatches, the ADA update of p from the signs of D's outputs on reals.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

import numpy as np

import torch
from torch import Tensor, nn

from ganzoo import Architecture, DataSpec, distributed
from ganzoo.acceleration import (COMPILE, CUDA_GRAPHS, Acceleration, PhaseGraphs,
                                 compile_module, set_capturable)
from ganzoo.architecture import LatentSpace, forked_rng
from ganzoo.ema import GeneratorEMA
from ganzoo.errors import GanzooError
from ganzoo.augment.ada import AdaController
from ganzoo.augment.pipeline import AugmentPipe
from ganzoo_plugins.stylegan2_ada.config import (ADAM_BETAS, ADAM_EPS, PL_BATCH_SHRINK,
                                                 PL_DECAY, StyleGAN2ADAConfig, cfg_batch,
                                                 lazy_adam, resolve)
from ganzoo_plugins.stylegan2_ada.loss import LossSettings, Networks, Stats, StyleGAN2Loss
from ganzoo_plugins.stylegan2_ada.networks import Discriminator, Generator, NetworkSpec
from ganzoo_plugins.stylegan2_ada.summary import network_summary

ADA_INTERVAL = 4          # minibatches between updates of p
# The state's layout: 1 = up-sampling kernels (synthesis.bN.conv0.weight) stored flipped, as
# ganzoo applied them as correlations until 2026-11; 2 = the official layout (applied as a
# true convolution), so state dicts are interchangeable with the official networks'.
# upgrade_checkpoint() brings layout 1 up to date.
LAYOUT = 2
UP_KERNEL = re.compile(r"^synthesis\.b\d+\.conv0\.weight$")
BUFFER_NAMES = ("w_avg", "noise_const", "resample_filter")
GENERATE_CHUNK = 32       # images per forward pass in generate(), to bound memory

# () -> (loss, stats, D's logits on the augmented reals or None): one phase's forward pass
Phase = Callable[[], tuple[Tensor, Stats, "Tensor | None"]]


def _complete_gradients(module: nn.Module) -> None:
    """Every parameter gets a finite gradient, in one walk over the parameters.

    - A parameter the phase's loss does not reach gets a zero gradient, not None (see
      :meth:`StyleGAN2ADA._run`).
    - fp16 layers can overflow, and a non-finite entry must not poison Adam's moments: NaN
      becomes 0 and +-inf +-1e5, as in the original implementation, on one flat copy (three
      kernels instead of one per parameter)."""
    grads = []
    for param in module.parameters():
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        grads.append(param.grad)
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.nan_to_num_(flat, nan=0.0, posinf=1e5, neginf=-1e5)
    torch._foreach_copy_(grads, [part.view_as(g) for part, g in
                                 zip(flat.split([g.numel() for g in grads]), grads)])


def flip_up_kernels(g_state: dict) -> dict:
    """A generator state dict with its up-sampling kernels flipped on both spatial axes
    (between ganzoo's layout 1 and the official layout; the flip is its own inverse)."""
    return {k: v.flip([2, 3]) if UP_KERNEL.match(k) else v for k, v in g_state.items()}


def _cdf(weights: Tensor) -> Tensor:
    """The cumulative distribution of ``weights`` (normalised), ending at 1."""
    cdf = weights.double().cumsum(0)
    return (cdf / cdf[-1]).float()


def network_spec(config: StyleGAN2ADAConfig, data: DataSpec) -> NetworkSpec:
    """The networks a resolved config asks for."""
    c = config
    return NetworkSpec(resolution=data.resolution, channels=data.channels,
                       c_dim=data.num_classes if c.cond else 0, z_dim=c.z_dim, w_dim=c.w_dim,
                       mapping_layers=c.map, d_mapping_layers=c.d_map,
                       d_architecture=c.d_arch,
                       channel_base=c.cbase, channel_max=c.cmax,
                       num_fp16_res=c.fp16_res, conv_clamp=c.conv_clamp_value,
                       mbstd_group=c.mbstd_group)


class StyleGAN2ADA(Architecture):
    """StyleGAN2 with adaptive discriminator augmentation (Karras et al. 2020).

    --cfg picks the published hyperparameters (every one overridable); --cond trains a
    class-conditional model on the data's labels."""

    name = "stylegan2-ada"
    Config = StyleGAN2ADAConfig
    supports_truncation = True
    supports_noise_mode = True
    unconditional_hint = "train it with --cond"
    resolutions = tuple(2 ** i for i in range(3, 12))     # 8 ... 2048
    default_batch = 32            # --cfg auto at 64x64; preferred_batch() follows --cfg
    default_kimg = 25000.0        # the published training length
    accelerations = frozenset({COMPILE, CUDA_GRAPHS})

    def __init__(self, config: StyleGAN2ADAConfig, data: DataSpec, device: torch.device):
        super().__init__(config, data, device)
        if config.cond and not data.num_classes:
            raise GanzooError("--cond: the data has no labels (use class subfolders or a "
                              "labelled data set), or train without --cond")
        # The resolved config is what config.json and checkpoints record.
        self.config = c = resolve(config, data.resolution)
        self.conditional = c.cond
        spec = network_spec(c, data)
        self.G = Generator(spec).to(self.device).requires_grad_(False)
        self.D = Discriminator(spec).to(self.device).requires_grad_(False)
        self.ema = GeneratorEMA(self.G, c.ema, c.ema_rampup or None)
        self.augment_pipe = AugmentPipe(c.augpipe).to(self.device) if c.aug != "none" else None
        if self.augment_pipe is not None:
            self.augment_pipe.p.copy_(torch.as_tensor(c.p))
        self.ada = AdaController(c.target, ADA_INTERVAL, c.ada_kimg, c.p) \
            if c.aug == "ada" else None
        self.loss = StyleGAN2Loss(self.G, self.D, LossSettings(
            c.gamma, c.pl_weight, c.style_mixing, c.r1_interval, c.pl_interval,
            PL_BATCH_SHRINK, PL_DECAY), augment=self.augment_pipe)
        self.opt_g = self._adam(self.G, c.pl_interval)
        self.opt_d = self._adam(self.D, c.r1_interval)
        self.batch_idx = 0        # minibatches trained: schedules the lazy phases
        self.images_seen = 0      # what the EMA ramp-up counts
        # r1 and pl are computed every 16th / 4th minibatch; the latest values are logged
        # every minibatch, so the trainer's per-tick means are means of current values.
        self.held: Stats = {}
        # Fake labels are drawn by inverting this CDF (a search, no host wait: capturable).
        self._label_cdf = _cdf(data.label_weights()).to(self.device) if c.cond else None
        self.graphs: PhaseGraphs | None = None     # --cuda-graphs

    def accelerate(self, acceleration: Acceleration) -> None:
        """--compile: G's mapping and synthesis and D, compiled, run the main phases (the
        regularisers differentiate twice, which compiled graphs cannot, so they stay eager).
        --cuda-graphs: each phase (forward, backward, Adam) is captured and replayed; Adam
        then keeps its step counts on the GPU (capturable)."""
        if acceleration.compile:
            self.loss.main = Networks(compile_module(self.G.mapping),
                                      compile_module(self.G.synthesis), compile_module(self.D))
        if acceleration.cuda_graphs:
            for opt in (self.opt_g, self.opt_d):
                set_capturable(opt, True)
            self.graphs = PhaseGraphs()

    def _adam(self, module: nn.Module, reg_interval: int) -> torch.optim.Adam:
        lr, betas = lazy_adam(self.config.lr, ADAM_BETAS, reg_interval)
        # fused: one kernel for every parameter on the GPU (the multi-tensor default launches
        # several per step); the same update.
        return torch.optim.Adam(module.parameters(), lr=lr, betas=betas, eps=ADAM_EPS,
                                fused=self.device.type == "cuda" or None)

    @torch.no_grad()
    def discriminator_score(self, images: Tensor, labels: Tensor | None) -> Tensor:
        images = images.to(self.device)
        return self.D(images, self._one_hot(labels, images.shape[0])).flatten()

    def discriminator_blocks(self) -> list[nn.Module]:
        """bR (with fromRGB), ..., b8, then the epilogue b4."""
        return [getattr(self.D, f"b{r}") for r in self.D.block_resolutions] + [self.D.b4]

    def preferred_batch(self) -> int:
        return cfg_batch(self.config, self.data.resolution)

    # -- training --------------------------------------------------------------------------------

    def train_step(self, reals: Tensor, labels: Tensor | None) -> Stats:
        n, c = reals.shape[0], self.config
        self._check_batch(n)
        cond = self._one_hot(labels, n)
        if self.graphs is not None:      # captured phases read their inputs from fixed places
            reals, cond = self.graphs.static("reals", reals), self.graphs.static("cond", cond)
        z = lambda: torch.randn(n, c.z_dim, device=self.device)  # noqa: E731
        due = lambda interval: self.batch_idx % interval == 0    # noqa: E731
        stats = self._phase("Gmain", self.G, self.opt_g,
                            lambda: (*self.loss.generator_main(z(), self._fake_cond(n)), None))
        if c.pl_weight > 0 and due(c.pl_interval):
            self.held.update(self._phase("Greg", self.G, self.opt_g, lambda: (
                *self.loss.generator_reg(z(), self._fake_cond(n)), None)))
        stats |= self._phase("Dmain", self.D, self.opt_d, lambda: self._discriminator_main(
            reals, cond, z(), self._fake_cond(n)))
        if c.gamma > 0 and due(c.r1_interval):
            self.held.update(self._phase("Dreg", self.D, self.opt_d,
                                         lambda: self.loss.discriminator_reg(reals, cond)))
        n_all = n * distributed.world_size()    # images of the global minibatch
        self.ema.update(self.G, n_all, self.images_seen)  # ramp-up: images before this one
        self.images_seen += n_all
        self.batch_idx += 1
        if self.ada is not None:
            p = self.ada.step(n_all)
            if p is not None:
                self.augment_pipe.p.copy_(torch.as_tensor(p))
        return {**stats, **self.held, "augment_p": self.augment_p}

    def _fake_cond(self, n: int) -> Tensor:
        """Class vectors of ``n`` generated images, drawn afresh for each phase from the data
        set's label frequencies (the official loop draws them from random images' labels),
        independently of the real minibatch's labels."""
        if not self.conditional:
            return torch.zeros(n, 0, device=self.device)
        u = torch.rand(n, device=self.device)
        labels = torch.searchsorted(self._label_cdf, u, right=True)
        labels.clamp_(max=self.data.num_classes - 1)   # a u that rounds to the CDF's end
        return nn.functional.one_hot(labels, self.data.num_classes).float()

    def _discriminator_main(self, reals: Tensor, cond: Tensor, z: Tensor, fake_cond: Tensor
                            ) -> tuple[Tensor, Stats, Tensor]:
        loss, stats, real_logits = self.loss.discriminator_main(reals, cond, z, fake_cond)
        # The sign mean of this minibatch: its mean over a tick is that tick's r_t.
        return loss, {**stats, "rt": real_logits.sign().mean()}, real_logits

    def _phase(self, name: str, module: nn.Module, opt: torch.optim.Optimizer, phase: Phase
               ) -> Stats:
        """One phase, eager or as a replayed CUDA graph (one per phase and augmentation on or
        off: the pipe skips its work at p = 0). D's logits on the augmented reals (Dmain and
        Dreg: the official r_t counts both) go to ADA after the phase."""
        run = lambda: self._run(module, opt, phase)     # noqa: E731
        if self.graphs is None:
            stats, real_logits = run()
        else:
            stats, real_logits = self.graphs.run((name, self.augment_p > 0), run)
        if real_logits is not None and self.ada is not None:
            self.ada.accumulate(real_logits)
        return stats

    @staticmethod
    def _run(module: nn.Module, opt: torch.optim.Optimizer, phase: Phase
             ) -> tuple[Stats, Tensor | None]:
        """One phase: gradients of ``phase()``'s loss for ``module`` only, one Adam step.

        Parameters the phase's loss does not reach (toRGB biases under the path-length
        penalty, D's output bias under R1) get a zero gradient, not None: the official loss
        adds the images or logits times 0 for exactly that, so Adam counts the step and
        decays their moments. With None, Adam would skip them and their later steps would
        come out larger (11.7% for G's, 3.1% for D's, measured at steady state)."""
        module.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        loss, stats, real_logits = phase()
        loss.backward()
        _complete_gradients(module)
        opt.step()
        module.requires_grad_(False)
        return stats, real_logits

    def _check_batch(self, n: int) -> None:
        group = min(self.config.mbstd_group, n)
        if n % group:
            raise GanzooError(f"--batch {n} is not a multiple of the minibatch-stddev group "
                              f"{group} (--mbstd-group)")

    def _one_hot(self, labels: Tensor | None, n: int) -> Tensor:
        """[N, num_classes] one-hot class vectors; [N, 0] when unconditional."""
        if not self.conditional:
            return torch.zeros(n, 0, device=self.device)
        if labels is None:
            raise GanzooError("stylegan2-ada --cond needs labels for every minibatch")
        return nn.functional.one_hot(labels.to(self.device).long(),
                                     self.data.num_classes).float()

    @property
    def augment_p(self) -> float:
        return self.augment_pipe.probability if self.augment_pipe is not None else 0.0

    # -- sampling --------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, n: int, *, seed: int | None = None, labels: Tensor | None = None,
                 truncation_psi: float = 1.0, noise_mode: str = "const", **options) -> Tensor:
        """Images from the weight-averaged generator. ``noise_mode`` "const" (default) uses
        each layer's fixed noise image, "random" draws it (from ``seed``), "none" leaves it
        out. ``labels`` [n] or one class for all (conditional models only; None cycles
        through the classes)."""
        if options:
            raise TypeError(f"unknown generate options: {', '.join(options)}")
        z = self.seeded_normal(n, self.config.z_dim, seed)
        if labels is not None and not self.conditional:
            raise GanzooError("labels given, but this stylegan2-ada model is unconditional "
                              "(train with --cond)")
        if self.conditional and labels is None:   # no class asked for: cycle through them
            labels = torch.arange(n, device=self.device) % self.data.num_classes
        if labels is not None:
            labels = labels.to(self.device).expand(n) if labels.numel() == 1 else labels
        cond = self._one_hot(labels, n)
        G = self.ema.model
        with forked_rng(self.device):                      # random noise: seeded, and no
            if seed is not None:                           # effect on training's RNG
                torch.manual_seed(seed)
            images = [G(zc, cc, truncation_psi=truncation_psi, noise_mode=noise_mode)
                      for zc, cc in zip(z.split(GENERATE_CHUNK), cond.split(GENERATE_CHUNK))]
        return torch.cat(images).clamp(-1, 1)

    def seeded_normal(self, n: int, dim: int, seed: int | None) -> Tensor:
        """z as the official generate.py draws it, ``numpy.random.RandomState(seed)
        .randn(n, dim)``, so a network imported from an official pickle gives the official
        tool's images for the same seeds (seeds past 2^32, which it refuses, are split into
        two 32-bit words)."""
        if seed is None:
            return super().seeded_normal(n, dim, None)
        seed = int(seed)
        rng = np.random.RandomState(seed if seed < 2 ** 32 else [seed & 0xFFFFFFFF, seed >> 32])
        return torch.from_numpy(rng.randn(n, dim)).float().to(self.device)

    # -- latent exploration: W space, per-layer ws, truncation around w_avg -----------------

    def latent_space(self) -> LatentSpace:
        G = self.ema.model
        return LatentSpace(space="w", dim=G.w_dim, z_dim=G.z_dim, layers=G.num_ws,
                           truncation=True, noise_maps=True)

    def _cond(self, labels: Tensor | None, n: int) -> Tensor:
        """One-hot classes; a conditional model without labels draws class 0, as
        generate() does for a single image."""
        if self.conditional and labels is None:
            labels = torch.zeros(n, dtype=torch.long)
        if labels is not None and labels.numel() == 1:
            labels = labels.reshape(1).expand(n)
        return self._one_hot(labels if self.conditional else None, n)

    @torch.no_grad()
    def map_latents(self, z: Tensor, labels: Tensor | None,
                    truncation_psi: float = 1.0) -> Tensor:
        z = z.to(self.device)
        return self.ema.model.mapping(z, self._cond(labels, z.shape[0]),
                                      truncation_psi=truncation_psi)

    def mean_latent(self, labels: Tensor | None) -> Tensor:
        G = self.ema.model
        n = 1 if labels is None else labels.numel()
        return G.mapping.w_avg[None, None, :].expand(n, G.num_ws, -1).clone()

    def render_latents(self, latents: Tensor, labels: Tensor | None, *,
                       noise_mode: str = "const", noise: dict[str, Tensor] | None = None
                       ) -> Tensor:
        synthesis = self.ema.model.synthesis
        with torch.set_grad_enabled(latents.requires_grad):
            if not noise:
                return synthesis(latents.to(self.device), noise_mode=noise_mode)
            # Swapped in for this call only: the network's own noise buffers stay as they are.
            return torch.func.functional_call(synthesis, noise, (latents.to(self.device),),
                                              {"noise_mode": "const"}, strict=False)

    def noise_maps(self) -> dict[str, Tensor]:
        return {name: buf.detach().clone() for name, buf in
                self.ema.model.synthesis.named_buffers() if name.endswith("noise_const")}

    # -- network summary -------------------------------------------------------------------------

    @torch.no_grad()
    def network_summary(self, batch: int) -> str:
        """The G and D layer tables (Appendix B layout). The networks run on one sample
        (cheap at any resolution); output shapes are shown for a minibatch of ``batch``."""
        gen = torch.Generator().manual_seed(0)
        z = torch.randn(1, self.config.z_dim, generator=gen).to(self.device)
        cond = self._one_hot(torch.zeros(1, dtype=torch.long) if self.conditional else None, 1)
        img = torch.randn(1, self.data.channels, self.data.resolution, self.data.resolution,
                          generator=gen).to(self.device)
        tables = [network_summary(self.G, z, cond, title="Generator"),
                  network_summary(self.D, img, cond, title="Discriminator")]
        for table in tables:
            table.rows = [dataclasses.replace(r, shape=(batch, *r.shape[1:]))
                          if r.shape else r for r in table.rows]
        return "\n\n".join(t.format() for t in tables)

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.ema.model.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "pl_mean": self.loss.pl_mean.clone(), "augment_p": self.augment_p,
                "ada": self.ada.state_dict() if self.ada is not None else None,
                "batch_idx": self.batch_idx, "images_seen": self.images_seen,
                "held": {k: float(v) for k, v in self.held.items()}, "layout": LAYOUT}

    @classmethod
    def upgrade_checkpoint(cls, data: dict) -> dict:
        """Layout 1 (before 2026-11) to 2: flip the up-sampling kernels of G and G_ema and
        their Adam moments, and keep D as it was built: a conditional D's label mapping of
        --map layers (now --d-map, default 8), residual blocks (now --d-arch)."""
        state = data["state"]
        if state.get("layout", 1) >= LAYOUT:
            return data
        G = state["G"]
        param_names = [k for k in G if k.rsplit(".", 1)[-1] not in BUFFER_NAMES]
        up_params = {i for i, k in enumerate(param_names) if UP_KERNEL.match(k)}
        opt_g = {**state["opt_g"], "state": {
            i: {k: v.flip([2, 3]) if i in up_params and k.startswith("exp_avg") else v
                for k, v in moments.items()}
            for i, moments in state["opt_g"]["state"].items()}}
        state = {**state, "G": flip_up_kernels(G), "G_ema": flip_up_kernels(state["G_ema"]),
                 "opt_g": opt_g, "layout": LAYOUT}
        # Layout 1 built a conditional D's label mapping with --map layers and every D
        # residual (its --cfg cifar too).
        config = {"d_map": data["config"].get("map"), "d_arch": "resnet", **data["config"]}
        return {**data, "config": config, "state": state}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.model.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.loss.pl_mean.copy_(state["pl_mean"])
        for opt in (self.opt_g, self.opt_d):     # as saved under --cuda-graphs or not
            set_capturable(opt, self.graphs is not None)
        if self.augment_pipe is not None:
            self.augment_pipe.p.copy_(torch.as_tensor(state["augment_p"]))
        if self.ada is not None and state.get("ada") is not None:
            self.ada.load_state_dict(state["ada"])
        self.batch_idx = int(state["batch_idx"])
        self.images_seen = int(state["images_seen"])
        self.held = dict(state.get("held", {}))

"""StyleGAN2 generator and residual discriminator, as in StyleGAN2-ADA's "auto" configuration.

Facts from Karras et al. 2020 ("Analyzing and Improving the Image Quality of StyleGAN",
"Training GANs with Limited Data"); the per-layer parameter, buffer and shape table these
modules reproduce at 64x64 is Appendix B of ../shared/seeds/001_*.txt.

Generator: z -> mapping (FC layers, lr multiplier 0.01) -> w, broadcast to one w per layer
(``num_ws``) -> synthesis: a learned 4x4 constant, then per resolution two modulated 3x3 convs
(the first upsamples with the [1, 3, 3, 1] FIR filter), per-pixel noise, and a toRGB layer
whose outputs are upsampled and summed ("skip" architecture).

Discriminator: fromRGB at full resolution, then residual blocks halving the resolution (conv
3x3, conv 3x3 + down, plus a 1x1 skip conv + down, summed and scaled by sqrt(1/2) to keep the
variance), and at 4x4 minibatch standard deviation, conv, FC, output (projection onto an
embedding of the class when conditional).

Every layer uses the equalised learning rate: weights are stored N(0, 1) / lr_mul and scaled
by lr_mul / sqrt(fan_in) at run time (biases by lr_mul), so Adam's per-parameter step sizes
are the same for every layer whatever its fan-in.

Precision: blocks at the top ``num_fp16_res`` resolutions compute in float16 on CUDA (their
``use_fp16`` attribute); on other devices everything is float32, as CPU fp16 convolutions are
slow or missing. ``conv_clamp`` bounds conv outputs so fp16 activations stay finite.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ganzoo.ops import (ACTIVATIONS, bias_act, conv2d_resample, modulated_conv2d,
                        setup_filter, upsample2d)

RESAMPLE_FILTER = (1, 3, 3, 1)
NOISE_MODES = ("random", "const", "none")
D_ARCHITECTURES = ("resnet", "orig")
# Devices where blocks planned in fp16 really compute in fp16 (CPU fp16 convolutions are slow).
FP16_DEVICES = ("cuda",)


@dataclass(frozen=True)
class NetworkSpec:
    resolution: int            # output resolution, a power of two >= 8
    channels: int              # image channels (1 or 3)
    c_dim: int = 0             # number of classes; 0 = unconditional
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 2    # mapping depth (auto config: 2, paper configs: 8)
    d_mapping_layers: int = 8  # D's label mapping depth (conditional D only; see the config)
    d_architecture: str = "resnet"   # "resnet" (residual blocks) or "orig" (plain conv stack)
    channel_base: int = 16384  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    num_fp16_res: int = 4      # the top N resolutions run in fp16 (on CUDA only; fp32 on CPU)
    conv_clamp: float | None = 256
    mbstd_group: int = 4
    mbstd_channels: int = 1

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {r}")
        if self.d_architecture not in D_ARCHITECTURES:
            raise ValueError(f"d_architecture must be one of {D_ARCHITECTURES}, got "
                             f"{self.d_architecture!r}")

    @property
    def block_resolutions(self) -> list[int]:
        """[4, 8, ..., resolution]."""
        return [2 ** i for i in range(2, int(math.log2(self.resolution)) + 1)]

    def channels_at(self, resolution: int) -> int:
        return min(self.channel_base // resolution, self.channel_max)

    def uses_fp16(self, resolution: int) -> bool:
        """Whether the block at ``resolution`` is planned in fp16; 4x4 never is (the mapping's
        output and the discriminator's epilogue stay float32)."""
        lowest_fp16 = max(2 ** (int(math.log2(self.resolution)) + 1 - self.num_fp16_res), 8)
        return resolution >= lowest_fp16


def check_shape(t: Tensor | None, shape: Sequence[int | None], what: str) -> None:
    """Raise ValueError unless ``t`` is a tensor of ``shape`` (None matches any size)."""
    if (t is None or t.ndim != len(shape)
            or any(s is not None and s != n for s, n in zip(shape, t.shape))):
        expected = ["*" if s is None else s for s in shape]
        got = None if t is None else list(t.shape)
        raise ValueError(f"{what}: expected shape {expected}, got {got}")


def compute_dtype(use_fp16: bool, device: torch.device, force_fp32: bool) -> torch.dtype:
    fp16 = use_fp16 and not force_fp32 and device.type in FP16_DEVICES
    return torch.float16 if fp16 else torch.float32


def block_layout(dtype: torch.dtype) -> torch.memory_format:
    """fp16 blocks run channels-last: cuDNN's fp16 convolutions work in that layout (given
    NCHW, it converted back and forth: 12% of the GPU time of a 64x64 step), and the CUDA
    upfirdn2d and bias_act keep it. fp32 blocks keep their input's layout (no copy; on a CPU
    everything is fp32, as before). The layout changes no value."""
    return torch.channels_last if dtype == torch.float16 else torch.preserve_format


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """[N, F] scaled so each row has mean square 1 (z then lies near the sphere of radius
    sqrt(F) whatever its distribution's scale)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


# --------------------------------------------------------------------------------------------
# Equalised-learning-rate layers


class FullyConnectedLayer(nn.Module):
    """[N, in_features] -> [N, out_features]: act(x @ (W * lr_mul / sqrt(in)).T + b * lr_mul)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 bias_init: float = 0.0, lr_mul: float = 1.0, activation: str = "linear"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        # Stored divided by lr_mul so that the effective initial bias is bias_init.
        self.bias = (nn.Parameter(torch.full([out_features], bias_init / lr_mul))
                     if bias else None)
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b, x, w.t())
        return bias_act(x @ w.t(), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    """[N, I, H, W] -> [N, O, H / down, W / down]: conv kxk ('same' padding), FIR down-sampling,
    bias, activation, clamp. The discriminator's layer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # Every conv layer owns its filter (as in the table this reproduces), so a layer can
        # be used on its own.
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        """``gain`` scales the output (and the clamp), e.g. sqrt(1/2) before a residual sum."""
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w, self.resample_filter, down=self.down, padding=self.padding)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        act_gain = ACTIVATIONS[self.activation].default_gain * gain
        return bias_act(x, self.bias, act=self.activation, gain=act_gain, clamp=clamp)


# --------------------------------------------------------------------------------------------
# Mapping network


class MappingNetwork(nn.Module):
    """z [N, z_dim], c [N, c_dim] -> w [N, w_dim] ([N, num_ws, w_dim] when num_ws is set).

    z and the class embedding are each normalised to unit second moment, concatenated and sent
    through ``num_layers`` FC + lrelu layers with learning rate multiplier ``lr_mul``.
    ``w_avg`` (only when num_ws is set) tracks the mean w for the truncation trick.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None,
                 num_layers: int = 2, lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        if z_dim + c_dim == 0:
            raise ValueError("the mapping network needs z_dim > 0 or c_dim > 0")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        features = [z_dim + embed_features] + [w_dim] * num_layers
        for i in range(num_layers):
            self.add_module(f"fc{i}", FullyConnectedLayer(features[i], features[i + 1],
                                                          lr_mul=lr_mul, activation="lrelu"))
        self.num_layers = num_layers
        if num_ws is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor | None, c: Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> Tensor:
        parts = []
        if self.z_dim > 0:
            check_shape(z, [None, self.z_dim], "mapping z")
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            check_shape(c, [None, self.c_dim], "mapping c")
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.num_ws is None:
            return x

        if update_emas:
            with torch.no_grad():
                self.w_avg.lerp_(x.detach().mean(dim=0), 1 - self.w_avg_beta)
        x = x[:, None, :].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :cut], truncation_psi), x[:, cut:]], dim=1)
        return x


# --------------------------------------------------------------------------------------------
# Synthesis network


class SynthesisLayer(nn.Module):
    """[N, I, H, W], w [N, w_dim] -> [N, O, R, R] (R = H, or 2H with up=2): modulated and
    demodulated 3x3 conv, per-pixel noise scaled by a learned strength, bias, lrelu, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 kernel_size: int = 3, up: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER))
        # Equalised lr for the modulated weight; demodulation cancels it, but applying it
        # keeps the layer correct if demodulation is ever switched off.
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random",
                fused: bool | None = None) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        # The up-sampling kernel is stored in the official layout: applied as a true
        # (transposed) convolution, i.e. flipped relative to ganzoo's correlation ops. Keeping
        # that layout makes state dicts interchangeable with the official networks'.
        weight = self.weight.flip([2, 3]) if self.up > 1 else self.weight
        x = modulated_conv2d(x, weight, styles, demodulate=True, up=self.up,
                             resample_filter=self.resample_filter, fused=fused)
        check_shape(x, [None, None, self.resolution, self.resolution], "synthesis layer")
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution,
                                device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength.to(x.dtype)
        return bias_act(x, self.bias, act="lrelu", clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """[N, I, H, W], w [N, w_dim] -> [N, img_channels, H, W]: modulated 1x1 conv without
    demodulation (the style sets the output's scale), bias, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor, fused: bool | None = None) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network.

    (x [N, I, R/2, R/2] or None at 4x4, img [N, C, R/2, R/2] or None, ws [N, num_ws, w_dim])
    -> (x [N, O, R, R] in the block's dtype, img [N, C, R, R] float32).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int, use_fp16: bool, conv_clamp: float | None):
        super().__init__()
        self.resolution, self.use_fp16 = resolution, use_fp16
        self.in_channels = in_channels
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                    conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER))
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_ws = self.num_conv + 1  # the toRGB's w is the next block's first

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor,
                noise_mode: str = "random", force_fp32: bool = False,
                fused: bool | None = None) -> tuple[Tensor, Tensor]:
        dtype = compute_dtype(self.use_fp16, ws.device, force_fp32)
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:     # the 4x4 block, never fp16
            x = self.const.to(dtype)[None].expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x.to(dtype=dtype, memory_format=block_layout(dtype)), next(w_iter),
                           noise_mode, fused)
        x = self.conv1(x, next(w_iter), noise_mode, fused)
        y = self.torgb(x, next(w_iter), fused).float()
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, resolution, resolution] float32.

    Blocks are attributes ``b4``, ``b8``, ...; block b uses ws[k : k + b.num_ws] where k
    counts the convs of the blocks before it, so each toRGB shares its w with the next conv.
    """

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.w_dim, self.resolution = spec.w_dim, spec.resolution
        self.block_resolutions = spec.block_resolutions
        self.num_ws = 0
        in_channels = 0
        for res in self.block_resolutions:
            out_channels = spec.channels_at(res)
            block = SynthesisBlock(in_channels, out_channels, spec.w_dim, res, spec.channels,
                                   spec.uses_fp16(res), spec.conv_clamp)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
            in_channels = out_channels
        self.num_ws += 1  # the last toRGB

    def forward(self, ws: Tensor, noise_mode: str = "random", force_fp32: bool = False,
                fused: bool | None = None) -> Tensor:
        """``fused``: modulated-conv path (see :func:`ganzoo.ops.modulated_conv2d`); None =
        that function's default."""
        check_shape(ws, [None, self.num_ws, self.w_dim], "synthesis ws")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, "
                             f"got {noise_mode!r}")
        ws = ws.float()
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_ws], noise_mode, force_fp32,
                           fused)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    """(z [N, z_dim], c [N, c_dim]) -> images [N, channels, resolution, resolution] float32,
    roughly in [-1, 1]."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        self.z_dim, self.c_dim, self.w_dim = spec.z_dim, spec.c_dim, spec.w_dim
        self.resolution, self.img_channels = spec.resolution, spec.channels
        self.synthesis = SynthesisNetwork(spec)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(spec.z_dim, spec.c_dim, spec.w_dim, self.num_ws,
                                      num_layers=spec.mapping_layers)

    def forward(self, z: Tensor, c: Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random",
                update_emas: bool = False) -> Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi,
                          truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode)


# --------------------------------------------------------------------------------------------
# Discriminator


class MinibatchStdLayer(nn.Module):
    """[N, C, H, W] -> [N, C + num_channels, H, W]: appends the standard deviation across a
    group of samples (averaged over features and pixels), so D can see a lack of variety.

    The batch splits into N / G groups of G = min(group_size, N) samples (sample n is in group
    n mod (N / G)); G must divide N. The C channels split into ``num_channels`` slices, each
    giving one appended channel.
    """

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.shape
        G, Fc = min(self.group_size, N), self.num_channels
        if N % G:
            raise ValueError(f"minibatch stddev: batch {N} is not a multiple of the group "
                             f"size {G}")
        y = x.float().reshape(G, N // G, Fc, C // Fc, H, W)
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()       # [N/G, Fc, C/Fc, H, W]
        std = std.mean(dim=[2, 3, 4])                             # [N/G, Fc]
        std = std.reshape(1, N // G, Fc, 1, 1).expand(G, -1, -1, H, W).reshape(N, Fc, H, W)
        return torch.cat([x, std.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorBlock(nn.Module):
    """Residual block: [N, I, R, R] -> [N, O, R/2, R/2] in the block's dtype (the top block
    takes the image [N, img_channels, R, R] and starts with fromRGB). With ``residual``
    False it is the original StyleGAN2 paper's plain block (conv, conv + down; no skip),
    which StyleGAN2-ADA's CIFAR-10 configuration uses."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int,
                 img_channels: int, resolution: int, use_fp16: bool,
                 conv_clamp: float | None, residual: bool = True):
        super().__init__()
        self.resolution, self.use_fp16 = resolution, use_fp16
        self.is_top = in_channels == 0
        self.residual = residual
        if self.is_top:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu",
                                       conv_clamp=conv_clamp)
        if residual:
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu",
                                 conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2,
                                 conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER))

    def forward(self, x: Tensor, force_fp32: bool = False) -> Tensor:
        dtype = compute_dtype(self.use_fp16, x.device, force_fp32)
        x = x.to(dtype=dtype, memory_format=block_layout(dtype))
        if self.is_top:
            x = self.fromrgb(x)
        if not self.residual:
            return self.conv1(self.conv0(x))
        # Each branch scaled by sqrt(1/2): the sum of two unit-variance branches stays at 1.
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """[N, C, 4, 4] (and cmap [N, cmap_dim] when conditional) -> logits [N, 1], float32."""

    use_fp16 = False

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, mbstd_group: int,
                 mbstd_channels: int, conv_clamp: float | None):
        super().__init__()
        self.resolution, self.cmap_dim = resolution, cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group, mbstd_channels) if mbstd_channels else None
        self.conv = Conv2dLayer(in_channels + mbstd_channels, in_channels, 3,
                                activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels,
                                      activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: Tensor, cmap: Tensor | None) -> Tensor:
        x = x.float()
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.fc(self.conv(x).flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            # Projection discriminator: the logit is the output's agreement with the class.
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class Discriminator(nn.Module):
    """(img [N, channels, R, R], c [N, c_dim]) -> logits [N, 1] float32.

    Blocks ``b{R}``, ..., ``b8`` (residual, halving the resolution) and the epilogue ``b4``;
    when conditional, ``mapping`` embeds c into cmap [N, cmap_dim] (cmap_dim = the channels at
    4x4).
    """

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        self.c_dim, self.resolution, self.img_channels = spec.c_dim, spec.resolution, spec.channels
        self.block_resolutions = spec.block_resolutions[::-1][:-1]  # [R, ..., 8]
        in_channels = 0
        for res in self.block_resolutions:
            tmp = spec.channels_at(res)
            block = DiscriminatorBlock(in_channels, tmp, spec.channels_at(res // 2),
                                       spec.channels, res, spec.uses_fp16(res), spec.conv_clamp,
                                       residual=spec.d_architecture == "resnet")
            setattr(self, f"b{res}", block)
            in_channels = tmp
        self.cmap_dim = spec.channels_at(4) if spec.c_dim > 0 else 0
        if spec.c_dim > 0:
            self.mapping = MappingNetwork(0, spec.c_dim, self.cmap_dim, None,
                                          num_layers=spec.d_mapping_layers)
        self.b4 = DiscriminatorEpilogue(spec.channels_at(4), self.cmap_dim, 4, spec.mbstd_group,
                                        spec.mbstd_channels, spec.conv_clamp)

    def forward(self, img: Tensor, c: Tensor | None, force_fp32: bool = False) -> Tensor:
        check_shape(img, [None, self.img_channels, self.resolution, self.resolution],
                    "discriminator img")
        x = img
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)

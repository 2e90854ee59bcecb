"""ArchitectureContract: what every architecture plugin promises the trainer and the CLI.

Each test names one promise, so a failure says which one a plugin breaks. Training runs on
synthetic batches (seeded noise images), on the CPU unless ``device`` says otherwise.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

from ganzoo.architecture import Architecture, DataSpec
from ganzoo.testing.marks import contract_test
from ganzoo.testing.states import differences, weights_only_round_trip

Batch = tuple[Tensor, "Tensor | None"]
CLI_TYPES = (int, float, str, bool)       # what cli.config_options turns into click types
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def reserved_option_names() -> set[str]:
    """Option names of ``ganzoo train`` itself (a Config field with one of them would
    shadow it), and click's own."""
    from ganzoo.cli import LAUNCH_OPTIONS, TRAINER_OPTIONS    # declared once: TrainConfig's
    return TRAINER_OPTIONS | LAUNCH_OPTIONS | {"help", "version"}       # and LaunchOptions' fields


def option_problems(config_cls: type, reserved: set[str]) -> list[str]:
    """Why fields of a Config (or GenerateConfig) dataclass would make poor CLI options."""
    if not dataclasses.is_dataclass(config_cls):
        return [f"{config_cls!r} is not a dataclass"]
    from ganzoo.cli import optional_inner
    hints = typing.get_type_hints(config_cls)
    problems = []
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        if not str(f.metadata.get("help", "")).strip():
            problems.append(f"{flag} has no help text (declare it with ganzoo.option)")
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{flag} has no default")
        if f.name in reserved:
            problems.append(f"{flag} is a reserved option name")
        if optional_inner(hints[f.name]) not in CLI_TYPES:
            problems.append(f"{flag} has type {hints[f.name]}; the CLI parses int, float, "
                            "str and bool (or X | None)")
    return problems


class ArchitectureContract:
    """Subclass as ``TestMyGAN(ArchitectureContract)`` and set:

    - ``architecture``: the Architecture subclass under test;
    - ``small``: Config values that make it tiny (it trains a few steps per test);
    - ``data``: the DataSpec to build it for (default: 3 channels at the smallest supported
      resolution from 16 up, 3 classes when the class is conditional or trains on labels);
    - ``batch``: images per minibatch (default 4); ``steps``: train_step calls of the resume
      test (default 2, resumed after half);
    - ``device``: where to run (default "cpu");
    - ``not_applicable``: ``{"test_name": "why"}`` for promises that do not apply.
    """

    architecture: ClassVar[type[Architecture]]
    small: ClassVar[dict[str, Any]] = {}
    data: ClassVar[DataSpec | None] = None
    batch: ClassVar[int] = 4
    steps: ClassVar[int] = 2
    device: ClassVar[str] = "cpu"
    not_applicable: ClassVar[dict[str, str]] = {}

    # -- building blocks (a subclass may override them) -------------------------------------

    def data_spec(self) -> DataSpec:
        if self.data is not None:
            return self.data
        cls = self.architecture
        supported = [r for r in cls.resolutions or (16,) if r >= 16] or list(cls.resolutions)
        labelled = cls.conditional or cls.trains_on_labels
        return DataSpec(min(supported), 3, 3 if labelled else 0,
                        ("a", "b", "c") if labelled else ())

    def build(self, seed: int = 0) -> Architecture:
        """A fresh model; ``seed`` sets the global RNG its initial weights come from."""
        from ganzoo import make_config
        torch.manual_seed(seed)
        config = make_config(self.architecture, dict(self.small))
        return self.architecture(config, self.data_spec(), torch.device(self.device))

    def batches(self, model: Architecture, count: int) -> list[Batch]:
        """``count`` train_step inputs as the trainer hands them over: ``batch x
        batches_per_step`` images in [-1, 1] on the model's device, with labels when the model
        uses them. Drawn from their own generator: the global RNG is the model's."""
        gen = torch.Generator().manual_seed(1234)
        spec, n = model.data, self.batch * model.batches_per_step
        uses_labels = model.conditional or model.trains_on_labels
        out = []
        for _ in range(count):
            reals = torch.rand(n, spec.channels, spec.resolution, spec.resolution,
                               generator=gen) * 2 - 1
            labels = torch.randint(max(spec.num_classes, 1), (n,), generator=gen)
            out.append((reals.to(model.device),
                        labels.to(model.device) if uses_labels else None))
        return out

    def train(self, model: Architecture, batches: list[Batch]) -> list[dict]:
        return [model.train_step(reals, labels) for reals, labels in batches]

    def cli_generate_args(self, checkpoint: Path, workdir: Path) -> list[str]:
        """The arguments of ``ganzoo generate`` that sample ``checkpoint`` into
        ``workdir/generated``; an architecture with a GenerateConfig overrides this."""
        return ["--checkpoint", str(checkpoint), "--seeds", "0-1",
                "--out", str(workdir / "generated"), "--device", self.device]

    # -- the contract ------------------------------------------------------------------------

    @contract_test
    def test_declares_a_cli_name(self):
        name = getattr(self.architecture, "name", None)
        assert isinstance(name, str) and KEBAB.match(name), \
            f"name must be a kebab-case string (the CLI name), got {name!r}"
        assert (self.architecture.__doc__ or "").strip(), \
            "give the class a docstring: its first line is what `ganzoo list` shows"

    @contract_test
    def test_config_fields_have_help_and_no_reserved_names(self):
        problems = option_problems(self.architecture.Config, reserved_option_names())
        assert not problems, f"{self.architecture.Config.__name__}: " + "; ".join(problems)

    @contract_test
    def test_generate_config_fields_have_help_and_fit_generate(self):
        extra = self.architecture.GenerateConfig
        if extra is None:
            pytest.skip("no GenerateConfig")
        from ganzoo.cli import generate_command
        taken = {p.name for p in generate_command.params} | {"help"}
        problems = option_problems(extra, taken)
        assert not problems, f"{extra.__name__}: " + "; ".join(problems)

    @contract_test
    def test_train_step_gives_finite_stats_and_changes_weights(self):
        model = self.build()
        optimizers = model.optimizers()
        assert optimizers, "optimizers() found no torch.optim.Optimizer attribute " \
                           "(override optimizers() if they live elsewhere)"
        before = [[p.detach().clone() for g in o.param_groups for p in g["params"]]
                  for o in optimizers]
        for stats in self.train(model, self.batches(model, self.steps)):
            check_stats(stats)
        for i, (opt, old) in enumerate(zip(optimizers, before)):
            new = [p for g in opt.param_groups for p in g["params"]]
            assert any(not torch.equal(a, b.detach()) for a, b in zip(old, new)), \
                f"{self.steps} train_step calls left every parameter of optimiser {i} " \
                f"({type(opt).__name__}) unchanged"

    @contract_test
    def test_generate_shape_range_and_dtype(self):
        model = self.build()
        images = model.generate(3, seed=0)
        spec = model.data
        expected = (3, spec.channels, spec.resolution, spec.resolution)
        assert isinstance(images, Tensor), f"generate returned {type(images).__name__}"
        assert tuple(images.shape) == expected, \
            f"generate(3) gave shape {tuple(images.shape)}, expected NCHW {expected}"
        assert images.is_floating_point(), f"generate gave {images.dtype}, not a float dtype"
        assert images.device.type == model.device.type, \
            f"generate gave images on {images.device}, the model is on {model.device}"
        assert torch.isfinite(images).all(), "generate gave nan or inf pixels"
        low, high = images.min().item(), images.max().item()
        assert -1 <= low and high <= 1, f"generate gave pixels in [{low:.3g}, {high:.3g}], " \
                                        "outside [-1, 1]"

    @contract_test
    def test_same_seed_same_images(self):
        model = self.build()
        first = model.generate(2, seed=3)
        again = model.generate(2, seed=3)
        assert torch.equal(first, again), \
            "generate(seed=3) twice gave different images: derive every random draw from " \
            "the seed (self.seeded_normal)"
        assert not torch.equal(first, model.generate(2, seed=4)), \
            "seeds 3 and 4 gave the same images: generate ignores its seed"

    @contract_test
    def test_generate_leaves_global_rng_alone(self):
        model = self.build()
        torch.manual_seed(7)
        state = global_rng_states(model.device)
        model.generate(2, seed=1)
        assert all(map(torch.equal, state, global_rng_states(model.device))), \
            "generate(seed=...) drew from the global RNG: it would change what training " \
            "draws next (use self.seeded_normal or a torch.Generator)"

    @contract_test
    def test_generate_leaves_training_state_alone(self):
        model = self.build()
        self.train(model, self.batches(model, 1))
        state = weights_only_round_trip(model.state_dict())
        modes = [net.training for net in model.networks()]
        model.generate(2, seed=1)
        changed = differences(state, model.state_dict())
        assert not changed, "generate changed the model's state (networks left in train " \
                            "mode update BatchNorm statistics): " + "; ".join(changed)
        assert modes == [net.training for net in model.networks()], \
            "generate did not restore the networks' train/eval modes"

    @contract_test
    def test_state_dict_round_trip_with_weights_only(self):
        model = self.build()
        self.train(model, self.batches(model, 1))    # optimisers have state to save now
        state = model.state_dict()
        loaded = weights_only_round_trip(state)
        fresh = self.build(seed=1)
        fresh.load_state_dict(loaded)
        changed = differences(state, fresh.state_dict())
        assert not changed, "load_state_dict(state_dict()) into a fresh model does not give " \
                            "the same state back: " + "; ".join(changed)

    @contract_test
    def test_resume_equals_uninterrupted(self):
        """N steps in one go equal k steps, a save and load into a fresh model (built from
        other random weights, with fresh optimisers) and N - k more: so state_dict holds
        everything training depends on, optimiser moments included."""
        from ganzoo.checkpoint import capture_rng, restore_rng
        n = max(self.steps, 2)
        k = n // 2
        whole = self.build(seed=0)
        data = self.batches(whole, n)
        torch.manual_seed(1)
        self.train(whole, data)

        first = self.build(seed=0)
        torch.manual_seed(1)
        self.train(first, data[:k])
        saved, rng = weights_only_round_trip(first.state_dict()), capture_rng()
        resumed = self.build(seed=99)
        resumed.load_state_dict(saved)
        restore_rng(rng)                 # as the trainer restores it from the checkpoint
        self.train(resumed, data[k:])
        changed = differences(whole.state_dict(), resumed.state_dict())
        assert not changed, f"{n} steps in one go and {k} + {n - k} steps with a " \
                            "state_dict save/load between differ (does state_dict hold the " \
                            "optimisers' state?): " + "; ".join(changed)

    @contract_test
    def test_conditional_labels_change_the_images(self):
        model = self.build()
        if not model.conditional:
            pytest.skip("unconditional")
        classes = model.data.num_classes
        assert classes >= 2, "give the contract data with at least 2 classes (data = ...)"
        per_class = []
        for k in range(classes):             # as `ganzoo generate --class K` asks
            image = model.generate(1, seed=0, labels=torch.tensor([k], device=model.device))
            assert image.shape[0] == 1 and torch.isfinite(image).all(), \
                f"generate(1, labels=[{k}]) gave {tuple(image.shape)} or non-finite pixels"
            per_class.append(image)
        assert any(not torch.equal(per_class[0], other) for other in per_class[1:]), \
            "every class gave the same image for one seed: generate ignores labels"
        batch = model.generate(classes, seed=0, labels=torch.arange(classes, device=model.device))
        assert batch.shape[0] == classes, "generate(n, labels=[n labels]) gave a wrong count"

    @contract_test
    def test_checkpoint_generates_through_the_cli(self, ganzoo_cli, tmp_path):
        from ganzoo.checkpoint import Progress, save_checkpoint
        from ganzoo.testing.registration import plugin_args_for
        model = self.build()
        self.train(model, self.batches(model, 1))
        path = tmp_path / "ckpt.pt"
        spec = model.data
        save_checkpoint(path, arch=model, plugin="contract", plugin_version="",
                        train={"data": "contract", "resolution": spec.resolution,
                               "channels": spec.channels, "batch": self.batch},
                        progress=Progress(images=self.batch * model.batches_per_step, step=1))
        args = self.cli_generate_args(path, tmp_path)
        with plugin_args_for(self.architecture) as plugin_args:
            result = ganzoo_cli(*plugin_args, "generate", *args)
            assert result.code == 0, f"ganzoo generate {' '.join(args)} failed: {result.err}"
            if model.conditional and self.architecture.GenerateConfig is None:
                result = ganzoo_cli(*plugin_args, "generate", *args, "--class", "1")
                assert result.code == 0, f"ganzoo generate --class 1 failed: {result.err}"
        written = sorted((tmp_path / "generated").glob("*.png"))
        assert written, f"ganzoo generate wrote no PNG to {tmp_path / 'generated'}"


def global_rng_states(device: torch.device) -> list[Tensor]:
    """The CPU generator's state, and the model's GPU's when it runs on one."""
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def check_stats(stats: Any) -> None:
    """A train_step result: names to finite floats or detached 0-d tensors."""
    assert isinstance(stats, dict), f"train_step returned {type(stats).__name__}, not a dict"
    for key, value in stats.items():
        assert isinstance(key, str), f"train_step stat key {key!r} is not a string"
        if isinstance(value, Tensor):
            assert value.numel() == 1 and not value.requires_grad, \
                f"stat {key} must be a detached 0-d tensor, got {tuple(value.shape)} " \
                f"(requires_grad={value.requires_grad})"
            value = value.item()
        assert isinstance(value, (int, float)), \
            f"stat {key} is {type(value).__name__}, not a number"
        assert math.isfinite(value), f"stat {key} is {value}"

"""The contract kit catches real faults: each deliberately broken plugin in
tests/fixtures/contract-faults fails the contract test named for the promise it breaks, and
the sound plugin they are built on passes them all. Run through pytester, as a plugin
author's pytest run would."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest_plugins = ["pytester"]

FAULTS = Path(__file__).parent / "fixtures" / "contract-faults"
CASES = {   # module, class -> the test that must fail and a phrase its message must hold
    ("seedless_mlp", "SeedlessMLP"): ("test_same_seed_same_images", "different images"),
    ("pickled_state_mlp", "PickledStateMLP"): ("test_state_dict_round_trip_with_weights_only",
                                               "weights_only=True"),
    ("forgetful_mlp", "ForgetfulMLP"): ("test_resume_equals_uninterrupted", "optimisers"),
}


@pytest.fixture(autouse=True, scope="module")
def torch_imported_in_full():
    """pytester's inline runs forget the modules they imported when they end, but torch
    registers its operator libraries once per process: import here, for good, what a contract
    run pulls in lazily (an optimiser's first step imports torch._dynamo)."""
    param = torch.nn.Parameter(torch.ones(1))
    optimiser = torch.optim.Adam([param])
    param.sum().backward()
    optimiser.step()


def run_contract(pytester, module: str, cls: str):
    pytester.syspathinsert(FAULTS)
    pytester.makepyfile(**{f"test_{module}": f"""
from ganzoo.testing import ArchitectureContract
from {module} import {cls}


class Test{cls}(ArchitectureContract):
    architecture = {cls}
    small = dict(hidden=8)
"""})
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    passed, skipped, failed = reprec.listoutcomes()
    return ({r.nodeid.rsplit("::", 1)[-1]: r for r in failed},
            [r.nodeid.rsplit("::", 1)[-1] for r in passed])


def test_the_sound_plugin_passes_the_contract(pytester):
    failed, passed = run_contract(pytester, "sound_mlp", "SoundMLP")
    assert not failed, {name: r.longreprtext[-300:] for name, r in failed.items()}
    assert "test_resume_equals_uninterrupted" in passed
    assert "test_checkpoint_generates_through_the_cli" in passed


@pytest.mark.parametrize("module, cls", list(CASES), ids=[m for m, _ in CASES])
def test_a_broken_plugin_fails_the_named_contract_test(pytester, module, cls):
    test, phrase = CASES[module, cls]
    failed, passed = run_contract(pytester, module, cls)
    assert test in failed, f"{cls} passed {test}; failed: {sorted(failed)}"
    assert phrase in failed[test].longreprtext
    assert "test_train_step_gives_finite_stats_and_changes_weights" in passed

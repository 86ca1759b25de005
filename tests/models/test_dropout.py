"""Dropout streams: the keep rule, exact resumption, seeding from torch's global RNG."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from instrec.models import build_model
from instrec.models.dropout import Dropout, MaskRNG, mask_rngs, rng_states, set_rng_states


def test_mask_keeps_words_below_the_scaled_probability():
    # Independent of MaskRNG: the same PCG64 stream, read as 32-bit words, little end first.
    raw = np.random.PCG64(7).random_raw(4)
    words = [int(w) >> s & 0xFFFFFFFF for w in raw for s in (0, 32)][:7]
    mask = MaskRNG(7).mask((7,), 0.25)
    want = [1 / 0.75 if w < round(0.75 * 2**32) else 0.0 for w in words]
    np.testing.assert_allclose(mask.numpy(), want, rtol=1e-7)
    assert mask.dtype == torch.float32


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_mask_values_and_keep_rate(p):
    mask = MaskRNG(0).mask((1000, 1000), p)
    assert mask.shape == (1000, 1000)
    values = torch.unique(mask)
    torch.testing.assert_close(values, torch.tensor([0.0, 1 / (1 - p)]))
    kept = float((mask > 0).double().mean())
    assert abs(kept - (1 - p)) < 5 * (p * (1 - p) / 1e6) ** 0.5


def test_state_round_trips_through_json():
    rng = MaskRNG(3)
    rng.mask((5, 5), 0.5)
    state = json.loads(json.dumps(rng.get_state()))
    first = rng.mask((9, 4), 0.3)
    other = MaskRNG(99)
    other.set_state(state)
    assert torch.equal(other.mask((9, 4), 0.3), first)
    with pytest.raises(ValueError, match="not a dropout stream state: 'MT19937'"):
        other.set_state(np.random.MT19937(0).state)


def test_bad_probability_is_refused():
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.0"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="got -0.1"):
        MaskRNG(0).mask((3,), -0.1)


def test_dropout_module_scales_in_training_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = Dropout(0.5)
    x = torch.randn(64, 32)
    y = drop(x)
    assert torch.equal(y[y != 0], (x * 2.0)[y != 0]) and (y == 0).any()
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize("name", ["bilstm-att", "att", "fc", "fc-t"])
def test_global_seed_fixes_weights_and_masks_and_states_restore(name):
    def built():
        torch.manual_seed(11)
        return build_model(name, n_classes=3, n_features=8, n_frames=4).train()

    a, b = built(), built()
    assert len(mask_rngs(a)) >= 1
    x = torch.randn(5, 4, 8)
    assert torch.equal(a(x).clip, b(x).clip)  # same initial weights, same masks
    saved = rng_states(a)
    out = a(x).clip
    assert not torch.equal(out, a(x).clip)  # the stream moves on
    set_rng_states(a, saved)
    assert torch.equal(a(x).clip, out)
    with pytest.raises(ValueError, match="0 dropout stream states for a model with"):
        set_rng_states(a, [])

"""Models: the custom BiLSTM against nn.LSTM, dropout semantics, attention heads,
parameter counts, the registry and the random-forest baseline."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from instrec._io import InstrecError
from instrec.models import MODEL_NAMES, NEURAL_MODELS, STACKABLE_MODELS, build_model, model_spec
from instrec.models.forest import RandomForestBaseline, clip_features
from instrec.models.lstm import BiLSTM, _BiLSTMFunction


def _paired(input_size: int, hidden: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    ref = nn.LSTM(input_size, hidden, batch_first=True, bidirectional=True).to(dtype)
    ours = BiLSTM(input_size, hidden).to(dtype)
    ours.load_torch_lstm(ref)
    return ref, ours


@pytest.mark.parametrize("batch,steps", [(1, 1), (5, 10), (3, 23)])
def test_bilstm_matches_torch_lstm_outputs(batch: int, steps: int) -> None:
    ref, ours = _paired(128, 64)
    x = torch.randn(batch, steps, 128)
    with torch.no_grad():
        expected, _ = ref(x)
        got = ours(x)
    assert got.shape == (batch, steps, 128)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_bilstm_matches_torch_lstm_gradients() -> None:
    ref, ours = _paired(6, 4, torch.float64, seed=1)
    x = torch.randn(3, 7, 6, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(3, 7, 8, dtype=torch.float64)
    g_ref = torch.autograd.grad(ref(x)[0], [x, *ref.parameters()], upstream)
    g_ours = torch.autograd.grad(ours(x), [x, ours.weight_ih, ours.weight_hh, ours.bias], upstream)
    gx, w_ih, w_hh, b_ih, b_hh, w_ih_r, w_hh_r, b_ih_r, b_hh_r = g_ref
    torch.testing.assert_close(g_ours[0], gx)
    torch.testing.assert_close(g_ours[1], torch.stack([w_ih.t(), w_ih_r.t()]))
    torch.testing.assert_close(g_ours[2], torch.stack([w_hh.t(), w_hh_r.t()]))
    # One bias per gate: its gradient equals that of each of PyTorch's two biases.
    torch.testing.assert_close(g_ours[3], torch.stack([b_ih, b_ih_r]))
    torch.testing.assert_close(g_ours[3], torch.stack([b_hh, b_hh_r]))


def test_bilstm_function_gradcheck_with_recurrent_mask() -> None:
    torch.manual_seed(2)
    steps, batch, feat, hid = 4, 3, 5, 2
    args = [torch.randn(2, steps * batch, feat), torch.randn(2, feat, 4 * hid),
            torch.randn(2, 4 * hid), torch.randn(2, hid, 4 * hid)]
    args = [a.double().requires_grad_() for a in args]
    mask = (torch.rand(2, batch, hid) > 0.3).double() / 0.7
    assert torch.autograd.gradcheck(lambda *a: _BiLSTMFunction.apply(*a, mask, steps), args)


def test_recurrent_dropout_acts_on_recurrence_only_in_training() -> None:
    torch.manual_seed(3)
    lstm = BiLSTM(8, 16, dropout=0.0, recurrent_dropout=0.5).train()
    x1, x5 = torch.randn(4, 1, 8), torch.randn(4, 5, 8)
    # With one step the previous state is zero, so a recurrent mask changes nothing...
    torch.testing.assert_close(lstm(x1), lstm(x1), atol=0, rtol=0)
    # ...with several steps, two training passes draw different masks.
    assert not torch.allclose(lstm(x5), lstm(x5))
    lstm.eval()
    plain = BiLSTM(8, 16)
    plain.load_state_dict(lstm.state_dict())
    plain.eval()
    torch.testing.assert_close(lstm(x5), lstm(x5), atol=0, rtol=0)
    torch.testing.assert_close(lstm(x5), plain(x5), atol=0, rtol=0)


def _reference_lstm(x: torch.Tensor, lstm: BiLSTM, in_mask: torch.Tensor,
                    rec_mask: torch.Tensor) -> torch.Tensor:
    """Step-by-step LSTM applying the same per-sequence masks at every time step."""
    outs = []
    hid = lstm.hidden_size
    for d in range(2):
        seq = x if d == 0 else x.flip(1)
        h = x.new_zeros(x.shape[0], hid)
        c = torch.zeros_like(h)
        hs = []
        for t in range(x.shape[1]):
            gates = ((seq[:, t] * in_mask[d, 0]) @ lstm.weight_ih[d]
                     + (h * rec_mask[d]) @ lstm.weight_hh[d] + lstm.bias[d])
            i, f, g, o = gates.split(hid, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        out = torch.stack(hs, dim=1)
        outs.append(out if d == 0 else out.flip(1))
    return torch.cat(outs, dim=-1)


def test_dropout_masks_are_per_sequence_and_shared_over_time(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[torch.Tensor] = []
    torch.manual_seed(4)
    lstm = BiLSTM(6, 5, dropout=0.3, recurrent_dropout=0.4).train()
    original = lstm.rng.mask

    def recording(shape, p):
        mask = original(shape, p)
        drawn.append(mask)
        return mask

    monkeypatch.setattr(lstm.rng, "mask", recording)
    x = torch.randn(3, 7, 6)
    out = lstm(x)
    in_mask, rec_mask = drawn
    # No time axis in either mask: one draw per (direction, clip, unit).
    assert in_mask.shape == (2, 1, 3, 6) and rec_mask.shape == (2, 3, 5)
    assert torch.isin(rec_mask, torch.tensor([0.0, 1 / 0.6])).all()
    assert torch.isin(in_mask, torch.tensor([0.0, 1 / 0.7])).all()
    with torch.no_grad():
        torch.testing.assert_close(out, _reference_lstm(x, lstm, in_mask, rec_mask), atol=1e-5, rtol=0)


def test_bilstm_rejects_bad_dropout() -> None:
    with pytest.raises(ValueError, match="recurrent_dropout must be in"):
        BiLSTM(4, 4, recurrent_dropout=1.0)


@pytest.mark.parametrize("name", ["bilstm-att", "att"])
def test_attention_models_output_normalised_weights(name: str) -> None:
    torch.manual_seed(5)
    model = build_model(name).eval()
    out = model(torch.randn(4, 13, 128))
    assert out.clip.shape == (4, 20) and out.frame.shape == out.attention.shape == (4, 13, 20)
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(4, 20))
    torch.testing.assert_close(out.clip, (out.attention * out.frame).sum(dim=1))
    assert out.clip.min() >= 0 and out.clip.max() <= 1


@pytest.mark.parametrize("name,count", [("att", 55_336), ("fc", 986_772), ("rnn", 226_068),
                                        ("bilstm-att", 2 * 4 * 64 * (128 + 64 + 1) + 2 * (128 * 20 + 20))])
def test_parameter_counts(name: str, count: int) -> None:
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == count


def test_fc_refuses_other_lengths_and_concatenated_clips() -> None:
    from instrec.data.augment import concat

    model = build_model("fc").eval()
    assert model_spec("fc").variable_length is False
    x = torch.randn(2, 10, 128)
    assert model(x).clip.shape == (2, 20)
    x_cat, _, _ = concat(x, torch.zeros(2, 20), torch.ones(2, 20, dtype=torch.bool), [torch.tensor([1, 0])])
    with pytest.raises(ValueError, match="expected 10 frames per clip, got 20"):
        model(x_cat)


def test_fc_t_clip_is_mean_of_frames_and_rnn_uses_both_ends() -> None:
    torch.manual_seed(6)
    x = torch.randn(3, 9, 128)
    fct = build_model("fc-t").eval()
    out = fct(x)
    torch.testing.assert_close(out.clip, out.frame.mean(dim=1))
    rnn = build_model("rnn").eval()
    seq, _ = rnn.gru(x)
    expected = torch.sigmoid(rnn.out(torch.cat([seq[:, -1, :64], seq[:, 0, 64:]], dim=-1)))
    torch.testing.assert_close(rnn(x).clip, expected)


@pytest.mark.parametrize("name", NEURAL_MODELS)
def test_registry_rebuilds_from_json_config(name: str) -> None:
    torch.manual_seed(7)
    model = build_model(name, n_classes=5, n_features=16, n_frames=4).eval()
    clone = build_model(name, **json.loads(json.dumps(model.config))).eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 16)
    torch.testing.assert_close(clone(x).clip, model(x).clip, atol=0, rtol=0)
    assert model(x).clip.shape == (2, 5)
    spec = model_spec(name)
    assert spec.variable_length is (name != "fc")
    if spec.variable_length:
        assert model(torch.randn(2, 8, 16)).clip.shape == (2, 5)
    else:
        with pytest.raises(ValueError, match="expected 4 frames per clip"):
            model(torch.randn(2, 8, 16))
    # The capabilities the registry promises are what the model's output holds.
    out = model(x)
    assert (out.frame is not None) is spec.frame_output
    assert (out.attention is not None) is spec.attention
    assert (spec.stacked is not None) is (name in STACKABLE_MODELS)


def test_registry_covers_the_forest() -> None:
    spec = model_spec("rf")
    assert "rf" in MODEL_NAMES and not spec.neural and spec.variable_length and not spec.frame_output
    with pytest.raises(InstrecError, match="'rf' is not a neural network"):
        build_model("rf")


def test_registry_rejects_unknown_name_and_bad_input() -> None:
    with pytest.raises(InstrecError, match="unknown model 'cnn'; choose one of bilstm-att"):
        build_model("cnn")
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, frames, 128\), got \(2, 10, 64\)"):
        build_model("att")(torch.randn(2, 10, 64))


def _forest_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 10, 8)).astype(np.float32)
    mean = x.mean(axis=1)
    columns = [mean[:, 0] > 0, mean[:, 1] + mean[:, 2] > 0.1, np.ones(120, bool)]
    targets = np.stack(columns, axis=1).astype(float)
    mask = rng.random((120, 3)) < 0.7
    return x, targets, mask


def test_forest_array_prediction_equals_sklearn() -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, targets, mask = _forest_data()
    model = RandomForestBaseline(n_estimators=7, max_depth=4, random_state=3).fit(x, targets, mask)
    proba = model.predict_proba(x, chunk=50)
    feats = clip_features(x)
    for c in range(2):
        rf = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=3, n_jobs=1)
        rf.fit(feats[mask[:, c]], targets[mask[:, c], c] >= 0.5)
        np.testing.assert_allclose(proba[:, c], rf.predict_proba(feats)[:, 1], atol=1e-12)
    # Class 2 is positive in every labelled clip: a constant predictor.
    np.testing.assert_array_equal(proba[:, 2], 1.0)


def test_forest_roundtrips_through_safetensors(tmp_path) -> None:
    from safetensors.numpy import load_file, save_file

    x, targets, mask = _forest_data(1)
    model = RandomForestBaseline(n_estimators=3, max_depth=3).fit(x, targets, mask)
    save_file(model.to_arrays(), str(tmp_path / "rf.safetensors"))
    loaded = RandomForestBaseline.from_arrays(load_file(str(tmp_path / "rf.safetensors")))
    assert (loaded.n_estimators, loaded.max_depth, loaded.random_state) == (3, 3, 0)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def test_forest_unlabelled_class_predicts_half_and_unfitted_raises() -> None:
    x, targets, mask = _forest_data(2)
    mask[:, 1] = False
    proba = RandomForestBaseline(n_estimators=2).fit(x, targets, mask).predict_proba(x[:5])
    np.testing.assert_array_equal(proba[:, 1], 0.5)
    with pytest.raises(RuntimeError, match="not fitted"):
        RandomForestBaseline().predict_proba(x)


def test_the_lstm_starts_from_the_same_weights_whatever_the_thread_count() -> None:
    before = torch.get_num_threads()
    states = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            states.append(BiLSTM(128, 64).state_dict())
            assert torch.get_num_threads() == n  # the count is given back after the initialisation
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])

"""The compiled training step: same masks, loss and gradients as eager; when it is (not) used."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from instrec._io import InstrecError
from instrec.models import build_model
from instrec.models.dropout import rng_states
from instrec.training.config import TrainConfig
from instrec.training.loop import train
from instrec.training.losses import masked_focal_loss
from instrec.training.step import AUTO_MIN_STEPS, TrainingStep, find_cxx

needs_cxx = pytest.mark.skipif(find_cxx() is None, reason="torch.compile needs a C++ compiler")
#: A compilation takes tens of seconds: these tests are marked slow (``make test-fast`` skips them).
slow = pytest.mark.slow


def _twins(name: str, **kw):
    """Two models with equal weights and equal dropout streams."""
    models = []
    for _ in range(2):
        torch.manual_seed(3)
        models.append(build_model(name, n_features=16, **kw).train())
    return models


def _batch(n: int = 32, frames: int = 10):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, frames, 16, generator=gen)
    y = (torch.rand(n, 20, generator=gen) < 0.4).float()
    m = torch.rand(n, 20, generator=gen) < 0.5
    return x, y, m


@slow
@needs_cxx
@pytest.mark.parametrize("name", ["bilstm-att", "att"])
def test_compiled_step_matches_eager_loss_gradients_and_masks(name):
    compiled_model, eager_model = _twins(name)
    compiled = TrainingStep(compiled_model, masked_focal_loss, "on", batch_size=32)
    eager = TrainingStep(eager_model, masked_focal_loss, "off", batch_size=32)
    assert (compiled.engine, eager.engine) == ("compiled", "eager")
    # two clip lengths (plain and concatenated clips) and a last, smaller batch
    for batch in (_batch(), _batch(frames=20), _batch(), _batch(n=7)):
        a, b = compiled(*batch), eager(*batch)
        assert a.item() == pytest.approx(b.item(), rel=1e-5)
        a.backward()
        b.backward()
        assert rng_states(compiled_model) == rng_states(eager_model)  # the same masks were drawn
    for (pname, p), q in zip(compiled_model.named_parameters(), eager_model.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), pname
    for (bname, u), v in zip(compiled_model.named_buffers(), eager_model.buffers()):
        assert torch.allclose(u.float(), v.float(), rtol=1e-4, atol=1e-6), bname  # BatchNorm statistics


def test_when_the_step_is_not_compiled(monkeypatch):
    model = build_model("fc", n_features=16)
    with pytest.raises(InstrecError, match="model FullyConnected does not support compilation"):
        TrainingStep(model, masked_focal_loss, "on")
    step = TrainingStep(model, masked_focal_loss, "auto")
    assert step.engine == "eager" and step.reason == "model FullyConnected does not support compilation"
    lstm = build_model("bilstm-att", n_features=16)
    short = TrainingStep(lstm, masked_focal_loss, "auto", total_steps=AUTO_MIN_STEPS - 1)
    assert short.engine == "eager" and "run too short" in short.reason
    assert TrainingStep(lstm, masked_focal_loss, "off").reason == "compile mode off"
    with pytest.raises(InstrecError, match="unknown compile mode 'fast'"):
        TrainingStep(lstm, masked_focal_loss, "fast")
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    assert find_cxx() is None
    with pytest.raises(InstrecError, match="no C.. compiler found"):
        TrainingStep(lstm, masked_focal_loss, "on")
    assert TrainingStep(lstm, masked_focal_loss, "auto").engine == "eager"


def test_a_failing_compiler_falls_back_to_eager_with_the_same_masks(monkeypatch, capsys):
    def broken_compile(fn, **kw):
        def run(*args):
            raise RuntimeError("inductor exploded\nlong traceback")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr("instrec.training.step.find_cxx", lambda: "/usr/bin/g++")
    with_fallback, eager_model = _twins("bilstm-att")
    step = TrainingStep(with_fallback, masked_focal_loss, "auto", batch_size=32)
    assert step.engine == "compiled"
    batch = _batch()
    loss = step(*batch)
    assert step.engine == "eager" and step.reason == "torch.compile failed: RuntimeError: inductor exploded"
    assert "training eagerly" in capsys.readouterr().err
    assert loss.item() == masked_focal_loss(eager_model(batch[0]).clip, *batch[1:]).item()
    strict = TrainingStep(_twins("att")[0], masked_focal_loss, "on", batch_size=32)
    with pytest.raises(InstrecError, match="torch.compile failed: RuntimeError: inductor exploded"):
        strict(*batch)


def test_a_compiler_refusing_at_construction(monkeypatch, capsys):
    def unsupported(fn, **kw):
        raise RuntimeError("torch.compile is not supported on this Python")

    monkeypatch.setattr(torch, "compile", unsupported)
    monkeypatch.setattr("instrec.training.step.find_cxx", lambda: "/usr/bin/g++")
    model = build_model("att", n_features=16)
    step = TrainingStep(model, masked_focal_loss, "auto")
    assert step.engine == "eager" and "not supported on this Python" in step.reason
    assert "training eagerly" in capsys.readouterr().err
    with pytest.raises(InstrecError, match="torch.compile failed: RuntimeError: torch.compile is not supported"):
        TrainingStep(model, masked_focal_loss, "on")


@slow
@needs_cxx
def test_compiled_training_run_is_recorded_reproducible_and_close_to_eager(tiny_dataset, tmp_path):
    def run(name, mode):
        cfg = TrainConfig(data=str(tiny_dataset), out=str(tmp_path / name), epochs=2, seed=5, compile=mode,
                          mixup=0.2, concat=0.5)
        summary = train(cfg, progress=False)
        losses = [float(r["train_loss"]) for r in csv.DictReader(open(tmp_path / name / "train_log.csv"))]
        return summary, losses

    first, losses_a = run("a", "on")
    _, losses_b = run("b", "on")
    eager, losses_e = run("e", "off")
    assert losses_a == losses_b  # same seed, same numbers
    assert losses_a == pytest.approx(losses_e, rel=1e-4)  # float rounding apart
    written = json.loads((tmp_path / "a" / "config.json").read_text())
    assert written["training_engine"] == {"engine": "compiled", "reason": None}
    assert written["train"]["compile"] == "on"
    assert eager["training_engine"] == {"engine": "eager", "reason": "compile mode off"}


@pytest.mark.parametrize("with_mask", [True, False])
def test_functional_recurrence_matches_the_in_place_one(with_mask):
    """The forward the compiler traces computes what the eager forward does, op for op: the
    same outputs and the same saved tensors, bit for bit (checked eagerly, so it is covered
    on machines without a compiler too)."""
    from instrec.models.lstm import functional_recurrence, inplace_recurrence

    torch.manual_seed(1)
    lstm = build_model("bilstm-att", n_features=16).lstm.train()
    in_mask, rec_mask = lstm.draw_masks(5)
    x2 = torch.randn(2, 7 * 5, 16) * in_mask.expand(2, 7, 5, 16).reshape(2, 35, 16)
    args = (x2, lstm.weight_ih.detach(), lstm.bias.detach(), lstm.weight_hh.detach(),
            rec_mask if with_mask else None, 7)
    hs_a, saved_a = inplace_recurrence(*args)
    hs_b, saved_b = functional_recurrence(*args)
    assert hs_a.shape == (2, 7, 5, 64)
    assert torch.equal(hs_a, hs_b)
    assert len(saved_a) == len(saved_b) == 8
    for a, b in zip(saved_a, saved_b):
        assert (a is None and b is None) or torch.equal(a, b)

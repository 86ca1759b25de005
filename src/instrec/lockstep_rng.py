"""Dropout masks of a lockstep member, identical to those its solo run draws.

A solo run draws its dropout masks with ``torch.empty(shape).bernoulli_(q).div_(q)``
(q = 1 - p) from torch's global CPU generator. A lockstep member owns a copy of that
generator's state and must draw the same numbers. ``torch.Generator`` can do so, but
torch's CPU ``bernoulli_`` is a serial loop costing about 11 ns per element, a large share
of a training step of the attention models. This module draws the same masks from
numpy's MT19937, which is the same Mersenne Twister, about twice as fast:

torch's kernel takes, per element, two 32-bit outputs ``hi, lo`` of the generator, forms
the double ``u = (((hi << 32) | lo) & (2**53 - 1)) * 2**-53`` and returns ``u < q``. As
``q * 2**53`` is exact, ``u < q`` is the integer test ``v53 < ceil(q * 2**53)``.

The equivalence rests on internals of torch's CPU generator (state layout and kernel),
so it is checked against torch on first use; where it does not hold, masks come from a
``torch.Generator`` instead (same numbers, slower).
"""
from __future__ import annotations

import math

import numpy as np
import torch

_N = 624  # Mersenne Twister state words
# Byte offsets in torch's CPU generator state (CPUGeneratorImplState): seed u64, left i32,
# seeded i32, next u64, state[624] u64, then the normal-sampler caches (kept unchanged).
_LEFT, _NEXT, _STATE = 8, 16, 24
_FAST: bool | None = None


def _to_numpy_state(state: torch.Tensor) -> dict:
    raw = state.numpy().tobytes()
    left = int(np.frombuffer(raw, np.int32, 1, _LEFT)[0])
    key = np.frombuffer(raw, np.uint64, _N, _STATE).astype(np.uint32)
    # torch keeps `left` outputs until the next twist (left == 1: twist on the next draw);
    # numpy keeps the position `pos` of the next word (pos == 624: twist first).
    return {"bit_generator": "MT19937", "state": {"key": key, "pos": _N + 1 - left}}


def _to_torch_state(np_state: dict, template: torch.Tensor) -> torch.Tensor:
    raw = bytearray(template.numpy().tobytes())
    pos = int(np_state["state"]["pos"])
    raw[_LEFT:_LEFT + 4] = np.int32(_N + 1 - pos).tobytes()
    raw[_NEXT:_NEXT + 8] = np.uint64(pos).tobytes()
    raw[_STATE:_STATE + 8 * _N] = np.asarray(np_state["state"]["key"], np.uint64).tobytes()
    return torch.frombuffer(raw, dtype=torch.uint8).clone()


class DropoutRNG:
    """A member's copy of the global torch RNG, used for dropout masks only.

    ``state``: a ``torch.get_rng_state()`` tensor to start from.
    """

    def __init__(self, state: torch.Tensor) -> None:
        self._template = state.clone()
        self._fast = fast_masks_available()
        if self._fast:
            self._bits = np.random.MT19937()
            self._bits.state = _to_numpy_state(state)
        else:
            self._gen = torch.Generator()
            self._gen.set_state(state)

    def mask(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        """float32 mask of ``shape``: 0 with probability p, else 1/(1-p); the numbers
        ``torch.empty(shape).bernoulli_(1 - p).div_(1 - p)`` draws from the global RNG."""
        q = 1.0 - p
        if not self._fast:
            return torch.empty(shape).bernoulli_(q, generator=self._gen).div_(q)
        n = math.prod(shape)
        words = self._bits.random_raw(2 * n).reshape(n, 2)
        v53 = ((words[:, 0] & np.uint64(0x1FFFFF)) << np.uint64(32)) | words[:, 1]
        keep = v53 < np.uint64(math.ceil(q * 2.0 ** 53))
        scale = np.float32(torch.ones(()).div_(q).item())  # the value bernoulli_(q).div_(q) gives
        return torch.from_numpy(np.where(keep, scale, np.float32(0.0)).reshape(shape))

    def get_state(self) -> torch.Tensor:
        """The state in ``torch.get_rng_state()`` layout (what a solo run saves as ``rng.torch``)."""
        if not self._fast:
            return self._gen.get_state()
        return _to_torch_state(self._bits.state, self._template)

    def set_state(self, state: torch.Tensor) -> None:
        self._template = state.clone()
        if self._fast:
            self._bits.state = _to_numpy_state(state)
        else:
            self._gen.set_state(state)


def fast_masks_available() -> bool:
    """Whether numpy's MT19937 reproduces torch's CPU ``bernoulli_`` here (checked once)."""
    global _FAST
    if _FAST is None:
        _FAST = False
        try:
            gen = torch.Generator().manual_seed(12345)
            torch.rand(7, generator=gen)  # start mid-block
            start = gen.get_state()
            bits = np.random.MT19937()
            bits.state = _to_numpy_state(start)
            n = 1000  # crosses a twist
            words = bits.random_raw(2 * n).reshape(n, 2)
            v53 = ((words[:, 0] & np.uint64(0x1FFFFF)) << np.uint64(32)) | words[:, 1]
            ours = v53 < np.uint64(math.ceil(0.8 * 2.0 ** 53))
            theirs = torch.empty(n).bernoulli_(0.8, generator=gen).numpy().astype(bool)
            back = _to_torch_state(bits.state, start)
            _FAST = bool(np.array_equal(ours, theirs) and torch.equal(back, gen.get_state()))
        except Exception:  # any layout surprise: use torch's generator
            _FAST = False
    return _FAST

"""Recording-chain augmentation of the realistic recipe, with Spotify's ``pedalboard``.

A clip goes through a seeded chain that imitates how music reaches a catalogue: the room
(reverb), the microphone and the channel (high-pass, shelves, a peak filter, a low-pass,
sometimes a band-limited sample rate, resampled with soxr), background noise at a random
SNR, a compressor, a level change and sometimes lossy MP3 coding. Each effect is drawn with the probability of
:data:`EFFECT_PROB`; :func:`draw_chain` returns the chain as JSON-able ``(name, params)``
pairs and :func:`apply_chain` runs it. The parameters and the noise come from the clip's
own random stream, and pedalboard is deterministic for the same input and parameters, so
a clip's audio depends only on the corpus seed and its index. The output keeps the input's
length and stays within +-1 (a final guard scales down a rare overshoot after the codec).
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import soxr

from instrec._io import InstrecError

#: Probability of each effect of the chain.
EFFECT_PROB: dict[str, float] = {
    "reverb": 0.7, "highpass": 0.4, "lowshelf": 0.4, "peak": 0.5, "highshelf": 0.4, "lowpass": 0.25,
    "bandlimit": 0.12, "noise": 0.6, "compressor": 0.5, "mp3": 0.3,
}
#: Range of the final peak level in dBFS (the level change).
LEVEL_DB = (-18.0, -1.0)
#: Range of the signal-to-noise ratio of added noise, in dB.
SNR_DB = (12.0, 45.0)
GUARD = 0.999

Chain = list[tuple[str, dict[str, Any]]]


def require_pedalboard() -> Any:
    """The pedalboard module, or an InstrecError saying how to install it."""
    try:
        return importlib.import_module("pedalboard")
    except ImportError:
        raise InstrecError("--recipe realistic: augmentation needs pedalboard "
                           "(pip install 'instrec[augment]', or pass --no-augment)") from None


def draw_chain(rng: np.random.Generator) -> Chain:
    """A random chain: ``(effect, parameters)`` in processing order, ending with ``level``."""
    u = {name: rng.random() < p for name, p in EFFECT_PROB.items()}
    chain: Chain = []
    if u["reverb"]:
        chain.append(("reverb", {"room_size": rng.uniform(0.05, 0.9), "damping": rng.uniform(0.1, 0.9),
                                 "wet_level": rng.uniform(0.03, 0.35), "dry_level": rng.uniform(0.6, 1.0)}))
    if u["highpass"]:
        chain.append(("highpass", {"cutoff_frequency_hz": rng.uniform(30.0, 250.0)}))
    if u["lowshelf"]:
        chain.append(("lowshelf", {"cutoff_frequency_hz": rng.uniform(80.0, 400.0), "gain_db": rng.uniform(-8, 8)}))
    if u["peak"]:
        chain.append(("peak", {"cutoff_frequency_hz": float(np.exp(rng.uniform(np.log(250), np.log(6000)))),
                               "gain_db": rng.uniform(-8, 8), "q": rng.uniform(0.5, 3.0)}))
    if u["highshelf"]:
        chain.append(("highshelf", {"cutoff_frequency_hz": rng.uniform(2500.0, 10000.0), "gain_db": rng.uniform(-10, 6)}))
    if u["lowpass"]:
        chain.append(("lowpass", {"cutoff_frequency_hz": rng.uniform(3000.0, 14000.0)}))
    if u["bandlimit"]:
        chain.append(("bandlimit", {"target_sample_rate": float(rng.choice([8000.0, 11025.0, 16000.0, 22050.0]))}))
    if u["noise"]:
        chain.append(("noise", {"snr_db": rng.uniform(*SNR_DB), "colour": str(rng.choice(["white", "pink", "brown", "hum"])),
                                "seed": int(rng.integers(2 ** 31))}))
    if u["compressor"]:
        chain.append(("compressor", {"threshold_db": rng.uniform(-35.0, -10.0), "ratio": rng.uniform(1.5, 8.0),
                                     "attack_ms": rng.uniform(1.0, 30.0), "release_ms": rng.uniform(40.0, 300.0)}))
    chain.append(("level", {"peak_db": rng.uniform(*LEVEL_DB)}))
    if u["mp3"]:
        chain.append(("mp3", {"vbr_quality": float(rng.uniform(2.0, 9.0))}))
    return [(name, {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in p.items()})
            for name, p in chain]


def _noise(pb: Any, n: int, sr: int, colour: str, seed: int) -> np.ndarray:
    """(n,) float32 noise of unit RMS: white, pink-ish (white through a gentle low-pass),
    brown-ish (a steep one) or mains hum (50/60 Hz and harmonics over faint hiss)."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n).astype(np.float32)
    if colour == "pink":
        x = pb.Pedalboard([pb.LowpassFilter(1500.0), pb.HighpassFilter(20.0)])(white, sr) + 0.3 * white
    elif colour == "brown":
        x = pb.Pedalboard([pb.LowpassFilter(200.0), pb.LowpassFilter(200.0)])(white, sr)
    elif colour == "hum":
        t = np.arange(n) / sr
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 5)) + 0.05 * white
    else:
        x = white
    x = np.asarray(x, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / np.float32(rms) if rms > 0 else x


def _plugin(pb: Any, name: str, p: dict[str, Any]) -> Any:
    make = {"reverb": pb.Reverb, "highpass": pb.HighpassFilter, "lowshelf": pb.LowShelfFilter, "peak": pb.PeakFilter,
            "highshelf": pb.HighShelfFilter, "lowpass": pb.LowpassFilter,
            "compressor": pb.Compressor, "mp3": pb.MP3Compressor}[name]
    return make(**p)


def apply_chain(audio: np.ndarray, sr: int, chain: Chain) -> np.ndarray:
    """Run ``chain`` on (n,) float32 ``audio`` at ``sr`` Hz; returns (n,) float32 within +-1."""
    pb = require_pedalboard()
    x = np.ascontiguousarray(audio, dtype=np.float32)
    n = len(x)
    for name, p in chain:
        if name == "noise":
            rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
            x = x + _noise(pb, n, sr, str(p["colour"]), int(p["seed"])) * np.float32(rms * 10 ** (-p["snr_db"] / 20))
        elif name == "bandlimit":  # a recording at a low sample rate; soxr is ~20x faster than pedalboard's sinc
            low = soxr.resample(x, sr, p["target_sample_rate"], quality="HQ")
            x = soxr.resample(low, p["target_sample_rate"], sr, quality="HQ").astype(np.float32)
        elif name == "level":
            peak = float(np.max(np.abs(x))) if n else 0.0
            if peak > 0:
                x = x * np.float32(10 ** (p["peak_db"] / 20) / peak)
        else:
            x = np.asarray(_plugin(pb, name, p)(x, sr), dtype=np.float32)
        x = x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))  # effects keep the clip's length
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(x))) if n else 0.0
    if peak > GUARD:
        x = x * np.float32(GUARD / peak)
    return np.ascontiguousarray(x, dtype=np.float32)

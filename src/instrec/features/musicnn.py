"""musicnn (Pons & Serra 2019, the ``musicnn==0.1.0`` release) in PyTorch, and its log-mel input.

Input: 16 kHz mono audio -> STFT (512-point periodic Hann window, hop 256, centred with
zero padding of 256 samples each side: librosa >= 0.10's default; older librosa padded by
reflection, which changes the first and last frame only) -> power spectrum -> 96 Slaney mel
bands (librosa's default ``filters.mel``) -> ``log10(10000 x + 1)`` in float32. The original
casts the mel spectrogram to float16 before the x10000, which overflows to inf with current
numpy; float32 gives the published tags. Patches of 187 frames (3 s) start every 187 frames
(the original's default, ``input_overlap=False``); frames after the last whole patch are
dropped, as in the original.

Network (``build_musicnn`` of the release, 64 mid-end filters, 200 dense units), all batch
norms in inference mode with epsilon 1e-3, every conv followed by ReLU *then* batch norm:

* input batch norm (one channel);
* front-end, timbral: convs of 204 filters over (7 frames x 38 bands) and (7 x 67), time padded
  3+3, max over frequency; temporal: convs of 51 filters over (128, 64, 32 frames) x 1 band,
  TensorFlow 'same' padding (for even kernels one frame more after than before), max over
  frequency -> (N, T, 561) = timbral 204 + 204, temporal 51 x 3;
* mid-end: three convs of 64 filters over 7 frames x all channels (time padded 3+3); the 2nd
  and 3rd add their input (residual) -> cnn1, cnn2, cnn3 (N, T, 64);
* back-end: features (N, T, 753) = front-end ++ cnn1 ++ cnn2 ++ cnn3; max and mean over time,
  flattened interleaved per channel (max_0, mean_0, max_1, ...), batch norm, dense 200 + ReLU,
  batch norm (the "penultimate" features), dense to the tags, sigmoid.

The single-channel front-end convolutions are computed channels last as unfold (a strided
view copied into rows) + matrix product in cache-sized blocks, reduced over frequency at once;
ReLU and batch norm follow the max (exact, see :class:`_FrontConv`).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instrec._io import InstrecError

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1
PATCH_HOP = 187
BN_EPS = 1e-3
N_FRONTEND = 561
N_FEATURES = 753  # front-end 561 + 3 x 64 mid-end

MTT_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral")


# --------------------------------------------------------------------------- log-mel input

def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, hz * 3.0 / 200.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * 200.0 / 3.0)


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32: triangles on the Slaney mel scale from 0 Hz to Nyquist,
    each scaled to unit area in Hz (``2 / bandwidth``), as ``librosa.filters.mel`` by default."""
    bins_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    rising = (bins_hz[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins_hz[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


_MEL = mel_filterbank().astype(np.float64).T  # (257, 96)
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def n_frames(n_samples: int) -> int:
    """Frames of the centred STFT of ``n_samples`` samples: ``1 + n_samples // 256``."""
    return 1 + n_samples // HOP


def log_mel(audio: np.ndarray, first: int = 0, count: int | None = None) -> np.ndarray:
    """(count, 96) float32 ``log10(10000 * mel_power + 1)`` of frames ``first .. first + count``.

    ``audio``: 1-D 16 kHz mono samples (float, nominally in [-1, 1]). Frame t is centred on
    sample 256 t; samples outside the signal are zero. Any frame range gives the same values as
    the whole spectrogram, so long signals can be processed piecewise.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono), got shape {audio.shape}")
    total = n_frames(len(audio))
    count = total - first if count is None else count
    if first < 0 or count < 0 or first + count > total:
        raise ValueError(f"frames {first}..{first + count} outside 0..{total}")
    start, stop = first * HOP - N_FFT // 2, (first + count - 1) * HOP + N_FFT // 2
    seg = np.zeros(max(stop - start, N_FFT), dtype=np.float64)
    lo, hi = max(start, 0), min(stop, len(audio))
    if hi > lo:
        seg[lo - start:hi - start] = audio[lo:hi]
    frames = np.lib.stride_tricks.sliding_window_view(seg, N_FFT)[::HOP][:count]
    spec = np.fft.rfft(frames * _WINDOW, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2) @ _MEL
    return np.log10(np.float32(10000.0) * power.astype(np.float32) + np.float32(1.0))


def n_patches(total_frames: int, patch_frames: int = PATCH_FRAMES, hop: int = PATCH_HOP) -> int:
    """Whole patches in ``total_frames`` frames (0 when shorter than one patch)."""
    return 0 if total_frames < patch_frames else (total_frames - patch_frames) // hop + 1


def make_patches(logmel: np.ndarray, patch_frames: int = PATCH_FRAMES, hop: int = PATCH_HOP) -> np.ndarray:
    """(n_patches, patch_frames, 96) patches of a (frames, 96) log-mel, starting every ``hop`` frames."""
    n = n_patches(len(logmel), patch_frames, hop)
    return np.stack([logmel[i * hop:i * hop + patch_frames] for i in range(n)]) if n else \
        np.zeros((0, patch_frames, logmel.shape[1]), dtype=logmel.dtype)


# --------------------------------------------------------------------------- network

class FrozenBatchNorm(nn.Module):
    """Inference batch norm over the last axis: ``(x - mean) / sqrt(var + 1e-3) * weight + bias``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((channels,), value))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.weight * torch.rsqrt(self.running_var + BN_EPS)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_shift()
        return torch.addcmul(shift, x, scale)


ROWS_PER_PRODUCT = 1024  # rows of one unfold + matrix product: a block that stays in cache


def _conv_freq_max(xp: torch.Tensor, kt: int, kf: int, weight: torch.Tensor) -> torch.Tensor:
    """Max over frequency of a single-channel 'valid' convolution, channels last.

    ``xp`` (B, T + kt - 1, F) input, ``weight`` (kt * kf, C) with rows in (time, freq) order;
    returns (B, T, C) = max over f of sum_{i,j} xp[b, t + i, f + j] weight[i * kf + j, c].
    Each block of frames is unfolded (a strided view copied into rows), multiplied and reduced
    while it is still in cache; the full (B, T, F', C) output is never stored.
    """
    b, tp, f = xp.shape
    xp = xp.contiguous()
    t, fo = tp - kt + 1, f - kf + 1
    out = xp.new_empty(b, t, weight.shape[1])
    step = max(1, ROWS_PER_PRODUCT // fo)
    for i in range(b):
        for t0 in range(0, t, step):
            n = min(step, t - t0)
            rows = xp[i, t0:].as_strided((n, fo, kt, kf), (f, 1, f, 1)).reshape(n * fo, kt * kf)
            torch.amax(torch.mm(rows, weight).view(n, fo, -1), dim=1, out=out[i, t0:t0 + n])
    return out


class _FrontConv(nn.Module):
    """One front-end filter bank: conv over a single-channel (time, freq) input, ReLU, batch norm,
    max over frequency. Weight in PyTorch layout (filters, 1, kt, kf).

    Bias, ReLU and batch norm are applied after the max, exactly: per channel they are monotonic,
    increasing where the batch-norm scale is >= 0 and decreasing where it is < 0. There the max
    comes from the smallest conv output, min z = -max(-z): the matrix holds those channels'
    weights negated and :meth:`finish` restores the sign."""

    def __init__(self, filters: int, kt: int, kf: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(filters, 1, kt, kf))
        self.bias = nn.Parameter(torch.zeros(filters))
        self.bn = FrozenBatchNorm(filters)

    def signed_matrix(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(kt * kf, C) weight with negative-scale channels negated, and the signs (C,)."""
        sign = torch.where(self.bn.scale_shift()[0] < 0, -1.0, 1.0).to(self.weight.dtype)
        return self.weight.reshape(len(self.bias), -1).t() * sign, sign

    def finish(self, signed_max: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """(B, T, C) max of the signed conv outputs -> bias, ReLU, batch norm."""
        scale, shift = self.bn.scale_shift()
        return torch.addcmul(shift, torch.relu(signed_max * sign + self.bias), scale)


class _MidConv(nn.Module):
    """Conv over 7 frames x all channels (time padded 3 + 3), ReLU, batch norm; weight (out, in, 7)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, 7))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.bn = FrozenBatchNorm(c_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        hp = F.pad(h, (0, 0, 3, 3)).contiguous()
        w = self.weight.permute(2, 1, 0).reshape(7 * c, -1)
        out = h.new_empty(b, t, w.shape[1])
        for i in range(b):  # the 7-frame windows of one patch are overlapping rows of its (T + 6, C) block
            torch.addmm(self.bias, hp[i].as_strided((t, 7 * c), (c, 1)), w, out=out[i])
        return self.bn(torch.relu_(out))


class Musicnn(nn.Module):
    """musicnn with 50 tags, 64 mid-end filters and 200 dense units (MTT_musicnn, MSD_musicnn)."""

    def __init__(self, n_tags: int = 50, midend_filters: int = 64, dense_units: int = 200) -> None:
        super().__init__()
        self.input_bn = FrozenBatchNorm(1)
        self.timbral = nn.ModuleList([_FrontConv(204, 7, 38), _FrontConv(204, 7, 67)])
        self.temporal = nn.ModuleList([_FrontConv(51, k, 1) for k in (128, 64, 32)])
        n_front = 2 * 204 + 3 * 51
        self.midend = nn.ModuleList([_MidConv(n_front, midend_filters), _MidConv(midend_filters, midend_filters),
                                     _MidConv(midend_filters, midend_filters)])
        n_feat = n_front + 3 * midend_filters
        self.pool_bn = FrozenBatchNorm(2 * n_feat)
        self.dense = nn.Linear(2 * n_feat, dense_units)
        self.dense_bn = FrozenBatchNorm(dense_units)
        self.out = nn.Linear(dense_units, n_tags)

    def frontend(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 96) normalised log-mel -> (B, T, 561): timbral 7x38, 7x67, temporal 128, 64, 32."""
        out = []
        xp = F.pad(x, (0, 0, 3, 3))
        for conv in self.timbral:
            kt, kf = conv.weight.shape[2:]
            w, sign = conv.signed_matrix()
            out.append(conv.finish(_conv_freq_max(xp, kt, kf, w), sign))
        # the three temporal banks share one product: each kernel sits inside the longest one's
        # 'same' window (TF pads (k - 1) // 2 frames before, the rest after), zeros elsewhere
        longest = max(conv.weight.shape[2] for conv in self.temporal)
        before = (longest - 1) // 2
        blocks, signs = [], []
        for conv in self.temporal:
            k = conv.weight.shape[2]
            w, sign = conv.signed_matrix()
            lo = before - (k - 1) // 2
            blocks.append(F.pad(w, (0, 0, lo, longest - k - lo)))
            signs.append(sign)
        z = _conv_freq_max(F.pad(x, (0, 0, before, longest - 1 - before)), longest, 1, torch.cat(blocks, dim=1))
        for conv, part, sign in zip(self.temporal, z.split([len(c.bias) for c in self.temporal], dim=2), signs):
            out.append(conv.finish(part, sign))
        return torch.cat(out, dim=2)

    @torch.no_grad()
    def forward(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """``patches``: (N, T, 96) log-mel (T = 187 for the trained 3-s input); inference only
        (runs without autograd). Returns a dict:

        * ``taggram`` (N, n_tags) sigmoid probabilities; ``logits`` (N, n_tags);
        * ``penultimate`` (N, 200): the batch-normalised dense layer;
        * ``max_pool``, ``mean_pool`` (N, 753): the back-end's pooled features;
        * ``features`` (N, T, 753): frame-level front-end + mid-end output (timbral 0:408,
          temporal 408:561, cnn1 561:625, cnn2 625:689, cnn3 689:753), one row per 16-ms frame.
        """
        if patches.ndim != 3 or patches.shape[2] != N_MELS:
            raise ValueError(f"patches must be (N, T, {N_MELS}), got {tuple(patches.shape)}")
        x = self.input_bn(patches.to(self.out.weight.dtype).unsqueeze(-1)).squeeze(-1)
        front = self.frontend(x)
        h1 = self.midend[0](front)
        h2 = self.midend[1](h1) + h1
        h3 = self.midend[2](h2) + h2
        feats = torch.cat([front, h1, h2, h3], dim=2)
        max_pool, mean_pool = feats.amax(dim=1), feats.mean(dim=1)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # interleaved per channel
        penultimate = self.dense_bn(torch.relu(self.dense(self.pool_bn(pooled))))
        logits = self.out(penultimate)
        return {"taggram": torch.sigmoid(logits), "logits": logits, "penultimate": penultimate,
                "max_pool": max_pool, "mean_pool": mean_pool, "features": feats}


def iter_extract(audio_16k: np.ndarray, model: Musicnn, batch_size: int = 16,
                 frames: bool = True, patch_hop: int = PATCH_HOP) -> Iterator[dict[str, np.ndarray]]:
    """:func:`extract` batch by batch, for long signals: yields the same keys for ``batch_size``
    patches at a time (plus ``first_patch``, the index of the batch's first patch), so a caller
    can pool or store ``features`` before the next batch is computed."""
    audio = np.asarray(audio_16k)
    if audio.ndim != 1:
        raise InstrecError(f"<audio>: musicnn needs 1-D mono audio, got shape {audio.shape}")
    total = n_patches(n_frames(len(audio)), PATCH_FRAMES, patch_hop)
    if total == 0:
        raise InstrecError(f"<audio>: {len(audio) / SAMPLE_RATE:.2f} s is too short for musicnn "
                           f"(needs {(PATCH_FRAMES - 1) * HOP / SAMPLE_RATE:.2f} s)")
    keys = ("taggram", "penultimate", "max_pool", "mean_pool") + (("features",) if frames else ())
    for p0 in range(0, total, batch_size):
        count = min(batch_size, total - p0)
        mel = torch.from_numpy(log_mel(audio, p0 * patch_hop, (count - 1) * patch_hop + PATCH_FRAMES))
        patches = mel.unfold(0, PATCH_FRAMES, patch_hop).transpose(1, 2)  # (count, 187, 96) view
        out = model(patches)
        batch = {k: out[k].numpy() for k in keys}
        batch["patch_start_s"] = ((p0 + np.arange(count)) * patch_hop * HOP / SAMPLE_RATE).astype(np.float32)
        batch["first_patch"] = np.int64(p0)
        yield batch


def extract(audio_16k: np.ndarray, model: Musicnn, batch_size: int = 16,
            frames: bool = True, patch_hop: int = PATCH_HOP) -> dict[str, np.ndarray]:
    """Run musicnn on 16 kHz mono audio (at least 187 frames, about 2.98 s).

    Patches of 187 frames start every ``patch_hop`` frames (187: no overlap, as the original);
    ``batch_size`` patches at a time go through the network without autograd, their log-mel
    computed just for them (:func:`iter_extract` yields these batches one by one). ``model``:
    e.g. the converted MTT_musicnn weights (:func:`instrec.features.musicnn_weights.load_musicnn`).

    Returns float32 arrays: ``taggram`` (P, 50), ``penultimate`` (P, 200), ``max_pool`` and
    ``mean_pool`` (P, 753), ``features`` (P, 187, 753) if ``frames`` (16-ms frames, frame
    ``i`` of patch ``p`` is centred at ``(p * patch_hop + i) * 256 / 16000`` s), and
    ``patch_start_s`` (P,), each patch's start in seconds.
    """
    parts: dict[str, list[np.ndarray]] = {}
    for batch in iter_extract(audio_16k, model, batch_size, frames, patch_hop):
        for k, v in batch.items():
            if k != "first_patch":
                parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}

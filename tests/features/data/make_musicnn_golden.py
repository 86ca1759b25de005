"""Write the musicnn golden fixtures: ``musicnn_input.flac`` and ``musicnn_golden.npz``.

NOT run by the test suite. It needs a throwaway environment with the original code::

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install "tensorflow-cpu==2.15.*" librosa soundfile
    pip download --no-deps musicnn==0.1.0 -d /tmp/musicnn-wheel
    mkdir /tmp/musicnn-src && cd /tmp/musicnn-src && unzip /tmp/musicnn-wheel/*.whl
    # the original casts the mel spectrogram to float16 before multiplying by 10000,
    # which overflows to inf under current numpy; the throwaway copy is patched to float32:
    sed -i 's/np.float16/np.float32/' /tmp/musicnn-src/musicnn/extractor.py
    /tmp/tfenv/bin/python tests/features/data/make_musicnn_golden.py /tmp/musicnn-src

The input is 9 s of 16 kHz mono audio (three harmonic tones, a decaying click train
and a little noise), so the original cuts it into three 187-frame patches. The
fixture holds:

* ``logmel`` (563, 96): the original ``batch_data`` spectrogram (librosa mel, power 2,
  ``log10(10000 x + 1)``), float32;
* ``taggram`` (3, 50), ``mean_pool`` / ``max_pool`` (3, 753): from
  ``musicnn.extractor.extractor(..., extract_features=True)`` run unchanged (apart from
  the float32 patch);
* ``penultimate`` (3, 200), ``cnn3`` (3, 187, 64): the last mid-end layer for every patch,
  and ``frontend_rows`` (3, 10, 561): the front-end output (timbral 408 + temporal 153
  channels) at frames ``frontend_frames`` (the edges, where the padding matters, and a few
  in between). These come from a direct session run of the same graph on the same
  patches, because ``extractor`` returns the *first* patch's penultimate and cnn1..cnn3
  for every later patch (its loop reads stale variables); the script checks that its
  taggram and pools equal extractor's and that extractor's penultimate is patch 0's.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
HERE = Path(__file__).resolve().parent
FRONTEND_FRAMES = np.array([0, 1, 2, 3, 64, 93, 150, 184, 185, 186])


def make_audio(seconds: float = 9.0, seed: int = 1234) -> np.ndarray:
    """Deterministic test signal in [-1, 1], float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for f0, start, stop, amp in ((220.0, 0.0, 4.0, 0.20), (330.0, 2.5, 7.0, 0.15), (523.25, 5.0, 9.0, 0.12)):
        env = np.clip((t - start) * 20, 0, 1) * np.clip((stop - t) * 20, 0, 1)
        for h in range(1, 9):
            y += env * amp / h * np.sin(2 * np.pi * f0 * h * t + h)
    clicks = np.zeros_like(t)
    clicks[(np.arange(0, seconds, 0.5) * SR).astype(int)] = 1.0
    y += 0.3 * np.convolve(clicks, np.exp(-np.arange(800) / 80.0) * rng.standard_normal(800))[: len(t)]
    y += 0.01 * rng.standard_normal(len(t))
    return np.clip(y, -1, 1)


def main(src: str) -> None:
    sys.path.insert(0, src)
    import tensorflow as tf
    from musicnn import configuration, extractor, models

    flac = HERE / "musicnn_input.flac"
    sf.write(flac, make_audio(), SR, subtype="PCM_16")

    taggram, labels, feats = extractor.extractor(str(flac), model="MTT_musicnn", extract_features=True)
    batch, spec = extractor.batch_data(str(flac), 187, 187)
    assert list(labels) == list(configuration.MTT_LABELS)

    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
    training = tf.compat.v1.placeholder(tf.bool)
    out = models.define_model(x, training, "MTT_musicnn", 50)
    logits, timbral, temporal, _, _, cnn3, mean_pool, max_pool, penultimate = out
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, str(Path(src) / "musicnn" / "MTT_musicnn") + "/")
        y, tim, tem, c3, mean_, max_, pen = sess.run(
            [tf.nn.sigmoid(logits), timbral, temporal, cnn3, mean_pool, max_pool, penultimate],
            {x: batch, training: False})
    # the batched run equals the original one-patch-at-a-time run
    np.testing.assert_allclose(y, taggram, atol=1e-6)
    np.testing.assert_allclose(mean_, feats["mean_pool"], atol=1e-5)
    np.testing.assert_allclose(max_, feats["max_pool"], atol=1e-5)
    np.testing.assert_allclose(np.broadcast_to(pen[:1], pen.shape), feats["penultimate"], atol=1e-5)

    frontend = np.concatenate([tim, tem], axis=2)
    np.savez_compressed(
        HERE / "musicnn_golden.npz",
        logmel=spec.astype(np.float32), taggram=taggram.astype(np.float32),
        mean_pool=feats["mean_pool"].astype(np.float32), max_pool=feats["max_pool"].astype(np.float32),
        penultimate=pen.astype(np.float32), cnn3=c3[..., 0].astype(np.float32),
        frontend_rows=frontend[:, FRONTEND_FRAMES].astype(np.float32), frontend_frames=FRONTEND_FRAMES,
        tags=np.array(labels),
    )
    print("patches", batch.shape, "taggram", taggram.shape, "top tags", [labels[i] for i in np.argsort(-taggram.mean(0))[:5]])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/musicnn-src")

"""musicnn feature extraction speed (real-time factor) and peak memory on a long signal.

    python benchmarks/bench_musicnn.py [--quick] [--out DIR] [--repeats N] [--minutes 10]
                                       [--long-minutes 60] [--long-threads 1] [--weights-dir DIR]

* Speed: ``instrec.features.musicnn.extract`` (log-mel + patching + network, frame-level
  features kept) on a ``--minutes`` synthetic 16 kHz signal, with ``torch.set_num_threads(1)``
  and ``(2)``; real-time factor = seconds of audio per second of compute (median of
  ``--repeats``). The log-mel alone is timed too.
* Memory: a child process synthesises a ``--long-minutes`` signal (float32, kept whole, as
  a decoded file would be) and runs ``iter_extract`` over it, pooling each batch's frame-level
  features to ~1-s means before the next batch; its peak RSS (``ru_maxrss``) is reported,
  with the RSS before the network ran (Python + torch + weights + the signal).

The converted MTT_musicnn weights are used when present (``instrec download musicnn``);
otherwise random weights of the same shapes (the speed does not depend on the values).
torch's threads spin-wait, so on a machine where another process holds a core the 2-thread
numbers collapse; both thread counts are reported for that reason, with the load average.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from instrec._io import InstrecError  # noqa: E402
from instrec.features import musicnn as M  # noqa: E402
from instrec.features.musicnn_weights import load_musicnn  # noqa: E402

NAME = "bench_musicnn"
TARGET_RTF = 60.0


def synth(seconds: float, seed: int = 0, block_s: float = 60.0) -> np.ndarray:
    """float32 test music: a new harmonic tone every 2 s over quiet noise, built block by block."""
    n = int(seconds * M.SAMPLE_RATE)
    out = np.empty(n, dtype=np.float32)
    rng = np.random.default_rng(seed)
    block = int(block_s * M.SAMPLE_RATE)
    for start in range(0, n, block):
        t = np.arange(start, min(start + block, n), dtype=np.float64) / M.SAMPLE_RATE
        f0 = 110.0 * 2 ** (np.floor(t / 2.0) % 24 / 12.0)
        y = sum(0.2 / h * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 6))
        out[start:start + len(t)] = y + 0.02 * rng.standard_normal(len(t))
    return out


def model_for(weights_dir: str | None) -> tuple[M.Musicnn, str]:
    try:
        return load_musicnn(weights_dir=weights_dir), "MTT_musicnn (converted weights)"
    except InstrecError:
        net = M.Musicnn().eval()
        gen = torch.Generator().manual_seed(0)
        net.load_state_dict({k: (torch.rand(v.shape, generator=gen) + 0.5) if k.endswith("running_var")
                             else torch.randn(v.shape, generator=gen) * 0.05 for k, v in net.state_dict().items()})
        return net, "random weights (converted weights not found)"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_long(minutes: float, threads: int, weights_dir: str | None) -> None:
    """Run in a child process: stream a long signal through iter_extract; print one JSON line."""
    torch.set_num_threads(threads)
    audio = synth(minutes * 60.0, seed=1)
    net, _ = model_for(weights_dir)
    before = peak_rss_mib()
    pooled, tags = [], []
    t0 = time.perf_counter()
    for batch in M.iter_extract(audio, net, batch_size=16, frames=True):
        feats = batch["features"]  # (n, 187, 753) -> means over 60 frames (0.96 s), as a consumer would
        pooled.append(feats[:, :180].reshape(len(feats), 3, 60, -1).mean(axis=2))
        tags.append(batch["taggram"])
    wall = time.perf_counter() - t0
    print(json.dumps({"audio_s": len(audio) / M.SAMPLE_RATE, "wall_s": wall, "patches": int(sum(map(len, tags))),
                      "rss_before_mib": before, "peak_rss_mib": peak_rss_mib(),
                      "audio_mib": audio.nbytes / 2 ** 20,
                      "kept_mib": sum(p.nbytes for p in pooled) / 2 ** 20}))


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=3)
    p.add_argument("--minutes", type=float, default=None, help="signal length for the speed runs (default 10)")
    p.add_argument("--long-minutes", type=float, default=None, help="signal length for the memory run (default 60)")
    p.add_argument("--long-threads", type=int, default=1)
    p.add_argument("--weights-dir", default=None)
    p.add_argument("--child-long", type=float, default=None, help=argparse_hidden())
    p.add_argument("--threads", type=int, default=1, help=argparse_hidden())
    args = p.parse_args()
    if args.child_long is not None:
        child_long(args.child_long, args.threads, args.weights_dir)
        return 0
    minutes = args.minutes or (1.0 if args.quick else 10.0)
    long_minutes = args.long_minutes or (3.0 if args.quick else 60.0)
    repeats = C.repeats_of(args, default=3)
    machine = C.machine_info()
    net, weights = model_for(args.weights_dir)
    audio = synth(minutes * 60.0)
    seconds = len(audio) / M.SAMPLE_RATE
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        M.extract(audio[:M.SAMPLE_RATE * 10], net)  # warm-up
        mel_s = C.median([C.time_call(lambda: M.log_mel(audio)) for _ in range(repeats)])
        times = [C.time_call(lambda: M.extract(audio, net, frames=True)) for _ in range(repeats)]
        load = [round(x, 2) for x in os.getloadavg()]
        rows.append({"threads": threads, "audio_s": seconds, "extract_s": C.median(times), "best_s": min(times),
                     "rtf": seconds / C.median(times), "rtf_best": seconds / min(times),
                     "mel_s": mel_s, "mel_rtf": seconds / mel_s, "load_after": load})
        print(f"threads {threads}: extract {C.median(times):.2f} s for {seconds:.0f} s of audio -> "
              f"{seconds / C.median(times):.1f}x real time (best {seconds / min(times):.1f}x); "
              f"log-mel alone {seconds / mel_s:.0f}x; load {load}", flush=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--child-long", str(long_minutes),
            "--threads", str(args.long_threads)] + (["--weights-dir", args.weights_dir] if args.weights_dir else [])
    child = C.run_child(argv)
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return 1
    long = json.loads(child.stdout.strip().splitlines()[-1])
    long.update(threads=args.long_threads, rtf=long["audio_s"] / long["wall_s"], child_peak_rss_mib=child.max_rss_mib)
    print(f"long signal: {long['audio_s'] / 60:.0f} min, {long['patches']} patches, {long['threads']} thread(s): "
          f"{long['rtf']:.1f}x real time; peak RSS {long['child_peak_rss_mib']:.0f} MiB (before the network "
          f"{long['rss_before_mib']:.0f} MiB, of which the signal {long['audio_mib']:.0f} MiB)", flush=True)
    e2e = end_to_end(long_minutes, args.weights_dir)
    cols = ["threads", "audio_s", "extract_s", "rtf", "rtf_best", "mel_rtf", "load_after"]
    heads = {"rtf": "real-time factor (median)", "rtf_best": "best", "mel_rtf": "log-mel alone",
             "extract_s": "extract s (median)"}
    tables = [C.table("speed", f"musicnn extract, {minutes:g}-min signal", rows, cols, heads),
              C.table("memory", f"{long_minutes:g}-min signal through iter_extract", [long],
                      ["audio_s", "threads", "patches", "rtf", "rss_before_mib", "child_peak_rss_mib", "audio_mib"]),
              C.table("tagging", f"instrec predict with the default model, one {long_minutes:g}-min FLAC", [e2e],
                      ["audio_s", "wall_s", "x_real_time", "peak_rss_mib"])]
    for t in tables:
        C.print_table(t["title"], t["rows"], t["columns"], t.get("headers"))
    targets = [C.target(f"tagging a {long_minutes:g}-min file end to end (instrec predict)", e2e["x_real_time"],
                        ">=", TARGET_RTF, "x"),
               C.target("extract real-time factor, 2 threads (median)", rows[1]["rtf"], ">=", TARGET_RTF, "x"),
               C.target("extract real-time factor, 1 thread (median)", rows[0]["rtf"], ">=", TARGET_RTF, "x")]
    C.print_targets(targets)
    C.write_results(args.out, NAME, "musicnn feature extraction: speed and memory", args.quick,
                    {"minutes": minutes, "long_minutes": long_minutes, "repeats": repeats, "weights": weights,
                     "batch_size": 16}, tables, machine, targets,
                    [f"weights: {weights}", "real-time factor = seconds of audio / seconds of compute, "
                     "log-mel + patching + network with frame-level features kept",
                     "2-thread numbers collapse when another process holds a core (see load_after)"])
    return 0


def end_to_end(minutes: float, weights_dir: str | None) -> dict:
    """``instrec predict`` (default model, musicnn front end) on one FLAC of ``minutes``: decoding,
    resampling, features and model, start-up included; peak RSS of the command."""
    import soundfile as sf  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="instrec-bench-musicnn-") as d:
        path = Path(d) / "long.flac"
        sf.write(path, synth(minutes * 60.0), M.SAMPLE_RATE)
        argv = C.instrec_argv("predict", str(path), "--out", str(Path(d) / "tags.csv"), "--quiet")
        if weights_dir:
            argv += ["--weights", weights_dir]
        res = C.run_child(argv).check()
    seconds = minutes * 60.0
    print(f"instrec predict, {minutes:g}-min FLAC: {res.wall_s:.1f} s -> {seconds / res.wall_s:.1f}x real time, "
          f"peak RSS {res.max_rss_mib:.0f} MiB", flush=True)
    return {"audio_s": seconds, "wall_s": res.wall_s, "x_real_time": seconds / res.wall_s,
            "peak_rss_mib": res.max_rss_mib}


def argparse_hidden() -> str:
    import argparse  # noqa: PLC0415

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())

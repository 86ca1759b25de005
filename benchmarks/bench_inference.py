"""Inference speed: feature-level prediction per model, and end-to-end audio tagging per front end.

1. Feature level: clips/s of ``instrec.models.inference.run_model`` for every model (bilstm-att,
   att, fc, fc-t, rnn with random weights, rf fitted on synthetic data) on (N, 10, 128)
   float32 features, in this process, with 1 torch thread and with torch's default count.
2. End to end: seconds of audio tagged per wall-clock second (x real time) for the
   front ends ``logmel`` and ``vggish``. VGGish runs with randomly initialised weights of
   the real shapes, converted into a temporary weights folder with
   ``instrec.features.vggish_weights.convert_vggish`` (the real weights cannot be
   downloaded here; the arithmetic, and hence the cost, is the same). The run tagging
   with them is a tiny bilstm-att trained for 1 epoch on synthetic 128-feature data whose
   ``frontend.json`` names the front end. Audio is synthesised (tones + noise, 44.1 kHz
   stereo FLAC written with soundfile):

   * 10 s clips, ``instrec predict RUN FOLDER`` as a subprocess (wall time including
     start-up) and, in this process, ``Tagger.tag_file`` over the same files (steady state);
   * one 1-hour file (``--quick``: 2 minutes), ``instrec predict`` as a subprocess: x real
     time and the child's peak resident memory (``ru_maxrss`` from ``os.wait4``).

Targets: vggish >= 60x real time on the long file; peak RSS < 1.5 GB tagging it.

    python benchmarks/bench_inference.py [--quick] [--out DIR] [--repeats R] [--long-seconds S]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "bench_inference"
MODELS = ("bilstm-att", "att", "fc", "fc-t", "rnn", "rf")
FRONTENDS = ("logmel", "vggish")
SR = 44100


# --------------------------------------------------------------------------- audio
def synth_audio(path: Path, seconds: float, seed: int, block_seconds: float = 60.0) -> Path:
    """A stereo 44.1 kHz 16-bit FLAC of mixed tones (a few partials, slow tremolo, changing
    every few seconds) plus noise, written block by block so memory stays small."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = int(round(seconds * SR))
    block = int(block_seconds * SR)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with sf.SoundFile(tmp, "w", samplerate=SR, channels=2, subtype="PCM_16", format="FLAC") as fh:
        done = 0
        while done < total:
            n = min(block, total - done)
            t = (done + np.arange(n)) / SR
            x = np.zeros(n)
            seg = 4.0  # a new chord every 4 s
            for s0 in np.arange(np.floor(t[0] / seg) * seg, t[-1] + 1e-9, seg):
                r = np.random.default_rng([seed, int(s0 / seg)])
                sel = (t >= s0) & (t < s0 + seg)
                for f0 in 110.0 * 2 ** (r.integers(0, 36, 3) / 12):
                    for k, a in ((1, 0.5), (2, 0.25), (3, 0.12)):
                        x[sel] += a * np.sin(2 * np.pi * f0 * k * t[sel]) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t[sel]))
            x = 0.2 * x + 0.02 * rng.standard_normal(n)
            stereo = np.stack([x, 0.9 * x + 0.01 * rng.standard_normal(n)], axis=1)
            fh.write(np.clip(stereo, -1, 1).astype(np.float32))
            done += n
    tmp.replace(path)
    return path


def audio_seconds(path: Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


# --------------------------------------------------------------------------- setup
def random_vggish_weights(folder: Path) -> Path:
    """Random VGGish weights and PCA of the real shapes, written through the real converter."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from instrec.features.vggish import VGGish
    from instrec.features.vggish_weights import convert_vggish

    src = folder / "src"
    src.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in VGGish().state_dict().items()}, str(src / "vggish_random.safetensors"))
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    np.savez(src / "vggish_pca_random.npz", pca_eigen_vectors=q, pca_means=rng.normal(0.0, 0.1, 128))
    weights = folder / "weights"
    convert_vggish(src / "vggish_random.safetensors", src / "vggish_pca_random.npz", weights)
    return weights


def tiny_run(work: Path, frontend: str) -> Path:
    """A bilstm-att run trained 1 epoch on synthetic features that claim to come from ``frontend``."""
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    data = C.synthetic_openmic(work / f"data-{frontend}", 300, frontend=frontend)
    run = work / f"run-{frontend}"
    train(TrainConfig(data=str(data), out=str(run), model="bilstm-att", epochs=1), overwrite=True, progress=False)
    return run


# --------------------------------------------------------------------------- measurements
def feature_level(n_clips: int, repeats: int, work: Path) -> list[dict]:
    import numpy as np
    import torch

    from instrec.data.openmic import load_split
    from instrec.models import build_model
    from instrec.models.forest import RandomForestBaseline
    from instrec.models.inference import run_model

    data = load_split(C.synthetic_openmic(work / "data-features", max(n_clips, 1000) + 1), "train")
    X = np.ascontiguousarray(np.resize(data.X, (n_clips, *data.X.shape[1:])))
    models = {}
    for name in MODELS:
        if name == "rf":
            fit = data.subset(np.arange(min(1000, len(data))))
            models[name] = RandomForestBaseline(random_state=0).fit(fit.X, fit.targets, fit.Y_mask)
        else:
            torch.manual_seed(0)
            models[name] = build_model(name).eval()
        run_model(models[name], X[:64])  # warm-up
    default_threads = torch.get_num_threads()
    thread_counts = [1] if default_threads == 1 else [1, default_threads]
    times: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(repeats):
            for threads in thread_counts:
                torch.set_num_threads(threads)
                for name, model in models.items():
                    if name == "rf" and threads != thread_counts[0]:
                        continue  # numpy only: torch's thread count does not apply
                    times.setdefault((name, threads), []).append(C.time_call(lambda: run_model(model, X)))
    finally:
        torch.set_num_threads(default_threads)
    rows = []
    for name in MODELS:
        for threads in thread_counts:
            if (name, threads) not in times:
                continue
            s = C.median(times[(name, threads)])
            rows.append({"model": name, "threads": threads if name != "rf" else "n/a (numpy)", "clips": n_clips,
                         "seconds": s, "clips_per_s": n_clips / s, "repeats": repeats})
    return rows


def predict_cli(run: Path, inputs: list[Path], weights: Path | None, out_csv: Path) -> C.ChildResult:
    argv = C.instrec_argv("predict", str(run), *map(str, inputs), "--out", str(out_csv), "--overwrite", "--quiet")
    if weights is not None:
        argv += ["--weights", str(weights)]
    return C.run_child(argv).check()


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=None, help="feature-level clips (default 4000; --quick 1000)")
    p.add_argument("--audio-clips", type=int, default=None, help="10 s audio clips (default 100; --quick 4)")
    p.add_argument("--long-seconds", type=float, default=None, help="length of the long file (default 3600; "
                   "--quick 120)")
    p.add_argument("--long-repeats", type=int, default=None, help="repeats of the long file (default 2; --quick 1)")
    args = p.parse_args()
    repeats = C.repeats_of(args)
    n_clips = args.clips or (1000 if args.quick else 4000)
    n_audio = args.audio_clips or (4 if args.quick else 100)
    long_s = args.long_seconds or (120.0 if args.quick else 3600.0)
    long_repeats = args.long_repeats or (1 if args.quick else 2)
    machine = C.machine_info()
    print(f"bench_inference: {repeats} repeat(s), median reported{' [QUICK MODE]' if args.quick else ''}")
    print(f"machine: {C.machine_line(machine)}", flush=True)

    with C.workdir(args, "instrec-bench-inference-") as work:
        print(f"feature-level inference, {n_clips} clips x 10 x 128 ...", flush=True)
        feat_rows = feature_level(n_clips, repeats, work)

        print("setting up: random VGGish weights, tiny runs, synthetic audio ...", flush=True)
        weights = random_vggish_weights(work / "vggish")
        runs = {fe: tiny_run(work, fe) for fe in FRONTENDS}
        clips_dir = work / "clips"
        clips = [synth_audio(clips_dir / f"clip{i:03d}.flac", 10.0, seed=i) for i in range(n_audio)]
        long_name = f"long-{int(long_s)}s.flac"
        long_file = work / long_name
        if not long_file.is_file() or abs(audio_seconds(long_file) - long_s) > 0.5:
            t0 = time.perf_counter()
            synth_audio(long_file, long_s, seed=12345)
            print(f"  synthesised {long_s:.0f} s FLAC ({long_file.stat().st_size / 2**20:.0f} MiB) in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
        clip_audio = sum(audio_seconds(c) for c in clips)
        long_audio = audio_seconds(long_file)

        from instrec.tagging.predict import Tagger

        cli_clips: dict[str, list[C.ChildResult]] = {fe: [] for fe in FRONTENDS}
        steady: dict[str, list[float]] = {fe: [] for fe in FRONTENDS}
        cli_long: dict[str, list[C.ChildResult]] = {fe: [] for fe in FRONTENDS}
        taggers = {}
        for fe in FRONTENDS:
            taggers[fe] = Tagger(runs[fe], weights_dir=weights if fe == "vggish" else None)
            taggers[fe].tag_file(clips[0])  # warm-up: loads the front end
        for rep in range(repeats):
            print(f"repeat {rep + 1}/{repeats}", flush=True)
            for fe in FRONTENDS:
                w = weights if fe == "vggish" else None
                r = predict_cli(runs[fe], [clips_dir], w, work / "tags.csv")
                cli_clips[fe].append(r)
                s = C.time_call(lambda: [taggers[fe].tag_file(c) for c in clips])
                steady[fe].append(s)
                print(f"  {fe:<7} {n_audio} x 10 s clips: CLI {r.wall_s:6.2f} s ({clip_audio / r.wall_s:6.1f}x real "
                      f"time), in-process {s:6.2f} s ({clip_audio / s:6.1f}x)", flush=True)
        for rep in range(long_repeats):
            for fe in FRONTENDS:
                w = weights if fe == "vggish" else None
                r = predict_cli(runs[fe], [long_file], w, work / "tags-long.csv")
                cli_long[fe].append(r)
                print(f"  {fe:<7} {long_audio:.0f} s file: CLI {r.wall_s:6.2f} s ({long_audio / r.wall_s:6.1f}x real "
                      f"time), peak RSS {r.max_rss_mib:.0f} MiB", flush=True)

    e2e_rows = []
    for fe in FRONTENDS:
        wall = C.median([r.wall_s for r in cli_clips[fe]])
        e2e_rows.append({"frontend": fe, "input": f"{n_audio} x 10 s clips", "how": "instrec predict (subprocess)",
                         "audio_s": clip_audio, "wall_s": wall, "x_real_time": clip_audio / wall,
                         "peak_rss_mib": C.median([r.max_rss_mib for r in cli_clips[fe]]), "repeats": repeats})
        s = C.median(steady[fe])
        e2e_rows.append({"frontend": fe, "input": f"{n_audio} x 10 s clips", "how": "Tagger.tag_file (in process)",
                         "audio_s": clip_audio, "wall_s": s, "x_real_time": clip_audio / s, "peak_rss_mib": None,
                         "repeats": repeats})
        wall = C.median([r.wall_s for r in cli_long[fe]])
        e2e_rows.append({"frontend": fe, "input": f"1 file of {long_audio / 60:.0f} min",
                         "how": "instrec predict (subprocess)", "audio_s": long_audio, "wall_s": wall,
                         "x_real_time": long_audio / wall,
                         "peak_rss_mib": max(r.max_rss_mib for r in cli_long[fe]), "repeats": long_repeats})

    long_rows = {r["frontend"]: r for r in e2e_rows if r["input"].startswith("1 file")}
    targets = [C.target(f"vggish tagging speed, {long_audio / 60:.0f}-min file (x real time)",
                        long_rows["vggish"]["x_real_time"], ">=", 60, "x"),
               C.target(f"peak RSS tagging the {long_audio / 60:.0f}-min file (MiB, worst front end)",
                        max(r["peak_rss_mib"] for r in long_rows.values()), "<", 1536, " MiB")]

    fcols = ["model", "threads", "clips", "seconds", "clips_per_s"]
    fhead = {"clips_per_s": "clips/s"}
    ecols = ["frontend", "input", "how", "audio_s", "wall_s", "x_real_time", "peak_rss_mib"]
    ehead = {"audio_s": "audio s", "wall_s": "wall s", "x_real_time": "x real time", "peak_rss_mib": "peak RSS MiB"}
    C.print_table("Feature-level inference (run_model, median of repeats)", feat_rows, fcols, fhead)
    C.print_table("End-to-end tagging (synthetic audio; VGGish with random weights of the real shapes)",
                  e2e_rows, ecols, ehead)
    C.print_targets(targets)
    notes = [
        "Audio is synthetic (tones + noise), 44.1 kHz stereo FLAC; decoding, resampling to 16 kHz, log-mel, "
        "the front end and the model are all inside the measured time.",
        "VGGish uses randomly initialised weights of the real shapes (converted with convert_vggish); the cost is "
        "that of the real network. The tagging model is a tiny bilstm-att (1 epoch on synthetic data).",
        "Subprocess rows include interpreter and torch start-up; in-process rows are steady state.",
        f"Long file: {long_audio:.0f} s" + (" (quick mode: not the 1-hour file)" if long_audio < 3599 else "") + ".",
        "Feature-level rf: fitted on up to 1,000 synthetic clips (100 trees, depth 8).",
    ]
    if args.quick:
        notes.append("QUICK MODE: small sizes; numbers only check that the script works.")
    path = C.write_results(args.out, NAME, "Inference speed", args.quick,
                           {"feature_clips": n_clips, "audio_clips": n_audio, "long_seconds": long_audio,
                            "repeats": repeats, "long_repeats": long_repeats, "sample_rate": SR,
                            "vggish_weights": "random, real shapes"},
                           [C.table("features", "Feature-level inference", feat_rows, fcols, fhead),
                            C.table("tagging", "End-to-end tagging", e2e_rows, ecols, ehead)],
                           machine, targets, notes)
    print(f"\nwrote {path} (+ CSV files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Catalogue tagging on Dask: files/s with 1 and 2 workers, memory, scheduler overhead, projection.

    python benchmarks/bench_dask.py [--quick] [--out DIR] [--repeats N] [--files 96] [--batch 8]

* Throughput: ``instrec.tagging.catalogue.tag_catalogue`` with the ``logmel`` front end (a
  ``bilstm-att`` run trained 1 epoch on synthetic features; the weights do not change the
  cost) on ``--files`` synthetic 30 s 44.1 kHz stereo FLACs, into a new Parquet folder each
  time, on a local Dask cluster of 1 and of 2 worker processes (one thread each). The
  cluster is started and warmed up (model loaded in every worker) before the clock starts;
  the timed job is the whole ``tag_catalogue`` call (batches, scheduling, decoding, features,
  model, Parquet parts, manifest). Worker counts are interleaved in every repeat; the median
  is reported. Beside it, the local path (``instrec.tagging.predict.predict`` in this
  process, one thread) on the same files.
* What the cores give: 8 pure-CPU tasks (0.5 s each) on each cluster before every timed job;
  their speed-up from 1 to 2 workers is the ceiling of the tagging's on a shared machine.
* Peak memory per worker: the largest ``ru_maxrss`` a worker reported after its batches.
* Scheduler overhead per task: ``--tasks`` no-op tasks through the same bounded submission
  loop (:func:`instrec.parallel.as_completed_bounded` over ``client.get_executor()``),
  wall time / tasks.
* Experiment grid: ``run_experiment`` on the ``demo`` grid (4 runs, 1 seed) of a synthetic
  OpenMIC-shaped data set (``--grid-clips``, ``--grid-epochs``), 2 workers, with the local
  process pool (engine ``solo``) and with a local Dask cluster (engine ``dask``, cluster
  start-up included, as a user's command pays it), interleaved in every repeat.
* Projection (not a measurement): the hours one million 30 s tracks would take at the
  measured files/s of 1 and 2 workers, and for more workers at 2 workers' per-worker rate,
  capped by the scheduler's measured task rate times the batch size; it assumes the files
  are as cheap to read as local FLACs and that workers scale as measured from 1 to 2.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from bench_inference import synth_audio, tiny_run  # noqa: E402

NAME = "bench_dask"
TRACK_S = 30.0
CATALOGUE = 1_000_000
TARGET_SPEEDUP = 1.8


def _noop(x: int) -> int:
    return x


def _spin(seconds: float) -> float:
    """Pure CPU work: ``seconds`` of this process's CPU time."""
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        pass
    return seconds


def cpu_calibration(client, n_tasks: int, in_flight: int, seconds: float = 0.5) -> float:
    """Wall seconds for ``n_tasks`` tasks of ``seconds`` CPU each: what the cores give the workers now."""
    from instrec.parallel import as_completed_bounded

    t0 = time.perf_counter()
    for _, fut in as_completed_bounded(_spin, [seconds] * n_tasks, client.get_executor(pure=False), in_flight):
        fut.result()
    return time.perf_counter() - t0


def overhead_per_task(client, n_tasks: int, in_flight: int) -> float:
    """Seconds of wall time per no-op task through the bounded submission loop."""
    from instrec.parallel import as_completed_bounded

    ex = client.get_executor(pure=False)
    t0 = time.perf_counter()
    for _, fut in as_completed_bounded(_noop, range(n_tasks), ex, in_flight):
        fut.result()
    return (time.perf_counter() - t0) / n_tasks


def grid_engines(work: Path, args, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of the demo grid with engine solo (process pool) and dask, interleaved."""
    from instrec.pipelines.experiment import run_experiment

    clips = args.grid_clips or (300 if args.quick else 2000)
    epochs = args.grid_epochs or (1 if args.quick else 5)
    data = C.synthetic_openmic(work / "grid-data", clips)
    walls: dict[str, list[float]] = {"solo": [], "dask": []}
    for rep in range(repeats):
        for engine, times in walls.items():
            t0 = time.perf_counter()
            run_experiment(data, work / f"grid-{engine}-{rep}", grid="demo", seeds=1, epochs=epochs, jobs=2,
                           progress=False, engine=engine, compile="off")
            times.append(time.perf_counter() - t0)
            print(f"  repeat {rep + 1}: grid, engine {engine}: {times[-1]:.1f} s", flush=True)
    return walls


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=None, help="30 s files to tag (default 96; --quick 16)")
    p.add_argument("--batch", type=int, default=8, help="files per task (default 8)")
    p.add_argument("--tasks", type=int, default=None, help="no-op tasks for the overhead (default 1000; --quick 200)")
    p.add_argument("--grid-clips", type=int, default=None, help="clips of the grid's data set (default 2000; "
                   "--quick 300)")
    p.add_argument("--grid-epochs", type=int, default=None, help="epochs of every grid run (default 5; --quick 1)")
    args = p.parse_args()
    repeats = C.repeats_of(args)
    n_files = args.files or (16 if args.quick else 96)
    n_tasks = args.tasks or (200 if args.quick else 1000)
    machine = C.machine_info()
    print(f"{NAME}: {repeats} repeat(s), median reported{' [QUICK MODE]' if args.quick else ''}")
    print(f"machine: {C.machine_line(machine)}", flush=True)

    import distributed
    import torch

    from instrec.tagging.catalogue import tag_catalogue
    from instrec.tagging.predict import predict

    torch.set_num_threads(1)
    workers_list = (1, 2)
    with C.workdir(args, "instrec-bench-dask-") as work:
        run = tiny_run(work, "logmel")
        audio = work / "audio"
        distinct = min(8, n_files)  # the content does not change the cost; copies save synthesis time
        for i in range(n_files):
            target = audio / f"track{i:05d}.flac"
            if not target.is_file():
                if i < distinct:
                    synth_audio(target, TRACK_S, seed=i)
                else:
                    shutil.copyfile(audio / f"track{i % distinct:05d}.flac", target)
        files = sorted(audio.glob("*.flac"))[:n_files]
        clusters, clients, starts = {}, {}, {}
        for w in workers_list:
            t0 = time.perf_counter()
            clusters[w] = distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0")
            clients[w] = distributed.Client(clusters[w])
            starts[w] = time.perf_counter() - t0
            # warm-up: every worker loads the model and front end once
            tag_catalogue(run, files[:w], work / f"warm-{w}", executor=clients[w].get_executor(pure=False),
                          batch_files=1, max_in_flight=w)
        walls = {w: [] for w in workers_list}
        spins = {w: [] for w in workers_list}
        audio_s = {w: 0.0 for w in workers_list}
        rss = {w: 0.0 for w in workers_list}
        local_walls = []
        predict(run, files[:1], threads=1)
        for rep in range(repeats):
            for w in workers_list:
                spins[w].append(cpu_calibration(clients[w], 8, 2 * w))
                out = work / f"tags-{w}-{rep}"
                t0 = time.perf_counter()
                r = tag_catalogue(run, files, out, executor=clients[w].get_executor(pure=False),
                                  batch_files=args.batch, max_in_flight=2 * w)
                walls[w].append(time.perf_counter() - t0)
                audio_s[w], rss[w] = r.audio_seconds, max(rss[w], r.peak_worker_rss_mib)
                assert r.files_tagged == n_files, r
                print(f"  repeat {rep + 1}: {w} worker(s) {walls[w][-1]:.2f} s ({n_files / walls[w][-1]:.2f} files/s)",
                      flush=True)
            t0 = time.perf_counter()
            predict(run, files, threads=1)
            local_walls.append(time.perf_counter() - t0)
            print(f"  repeat {rep + 1}: local predict {local_walls[-1]:.2f} s", flush=True)
        overhead = {w: C.median([overhead_per_task(clients[w], n_tasks, 2 * w) for _ in range(repeats)])
                    for w in workers_list}
        for w in workers_list:
            clients[w].close()
            clusters[w].close()
        grid_walls = grid_engines(work, args, repeats)

    rows = []
    local = C.median(local_walls)
    rows.append({"engine": "local predict (in process)", "workers": 1, "files": n_files, "wall_s": local,
                 "files_per_s": n_files / local, "audio_s_per_s": audio_s[1] / local, "speedup": None,
                 "peak_rss_mib": None, "start_s": None, "overhead_ms": None})
    for w in workers_list:
        wall = C.median(walls[w])
        rows.append({"engine": "dask", "workers": w, "files": n_files, "wall_s": wall, "files_per_s": n_files / wall,
                     "audio_s_per_s": audio_s[w] / wall, "speedup": C.median(walls[1]) / wall,
                     "peak_rss_mib": rss[w], "start_s": starts[w], "overhead_ms": 1000 * overhead[w],
                     "cpu_speedup": C.median(spins[1]) / C.median(spins[w])})
    rate = {r["workers"]: r["files_per_s"] for r in rows if r["engine"] == "dask"}
    task_rate = 1.0 / overhead[2]
    proj = []
    for w in (1, 2, 8, 32, 128):
        measured = w in rate
        fps = rate[w] if measured else w * rate[2] / 2
        cap = task_rate * args.batch
        fps_capped = min(fps, cap)
        proj.append({"workers": w, "basis": "measured rate" if measured else "2 workers' per-worker rate, linear",
                     "files_per_s": fps_capped, "hours_1M": CATALOGUE / fps_capped / 3600,
                     "scheduler_cap_files_per_s": cap})
    speedup = rows[2]["speedup"]
    targets = [C.target("catalogue tagging, 2 workers vs 1 (logmel)", speedup, ">=", TARGET_SPEEDUP, "x")]
    cols = ["engine", "workers", "files", "wall_s", "files_per_s", "audio_s_per_s", "speedup", "peak_rss_mib",
            "start_s", "overhead_ms", "cpu_speedup"]
    heads = {"wall_s": "wall s", "files_per_s": "files/s", "audio_s_per_s": "audio s / wall s",
             "speedup": "vs 1 worker", "peak_rss_mib": "peak RSS / worker MiB", "start_s": "cluster start s",
             "overhead_ms": "scheduler ms / task", "cpu_speedup": "pure-CPU tasks vs 1 worker"}
    pcols = ["workers", "basis", "files_per_s", "hours_1M", "scheduler_cap_files_per_s"]
    pheads = {"files_per_s": "files/s", "hours_1M": "hours for 1M x 30 s (projection)",
              "scheduler_cap_files_per_s": "scheduler cap files/s"}
    C.print_table(f"Catalogue tagging, {n_files} x 30 s FLAC, logmel, batches of {args.batch}", rows, cols, heads)
    C.print_table("Projection: one million 30 s tracks (not measured)", proj, pcols, pheads)
    C.print_targets(targets)
    load_start, load_end = machine.get("load_average_at_start"), list(os.getloadavg())
    busy = max((load_start or [0.0])[0], load_end[0]) > 1.0
    notes = [
        (f"Load average (1, 5, 15 min) {load_start} at the start and {[round(x, 2) for x in load_end]} at the end, "
         f"{machine.get('usable_cores')} usable cores"
         + ("; other processes were running on the machine, so the workers competed with them for the cores and "
            "the 2-worker speed-up understates what 2 free cores give (rerun on a quiet machine)." if busy
            else "; the machine was otherwise idle.")),
        (f"{n_files} synthetic 30 s 44.1 kHz stereo FLACs ({distinct} distinct, the rest copies), logmel front end, "
         f"bilstm-att run; {args.batch} files per task, 2 tasks in flight per worker; one torch thread per worker."),
        ("Dask rows: the whole tag_catalogue call on a started, warmed-up local cluster (cluster start-up listed "
         "apart); the local row: instrec.tagging.predict.predict in this process, no Parquet."),
        ("Pure-CPU tasks vs 1 worker: 8 tasks of 0.5 s of CPU each, timed just before the tagging in every repeat "
         "(median): the speed-up the machine's free cores allowed at that moment, the ceiling of the tagging's."),
        ("Scheduler overhead: wall time per no-op task through the same bounded submission loop, i.e. the cost a "
         "task adds besides its work; with batches of files it is paid once per batch."),
        ("Grid: run_experiment, demo grid, compile off, the whole call (the dask engine starts its local cluster "
         "inside it); solo uses instrec's spawn-based process pool."),
        ("The projection assumes linear scaling beyond 2 workers at the 2-worker per-worker rate and the "
         "scheduler's measured task rate times the batch size as a ceiling; storage and network are not in it."),
    ]
    grows = [{"engine": e, "grid": "demo (4 runs, 1 seed)", "wall_s": C.median(w), "repeats": len(w)}
             for e, w in grid_walls.items()]
    for r in grows:
        r["vs_solo"] = r["wall_s"] / grows[0]["wall_s"]
    gcols = ["engine", "grid", "wall_s", "vs_solo", "repeats"]
    gheads = {"wall_s": "wall s", "vs_solo": "time vs solo pool"}
    C.print_table("Experiment grid: local process pool vs local Dask cluster (2 workers)", grows, gcols, gheads)
    C.write_results(args.out, NAME, "Catalogue tagging on Dask", args.quick,
                    {"files": n_files, "batch_files": args.batch, "tasks": n_tasks, "repeats": repeats},
                    [C.table("throughput", "Catalogue tagging on a local Dask cluster", rows, cols, heads),
                     C.table("projection", "Projection: one million 30 s tracks (not measured)", proj, pcols,
                             pheads),
                     C.table("grid", "Experiment grid: local process pool vs local Dask cluster (2 workers)", grows,
                             gcols, gheads)],
                    machine, targets, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

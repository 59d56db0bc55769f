"""fastcorr.dask against the in-memory calls: a 16k x 16k float32 image (3x3 and 31x31 "same")
and an NCHW batch larger than memory, on dask's threaded scheduler and on a LocalCluster of
worker processes (one thread each).

usage: python asv_benchmarks/dask_compare.py [--size 16384] [--chunk 4096] [--workers 2]
                                             [--batch-gib 32] [--repeat 3] [--json out.json]

Needs the ``dask`` extra with ``distributed`` (the test extra has both). Every figure is the
median of ``--repeat`` runs after one untimed run (compilation, first touches). The image is
made once in memory and read as blocks by the threaded scheduler (``da.from_array``); the
cluster makes one of the same size on its workers (untimed). The result stays as blocks
(``persist``; "compute" also gathers it into one array). The batch is made block by block from a seeded
generator (it never exists whole), convolved (depthwise 3x3, 64 channels on 128^2 planes) and
reduced to one mean per channel; the same pipeline without the convolution is timed beside it,
so the convolution's own share is the difference. ``fastcorr warmup`` runs on each worker
before anything is timed, so workers load compiled kernels instead of compiling them.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

try:
    import fastcorr
except ImportError:  # run from a checkout without installing fastcorr
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import fastcorr

import dask
import dask.array as da
from distributed import Client, LocalCluster, wait

import fastcorr.dask as fd
from fastcorr import _machine


def median_time(run, repeat):
    run()  # untimed: compilation, first touches
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def warm_worker():
    from fastcorr.warmup import warmup

    return len(warmup(("float32",), progress=False))


def batch_pipeline(batch, chunk_images, convolve):
    """Per-channel means of a depthwise 3x3 layer's output over a batch made block by block."""
    channels, side = 64, 128
    x = da.random.default_rng(0).standard_normal((batch, channels, side, side),
                                                 chunks=(chunk_images, channels, side, side),
                                                 dtype=np.float32)
    if convolve:
        w = np.random.default_rng(1).standard_normal((channels, 1, 3, 3)).astype(np.float32)
        x = fd.conv2d(x, w, groups=channels, padding=1)
    return x.mean(axis=(0, 2, 3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-gib", type=float, default=32.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    print(f"machine: {_machine.cpu_model()}; Numba targets {_machine.numba_target()}; "
          f"{fastcorr.threads.max_threads()} threads; dask {dask.__version__}")
    rows = []

    def report(workload, how, seconds, reference=None):
        ratio = "" if reference is None else f"{reference / seconds:6.2f}x"
        print(f"{workload:<34} {how:<30} {seconds * 1e3:10.1f} ms  {ratio}", flush=True)
        rows.append(dict(workload=workload, how=how, seconds=seconds,
                         in_memory_over_this=None if reference is None else reference / seconds))

    rng = np.random.default_rng(0)
    image = rng.standard_normal((args.size, args.size), dtype=np.float32)
    images_per_chunk = 64
    batch = int(args.batch_gib * 2**30 // (64 * 128 * 128 * 4)) // images_per_chunk
    batch *= images_per_chunk
    print(f"image {args.size}^2 float32 ({image.nbytes / 2**30:.1f} GiB) in {args.chunk}^2 "
          f"chunks; batch ({batch}, 64, 128, 128) float32 ({batch * 64 * 128 * 128 * 4 / 2**30:.0f}"
          f" GiB) in chunks of {images_per_chunk} images\n")
    print(f"{'workload':<34} {'how':<30} {'median':>13}  in-memory / this")

    in_memory = {}
    for k in (3, 31):
        kernel = rng.standard_normal((k, k)).astype(np.float32)
        label = f"image {args.size}^2 k{k} same"
        out = np.empty_like(image)
        in_memory[k] = median_time(
            lambda: fastcorr.correlate2d(image, kernel, "same", out=out), args.repeat)
        method = fastcorr.choose_method(image[:4096, :4096], kernel, "same")
        report(label, f"in memory ({method})", in_memory[k])
        blocks = da.from_array(image, chunks=args.chunk)
        lazy = fd.correlate2d(blocks, kernel, "same",
                              threads_per_block=1)
        seconds = median_time(lambda: dask.persist(lazy, scheduler="threads"),
                              args.repeat)
        report(label, "dask threads, persist", seconds, in_memory[k])
        seconds = median_time(lambda: lazy.compute(scheduler="threads"), args.repeat)
        report(label, "dask threads, compute", seconds, in_memory[k])
    del out

    # the batch beyond memory, threaded scheduler
    label = f"depthwise 3x3 batch {batch}"
    chunk_seconds = median_time(lambda: fastcorr.conv2d(
        np.ones((images_per_chunk, 64, 128, 128), np.float32),
        np.ones((64, 1, 3, 3), np.float32), groups=64, padding=1), args.repeat)
    report(label, "in memory, per chunk x chunks", chunk_seconds * batch / images_per_chunk)
    for convolve in (False, True):
        pipeline = batch_pipeline(batch, images_per_chunk, convolve)
        start = time.perf_counter()
        pipeline.compute(scheduler="threads")
        what = "conv + mean" if convolve else "make + mean only"
        report(label, f"dask threads, {what}", time.perf_counter() - start)

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        start = time.perf_counter()
        client.run(warm_worker)
        print(f"(fastcorr warmup on {args.workers} workers: "
              f"{time.perf_counter() - start:.1f} s)")
        # the image made on the workers (the same size; its values do not matter to the time)
        blocks = da.random.default_rng(0).standard_normal(
            image.shape, chunks=args.chunk, dtype=np.float32).persist()
        wait(blocks)
        for k in (3, 31):
            kernel = np.random.default_rng(k).standard_normal((k, k)).astype(np.float32)
            label = f"image {args.size}^2 k{k} same"
            runs = iter(range(1, 1000))

            def run():
                # a new kernel each run: the same graph would find the last run's blocks
                lazy = fd.correlate2d(blocks, kernel * np.float32(1 + next(runs) * 2**-20),
                                      "same")
                wait(lazy.persist())

            seconds = median_time(run, args.repeat)
            report(label, f"LocalCluster {args.workers}x1, persist", seconds, in_memory[k])
        del blocks
        for convolve in (False, True):
            pipeline = batch_pipeline(batch, images_per_chunk, convolve)
            start = time.perf_counter()
            pipeline.compute()
            what = "conv + mean" if convolve else "make + mean only"
            report(f"depthwise 3x3 batch {batch}", f"LocalCluster {args.workers}x1, {what}",
                   time.perf_counter() - start)

    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=_machine.cpu_model(), rows=rows),
                                              indent=1))


if __name__ == "__main__":
    main()

"""Triton classification throughput with dynamic batching, at several client concurrencies.

Starts a real ``tritonserver`` (nvidia-pytriton wheel, CPU instances) on the
project's ``triton_models/`` (one model loaded), then keeps ``concurrency``
requests in flight over one ``tritonclient.grpc.aio`` channel for a fixed time,
each request one short prompt, and prints requests/s with p50/p99 latency.

    .venv/bin/python bench/triton_throughput.py [--model task_router] [--seconds 10]
        [--concurrency 1,8,32] [--server-cores 0]

The server is pinned with ``taskset`` (default: core 0, the one-core number);
the client runs on the remaining core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import numpy as np
from llm_router.proxy.triton_server import REPOSITORY, TritonServer

PROMPTS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Summarize the following paragraph in two sentences: the city council met on Monday to discuss budgets.",
    "What is the capital of Australia and why was it chosen?",
    "Brainstorm five gift ideas for a friend who loves hiking.",
    "Rewrite this sentence to sound more formal: gonna be late, sorry!",
    "Classify these animals into mammals and birds: eagle, whale, sparrow, bat.",
]
"""Short prompts of roughly 15 to 30 tokens."""


async def run_level(url: str, model: str, concurrency: int, seconds: float) -> tuple[float, list[float]]:
    from tritonclient.grpc import InferInput
    from tritonclient.grpc.aio import InferenceServerClient

    client = InferenceServerClient(url)
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        index = offset
        while time.perf_counter() < stop_at:
            item = InferInput("TEXT", [1, 1], "BYTES")
            item.set_data_from_numpy(np.array([[PROMPTS[index % len(PROMPTS)].encode()]], dtype=np.object_))
            started = time.perf_counter()
            await client.infer(model, [item], client_timeout=30)
            latencies.append(time.perf_counter() - started)
            index += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(offset) for offset in range(concurrency)))
    elapsed = time.perf_counter() - began
    await client.close()
    return len(latencies) / elapsed, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="task_router")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--server-cores", default="0", help="taskset CPU list for tritonserver ('' = no pinning)")
    args = parser.parse_args()
    server = TritonServer(Path(REPOSITORY), models=[args.model])
    server.start()
    try:
        if args.server_cores:
            assert server.process is not None
            os.system(f"taskset -a -p -c {args.server_cores} {server.process.pid} > /dev/null")
            # The Python backend's stub processes are children: pin them too.
            os.system(f"for pid in $(pgrep -P {server.process.pid}); do taskset -a -p -c {args.server_cores} "
                      "$pid > /dev/null; done")
        asyncio.run(run_level(server.grpc_url, args.model, 4, args.warmup))
        print(f"Triton {args.model}: dynamic batching (max batch 32, 500 us queue delay), CPU instance, "
              f"server on cores '{args.server_cores or 'all'}', {args.seconds:g} s per level")
        print(f"{'concurrency':>11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'n':>6}")
        for level in (int(part) for part in args.concurrency.split(",")):
            rate, latencies = asyncio.run(run_level(server.grpc_url, args.model, level, args.seconds))
            print(f"{level:>11} {rate:>8.1f} {percentile(latencies, 0.5) * 1000:>8.2f} "
                  f"{percentile(latencies, 0.99) * 1000:>8.2f} {statistics.fmean(latencies) * 1000:>8.2f} "
                  f"{len(latencies):>6}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""Embedded classification latency and micro-batched throughput, on one CPU core.

``python bench/classifier_latency.py`` pins itself to one core (``--core``,
like ``taskset -c 0``), loads a built-in model (``--model``, default
``task_router``: its head, lexicon and views) and the ONNX encoder variant it
was trained on with one onnxruntime thread, and measures:

1. **Latency** of one classification at a time for prompts of about 50, 500
   and 2,000 tokens: the encoder call alone (wall and CPU time), and the whole embedded path a
   request takes (``classifier_text`` truncation, the views, the hop to the
   worker thread through ``EmbeddedRuntime``, the lexicon and the head). The
   built-in heads encode the ``lead`` view (the first 16 and last 8 words), so
   50, 500 and 2,000-token prompts cost the encoder about the same.
2. **Throughput** through the micro-batcher at concurrency 1, 8 and 32
   (closed loop: each client sends its next ~50-token prompt when the last is
   answered), with the mean batch size the runtime formed.

Needs the encoder built (``llm-router models build``). Target from the issue:
p50 <= 5 ms for a 50-token prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

TARGET_P50_MS_50_TOKENS = 5.0
PARAGRAPH = (
    "The committee reviewed the quarterly report on regional water supplies and found that demand "
    "had risen faster than expected, mostly because of new housing in the northern districts. "
    "Engineers proposed two options: expanding the existing treatment plant, or building a smaller "
    "facility closer to the new neighbourhoods. The first is cheaper to run but needs longer pipes; "
    "the second costs more up front and could be ready within eighteen months. Residents asked "
    "whether either plan would raise their bills, and how the work would affect traffic on the main "
    "road. The chair promised a public meeting before any decision, along with a summary of costs, "
    "risks and timelines for each option, written in plain language. "
)
QUESTIONS = [
    "Write a Python function that checks whether a string is a palindrome",
    "Summarize the main arguments of this paragraph for a busy executive",
    "Brainstorm ten names for a neighbourhood bakery that sells sourdough",
    "What is the capital of Canada and when did it become the capital",
    "Rewrite this sentence so that it sounds more formal and polite",
    "Classify the sentiment of this customer review as positive or negative",
]


def prompt_of(tokens: int, tokenizer: Any, salt: int = 0) -> str:
    """An English prompt of about ``tokens`` WordPiece tokens ([CLS]/[SEP] included): a question,
    then as much of the paragraph as it takes."""
    question = f"{QUESTIONS[salt % len(QUESTIONS)]} (case {salt}):"
    words = (PARAGRAPH * (tokens // 100 + 2)).split()
    low, high = 0, len(words)
    while low < high:  # the longest prefix that stays within the token count
        middle = (low + high + 1) // 2
        if len(tokenizer.encode(f"{question} {' '.join(words[:middle])}").ids) <= tokens:
            low = middle
        else:
            high = middle - 1
    return f"{question} {' '.join(words[:low])}"


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            statistics.fmean(ordered) * 1000)


def encoder_texts(head: Any, text: str) -> list[str]:
    """What the embedded classifier encodes for a one-message prompt."""
    from llm_router.proxy.conversation import Turn, classifier_text

    return head.encoder_texts(classifier_text([Turn("user", text)]))


async def latency(encoder: Any, head: Any, prompts: dict[int, list[str]], iterations: int) -> list[dict[str, Any]]:
    from llm_router.proxy.classifiers import ClassifierInput
    from llm_router.proxy.conversation import Turn
    from llm_router.proxy.model_classifier import EmbeddedRuntime, ModelClassifier

    runtime = EmbeddedRuntime(lambda: encoder)
    classifier = ModelClassifier(head, runtime)
    await runtime.warm_up()
    rows = []
    try:
        for tokens, texts in prompts.items():
            for text in texts[:5]:  # warm-up
                encoder.encode(encoder_texts(head, text))
                await classifier.classify(ClassifierInput([Turn("user", text)], {}))
            encode_times, encode_cpu, classify_times = [], [], []
            for index in range(iterations):
                text = texts[index % len(texts)]
                parts = encoder_texts(head, text)
                started, cpu = time.perf_counter(), time.thread_time()
                encoder.encode(parts)
                encode_times.append(time.perf_counter() - started)
                encode_cpu.append(time.thread_time() - cpu)
                started = time.perf_counter()
                await classifier.classify(ClassifierInput([Turn("user", text)], {}))
                classify_times.append(time.perf_counter() - started)
            seen = sum(encoder.token_count(part) for part in encoder_texts(head, texts[0]))
            rows.append({"prompt_tokens": tokens, "encoder_tokens": seen,
                         "encode_ms": percentiles(encode_times), "encode_cpu_ms": percentiles(encode_cpu),
                         "classify_ms": percentiles(classify_times)})
    finally:
        await runtime.aclose()
    return rows


async def throughput(encoder: Any, head: Any, texts: list[str], concurrency: int, total: int) -> dict[str, Any]:
    from llm_router.proxy.classifiers import ClassifierInput
    from llm_router.proxy.conversation import Turn
    from llm_router.proxy.model_classifier import EmbeddedRuntime, ModelClassifier

    runtime = EmbeddedRuntime(lambda: encoder)
    classifier = ModelClassifier(head, runtime)
    await runtime.warm_up()
    await asyncio.gather(*(classifier.classify(ClassifierInput([Turn("user", t)], {})) for t in texts[:concurrency]))
    runtime.batches = runtime.items = 0
    counter = iter(range(total))
    times: list[float] = []

    async def client() -> None:
        for index in counter:
            started = time.perf_counter()
            await classifier.classify(ClassifierInput([Turn("user", texts[index % len(texts)])], {}))
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        elapsed = time.perf_counter() - started
        await runtime.aclose()
    p50, p99, _ = percentiles(times)
    return {"concurrency": concurrency, "requests": total, "per_second": total / elapsed, "p50_ms": p50,
            "p99_ms": p99, "mean_batch": runtime.items / max(1, runtime.batches)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--core", type=int, default=0, help="pin to this CPU core (-1: no pinning)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--model", default="task_router", help="a model of triton_models/ (default task_router)")
    parser.add_argument("--variant", choices=["fp32", "int8"], default=None,
                        help="encoder precision (default: the one the model was trained on)")
    parser.add_argument("--iterations", type=int, default=200, help="latency samples per prompt length")
    parser.add_argument("--requests", type=int, default=400, help="requests per throughput run")
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache root with the built encoder")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})  # before onnxruntime and tokenizers start any thread

    from llm_router.proxy.encoder import EncoderNotBuilt, load_encoder
    from llm_router.proxy.model_classifier import DEFAULT_MODEL_REPOSITORY, load_head

    head = load_head(DEFAULT_MODEL_REPOSITORY, args.model)
    args.variant = args.variant or head.encoder_variant
    try:
        encoder = load_encoder(args.cache_dir, intra_op_num_threads=args.threads, variant=args.variant)
    except EncoderNotBuilt as exc:
        print(exc, file=sys.stderr)
        return 1
    from tokenizers import Tokenizer

    counter = Tokenizer.from_file(str(encoder.info.directory / "tokenizer.json"))
    counter.no_truncation()
    counter.no_padding()
    prompts = {tokens: [prompt_of(tokens, counter, salt) for salt in range(12)] for tokens in (50, 500, 2000)}

    rows = asyncio.run(latency(encoder, head, prompts, args.iterations))
    runs = [asyncio.run(throughput(encoder, head, prompts[50], concurrency, args.requests))
            for concurrency in (1, 8, 32)]

    pinned = f"core {args.core}" if args.core >= 0 else "unpinned"
    print(f"\nembedded classifier {args.model} (views {list(head.views)}, "
          f"{head.lexicon.size if head.lexicon else 0} lexicon terms), {encoder.info.data['name']} {args.variant}, "
          f"onnxruntime {args.threads} thread(s), "
          f"{pinned}, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("\nlatency, one request at a time (ms)")
    print(f"{'prompt tokens':>13} {'encoder sees':>12} | {'encode p50':>10} {'p99':>7} {'CPU p50':>8} | "
          f"{'classify p50':>12} {'p99':>7} {'mean':>7}")
    for row in rows:
        encode, cpu, classify = row["encode_ms"], row["encode_cpu_ms"], row["classify_ms"]
        print(f"{row['prompt_tokens']:>13} {row['encoder_tokens']:>12} | {encode[0]:>10.2f} {encode[1]:>7.2f} "
              f"{cpu[0]:>8.2f} | {classify[0]:>12.2f} {classify[1]:>7.2f} {classify[2]:>7.2f}")
    print("(CPU p50: the encoder thread's own CPU time, which other load on the core inflates less)")
    print("\nthroughput through the micro-batcher, ~50-token prompts, closed loop")
    print(f"{'concurrency':>11} | {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10}")
    for run in runs:
        print(f"{run['concurrency']:>11} | {run['per_second']:>7.1f} {run['p50_ms']:>8.2f} {run['p99_ms']:>8.2f} "
              f"{run['mean_batch']:>10.1f}")
    p50 = rows[0]["classify_ms"][0]
    verdict = "PASS" if p50 <= TARGET_P50_MS_50_TOKENS else "FAIL"
    print(f"\n{verdict}: 50-token classify p50 {p50:.2f} ms (target <= {TARGET_P50_MS_50_TOKENS} ms)")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "variant": args.variant, "threads": args.threads,
                                         "core": args.core, "latency": rows, "throughput": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

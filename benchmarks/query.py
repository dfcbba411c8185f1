"""Load benchmark of the query service: latency and throughput of `graphmem serve` over HTTP on 127.0.0.1.

Usage: .venv/bin/python benchmarks/query.py [--mode hybrid] [--workdir PATH] [--json]

The graph of all 1,669 podcast transcripts is built once into the work folder through the pipeline
functions (fast extractor, libSQL store), and reused when the folder already contains it. The script
then starts `graphmem serve` on a free port and sends `POST /v1/query` requests from an asyncio httpx
client:

- closed loop at 1, 16 and 64 concurrent clients, with cache misses (distinct questions, each sent
  once) and then cache hits (the same questions again);
- open loop with Poisson arrivals at half the highest miss throughput of the closed-loop runs;
- the encoder alone, in this process, on the same question texts: one at a time and in batches of
  16 and 64 texts, as the service's micro-batcher would gather them, with the service's torch
  thread count (GRAPHMEM_TORCH_THREADS).

Misses and the open loop are sent by an asyncio httpx client in this process, which reads the
server's step timings from each response. Hits are sent by `wrk` (one thread, a Lua script that
cycles through the request bodies) when it is on the PATH, because a Python client cannot send a few
thousand requests a second. The load generator runs on the same cores as the server, so on a small
machine it takes part of their time. The server's own CPU time per request is reported beside it.
"""

import argparse
import asyncio
import csv
import json
import logging
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from machine import cpu_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PODCASTS = PROJECT_ROOT.parent / "shared" / "corpora" / "podcasts"

logger = logging.getLogger(__name__)

TENANT = "default"
MEMORY = "podcasts"
MAX_FILE_BYTES = 10_000_000
TOP_K = 5
HOPS = 1
CONCURRENCY_LEVELS = (1, 16, 64)

# Marker written after the last pipeline step, so that an interrupted build is not taken for a graph.
BUILT_MARKER = "built.json"

# Distinct questions per closed-loop miss run: enough for stable percentiles at a few seconds each.
MISS_REQUESTS = {1: 150, 16: 320, 64: 384}
OPEN_LOOP_REQUESTS = 300

# Requests per hit run with the httpx client: each hit takes about a millisecond, so more requests keep a run near one second.
HIT_REQUESTS = {1: 500, 16: 2000, 64: 2000}

# Duration of each hit run with wrk, which runs for a time instead of a number of requests.
WRK_HIT_SECONDS = 3

# wrk script: cycles through the JSON bodies of a file (one per line) and prints the figures as JSON.
WRK_SCRIPT = """
local bodies = {}
local position = 0
local key = ""

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  key = args[2]
end

function request()
  position = position % #bodies + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}
  return wrk.format("POST", "/v1/query", headers, bodies[position])
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""

# Seed of the open loop's exponential inter-arrival times, so that runs send the same schedule.
ARRIVAL_SEED = 7

# Sentences with fewer words make vague questions, longer ones exceed a typical agent question.
MIN_QUESTION_WORDS = 6
MAX_QUESTION_WORDS = 14
INTERROGATIVES = {"how", "what", "where", "when", "why", "who", "which", "do", "does", "did", "is", "are", "can"}

# The first graph query loads the graph and encodes the community summaries, which takes seconds.
WARM_UP_TIMEOUT_SECONDS = 300.0
SERVICE_REQUEST_TIMEOUT_SECONDS = 300
READY_TIMEOUT_SECONDS = 180.0

GOALS = {
    "one_client_miss_p50_ms": 15.0,
    "one_client_miss_p99_ms": 40.0,
    "miss_throughput_fraction_of_encoder": 0.8,
    "open_loop_p99_ms": 100.0,
    "one_client_hit_p50_ms": 2.0,
    "hit_requests_per_second_16_clients": 2000.0,
}


@dataclass
class RunFigures:
    """Latencies and per-step timings of one load run."""

    latencies_ms: list[float] = field(default_factory=list)
    steps_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    cached: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        """Return percentiles, requests/s and the median of each server-side step."""
        count = len(self.latencies_ms)
        return {
            "requests": count,
            "errors": self.errors,
            "cached_responses": self.cached,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p95_ms": percentile(self.latencies_ms, 95),
            "p99_ms": percentile(self.latencies_ms, 99),
            "requests_per_second": round(count / self.seconds, 1) if self.seconds else 0.0,
            "step_p50_ms": {step: percentile(values, 50) for step, values in self.steps_ms.items()},
        }


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


def machine_description() -> str:
    """Return the CPU model and core count."""
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def require_corpus() -> None:
    if not (PODCASTS / "transcripts.zip").is_file():
        sys.exit(f"podcast corpus {PODCASTS / 'transcripts.zip'} not found: run the benchmark from a checkout next to its shared/ folder")


def build_graph(workdir: Path) -> dict:
    """Build the podcast graph into `workdir/home/graph.db`, or return the figures of an earlier build there."""
    marker = workdir / BUILT_MARKER
    if marker.exists():
        figures = json.loads(marker.read_text(encoding="utf-8"))
        figures["reused"] = True
        return figures

    from graphmem_core import pipeline
    from graphmem_core.batches import register_batch
    from graphmem_core.embeddings import Embedder
    from graphmem_core.extraction import get_extractor
    from graphmem_core.settings import Settings
    from graphmem_core.stores.libsql_store import LibsqlGraphStore

    home = workdir / "home"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)

    started = time.perf_counter()
    defaults = Settings()
    embedder = Embedder()
    store = LibsqlGraphStore(home / "graph.db")
    try:
        extractor = get_extractor("fast")
        manifest = register_batch([PODCASTS / "transcripts.zip"], TENANT, MEMORY, home / "batches")
        encode_names = pipeline.cached_name_encoder(store, embedder, TENANT)
        reports = {
            "ingest": pipeline.ingest_batch(store, manifest, MAX_FILE_BYTES),
            "embed": pipeline.embed_batch(store, embedder, TENANT, MEMORY, manifest.batch_id, defaults.chunk_overlap_tokens),
            "extract": pipeline.extract_batch(store, extractor, TENANT, MEMORY, manifest.batch_id),
            "resolve": pipeline.resolve_graph(store, extractor, TENANT, MEMORY, encode_names, defaults.resolution_threshold),
            "communities": pipeline.build_communities(store, TENANT, MEMORY, seed=defaults.community_seed),
        }
        counts = store.counts(TENANT, MEMORY)
    finally:
        store.close()

    figures = {
        "seconds": round(time.perf_counter() - started, 1),
        "stage_seconds": {name: round(report.seconds, 1) for name, report in reports.items()},
        "counts": counts,
    }
    marker.write_text(json.dumps(figures), encoding="utf-8")
    figures["reused"] = False
    return figures


def load_questions(needed: int) -> list[str]:
    """Return `needed` distinct questions: the corpus's own questions, then questions built from transcript sentences."""
    questions: list[str] = []
    with (PODCASTS / "questions.csv").open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            questions.append(row["question_text"].strip())

    sentences: list[str] = []
    with zipfile.ZipFile(PODCASTS / "transcripts.zip") as archive:
        for name in sorted(archive.namelist()):
            if not name.endswith(".txt"):
                continue
            text = archive.read(name).decode("utf-8", errors="replace")
            # Drop the speaker labels ("NAME:") so that they do not start the questions.
            text = re.sub(r"\b[A-Z][A-Z .'-]+:\s*", " ", text)
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                words = sentence.strip().rstrip(".!?").split()
                if not MIN_QUESTION_WORDS <= len(words) <= MAX_QUESTION_WORDS:
                    continue
                candidate = " ".join(words)
                # Statements only: no episode file names, quotes, questions or sentences starting with "I".
                if re.fullmatch(r"[A-Z][a-z][A-Za-z ,'’-]+", candidate) and not candidate.startswith("I "):
                    sentences.append(candidate)

    # Spread the picks over the whole corpus in a fixed order instead of taking the first episodes.
    unique = sorted(set(sentences))
    random.Random(ARRIVAL_SEED).shuffle(unique)
    seen = set(questions)
    for sentence in unique:
        if sentence.split()[0].lower() in INTERROGATIVES:
            continue
        question = f"In which episode was it said that {sentence[0].lower()}{sentence[1:]}?"
        if question not in seen:
            seen.add(question)
            questions.append(question)
        if len(questions) >= needed:
            break
    if len(questions) < needed:
        sys.exit(f"only {len(questions)} distinct questions could be built, {needed} are needed: lower the request counts")
    return questions[:needed]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def start_server(workdir: Path, key: str, port: int, profile: Path | None) -> subprocess.Popen:
    """Start `graphmem serve` on 127.0.0.1:`port` over the work folder's graph, optionally under cProfile."""
    env = dict(os.environ)
    env.update(
        {
            "GRAPHMEM_HOME": str(workdir / "home"),
            "GRAPHMEM_API_KEYS": f"{key}:{TENANT}",
            "GRAPHMEM_STORE": "libsql",
            "GRAPHMEM_CACHE": "memory",
            "GRAPHMEM_SERVICE_REQUEST_TIMEOUT_SECONDS": str(SERVICE_REQUEST_TIMEOUT_SECONDS),
            "HF_HUB_OFFLINE": "1",
        }
    )
    graphmem = Path(sys.executable).with_name("graphmem")
    command = [str(graphmem), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if profile is not None:
        # NOTE: this option was not exercised in the recorded runs.
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
    log = (workdir / "server.log").open("w", encoding="utf-8")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen, log: Path) -> None:
    """Poll /readyz until it returns 200; exit with the server log when the server stops or the wait times out."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"graphmem serve exited with code {server.returncode}:\n{log.read_text(encoding='utf-8')[-3000:]}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    sys.exit(f"graphmem serve was not ready after {READY_TIMEOUT_SECONDS:.0f} s: see {log}")


async def send(client: httpx.AsyncClient, body: dict, figures: RunFigures) -> None:
    """Send one query and record its latency and server-side steps, or its error."""
    started = time.perf_counter()
    try:
        response = await client.post("/v1/query", json=body)
    except httpx.HTTPError as error:
        name = type(error).__name__
        figures.errors[name] = figures.errors.get(name, 0) + 1
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        code = str(response.status_code)
        figures.errors[code] = figures.errors.get(code, 0) + 1
        return

    payload = response.json()
    figures.latencies_ms.append(elapsed_ms)
    figures.cached += bool(payload.get("cached"))
    server_total = 0.0
    for step, value in payload.get("timings_ms", {}).items():
        figures.steps_ms.setdefault(step, []).append(value)
        if step == "total":
            server_total = value
    # What the service's own timings do not cover: HTTP, JSON, the event loop and the client.
    figures.steps_ms.setdefault("outside_engine", []).append(elapsed_ms - server_total - payload.get("timings_ms", {}).get("queue", 0.0))


async def closed_loop(client: httpx.AsyncClient, bodies: list[dict], concurrency: int) -> RunFigures:
    """Send `bodies` from `concurrency` clients, each sending its next request when the previous one returns."""
    figures = RunFigures()
    pending = iter(bodies)

    async def worker() -> None:
        for body in pending:
            await send(client, body, figures)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    figures.seconds = time.perf_counter() - started
    return figures


async def open_loop(client: httpx.AsyncClient, bodies: list[dict], rate: float) -> RunFigures:
    """Send `bodies` at Poisson arrivals of `rate` requests/s, whether or not earlier ones have returned."""
    figures = RunFigures()
    generator = random.Random(ARRIVAL_SEED)
    tasks = []
    started = time.perf_counter()
    due = started
    for body in bodies:
        due += generator.expovariate(rate)
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(client, body, figures)))
    await asyncio.gather(*tasks)
    figures.seconds = time.perf_counter() - started
    return figures


def process_cpu_seconds(pid: int) -> float | None:
    """Return the user plus system CPU seconds that process `pid` has used, from /proc (Linux only), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), utime and stime, counted from the state field (3) after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wrk_closed_loop(port: int, key: str, bodies: list[dict], concurrency: int, workdir: Path) -> dict:
    """Send `bodies` in a cycle from `concurrency` wrk connections for `WRK_HIT_SECONDS`; return the run's summary."""
    bodies_file = workdir / "wrk_bodies.jsonl"
    bodies_file.write_text("".join(json.dumps(body) + "\n" for body in bodies), encoding="utf-8")
    script = workdir / "wrk_query.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    command = [
        "wrk", "-t1", f"-c{concurrency}", f"-d{WRK_HIT_SECONDS}s", "--timeout", "10s",
        "-s", str(script), f"http://127.0.0.1:{port}", "--", str(bodies_file), key,
    ]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    text = output.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        sys.exit(f"wrk failed with exit code {process.returncode}:\n{text[-2000:]}")

    figures = json.loads(lines[-1])
    seconds = figures["duration_us"] / 1e6
    errors = {name: figures[name] for name in ("status_errors", "socket_errors") if figures[name]}
    return {
        "requests": figures["requests"],
        "errors": errors,
        "cached_responses": None,
        "p50_ms": round(figures["p50_us"] / 1000, 2),
        "p95_ms": round(figures["p95_us"] / 1000, 2),
        "p99_ms": round(figures["p99_us"] / 1000, 2),
        "requests_per_second": round(figures["requests"] / seconds, 1) if seconds else 0.0,
        "step_p50_ms": {},
        "load_generator": "wrk",
    }


async def warm_up(client: httpx.AsyncClient, mode: str) -> float:
    """Send one query so that the engine loads the graph; return the seconds it took."""
    started = time.perf_counter()
    body = {"query": "warm-up question about the graph", "memory": MEMORY, "mode": mode, "top_k": TOP_K, "hops": HOPS}
    response = await client.post("/v1/query", json=body, timeout=WARM_UP_TIMEOUT_SECONDS)
    if response.status_code != 200:
        sys.exit(f"the warm-up query failed with HTTP {response.status_code}: {response.text[:500]}")
    return time.perf_counter() - started


async def measure_service(
    port: int, key: str, server: subprocess.Popen, workdir: Path, questions: list[str], mode: str, use_wrk: bool
) -> dict:
    """Run the warm-up, the closed-loop miss and hit runs and the open-loop run; return their summaries."""
    log = workdir / "server.log"
    limits = httpx.Limits(max_connections=max(CONCURRENCY_LEVELS) * 2, max_keepalive_connections=max(CONCURRENCY_LEVELS) * 2)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=60.0) as client:
        await wait_ready(client, server, log)
        warm_up_seconds = await warm_up(client, mode)

        def bodies(texts: list[str]) -> list[dict]:
            return [{"query": text, "memory": MEMORY, "mode": mode, "top_k": TOP_K, "hops": HOPS} for text in texts]

        async def measured(run) -> dict:
            """Await one run and add the server's CPU milliseconds per request to its summary."""
            cpu_before = process_cpu_seconds(server.pid)
            summary = await run
            if not isinstance(summary, dict):
                summary = summary.summary()
                summary["load_generator"] = "httpx"
            cpu_after = process_cpu_seconds(server.pid)
            if cpu_before is not None and cpu_after is not None and summary["requests"]:
                summary["server_cpu_ms_per_request"] = round((cpu_after - cpu_before) * 1000 / summary["requests"], 2)
            return summary

        offset = 0
        misses: dict[int, dict] = {}
        hits: dict[int, dict] = {}
        for concurrency in CONCURRENCY_LEVELS:
            texts = questions[offset : offset + MISS_REQUESTS[concurrency]]
            offset += len(texts)
            misses[concurrency] = await measured(closed_loop(client, bodies(texts), concurrency))
            if use_wrk:
                hits[concurrency] = await measured(wrk_closed_loop(port, key, bodies(texts), concurrency, workdir))
            else:
                repeated = [texts[index % len(texts)] for index in range(HIT_REQUESTS[concurrency])]
                hits[concurrency] = await measured(closed_loop(client, bodies(repeated), concurrency))
            logger.info("%d clients: misses %s, hits %s", concurrency, misses[concurrency], hits[concurrency])

        max_miss_rate = max(summary["requests_per_second"] for summary in misses.values())
        rate = max_miss_rate / 2
        texts = questions[offset : offset + OPEN_LOOP_REQUESTS]
        open_figures = await measured(open_loop(client, bodies(texts), rate))
        open_figures["offered_requests_per_second"] = round(rate, 1)

    return {
        "warm_up_seconds": round(warm_up_seconds, 1),
        "misses": misses,
        "hits": hits,
        "open_loop": open_figures,
    }


def measure_encoder(questions: list[str], torch_threads: int) -> dict:
    """Time `Embedder.encode` in this process on the same texts: one at a time and in batches of 16 and 64.

    torch runs with `torch_threads` intra-op threads (0: torch's default), as the service's encoder thread does.
    """
    import torch

    from graphmem_core.embeddings import Embedder

    if torch_threads:
        torch.set_num_threads(torch_threads)
    embedder = Embedder()
    embedder.encode(["warm-up"])
    figures: dict[str, float] = {"torch_threads": torch.get_num_threads()}
    for batch_size in (1, 16, 64):
        started = time.perf_counter()
        for start in range(0, len(questions), batch_size):
            embedder.encode(questions[start : start + batch_size])
        seconds = time.perf_counter() - started
        figures[f"batch_{batch_size}_texts_per_second"] = round(len(questions) / seconds, 1)
    return figures


def check_goals(service: dict, encoder: dict) -> dict:
    """Compare the figures with the goals; return, per goal, the measured value and whether it is met."""
    misses, hits = service["misses"], service["hits"]
    results = {
        "one_client_miss_p50_ms": (misses[1]["p50_ms"], misses[1]["p50_ms"] <= GOALS["one_client_miss_p50_ms"]),
        "one_client_miss_p99_ms": (misses[1]["p99_ms"], misses[1]["p99_ms"] <= GOALS["one_client_miss_p99_ms"]),
        "open_loop_p99_ms": (service["open_loop"]["p99_ms"], service["open_loop"]["p99_ms"] <= GOALS["open_loop_p99_ms"]),
        "one_client_hit_p50_ms": (hits[1]["p50_ms"], hits[1]["p50_ms"] <= GOALS["one_client_hit_p50_ms"]),
        "hit_requests_per_second_16_clients": (hits[16]["requests_per_second"], hits[16]["requests_per_second"] >= GOALS["hit_requests_per_second_16_clients"]),
    }
    for concurrency in (16, 64):
        # The encoder's rate at the batch size that the micro-batcher can gather from this many clients.
        encoder_rate = encoder[f"batch_{concurrency}_texts_per_second"]
        fraction = round(misses[concurrency]["requests_per_second"] / encoder_rate, 3)
        results[f"miss_throughput_fraction_of_encoder_{concurrency}_clients"] = (fraction, fraction >= GOALS["miss_throughput_fraction_of_encoder"])
    return {name: {"value": value, "met": met} for name, (value, met) in results.items()}


def run(workdir: Path, mode: str, profile: Path | None, load_generator: str) -> dict:
    """Build or reuse the graph, measure the service and the encoder, and return every figure."""
    load_at_start = os.getloadavg()
    build = build_graph(workdir)
    needed = sum(MISS_REQUESTS.values()) + OPEN_LOOP_REQUESTS
    questions = load_questions(needed)

    from graphmem_core.settings import Settings

    torch_threads = Settings.from_env().torch_threads
    use_wrk = load_generator == "wrk" or (load_generator == "auto" and shutil.which("wrk") is not None)
    key = secrets.token_hex(24)
    port = free_port()
    server = start_server(workdir, key, port, profile)
    try:
        service = asyncio.run(measure_service(port, key, server, workdir, questions, mode, use_wrk))
    finally:
        # SIGINT lets uvicorn shut down cleanly, which also lets cProfile write its file.
        server.send_signal(2)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    encoder = measure_encoder(questions[: MISS_REQUESTS[64]], torch_threads)
    return {
        "machine": machine_description(),
        "load_generators": {"misses_and_open_loop": "httpx in the benchmark process", "hits": "wrk -t1" if use_wrk else "httpx in the benchmark process"},
        "server_torch_threads": torch_threads,
        "server_blas_threads": Settings.from_env().blas_threads,
        "load_average_start": [round(value, 2) for value in load_at_start],
        "load_average_end": [round(value, 2) for value in os.getloadavg()],
        "mode": mode,
        "top_k": TOP_K,
        "hops": HOPS,
        "graph": build,
        "service": service,
        "encoder": encoder,
        "goals": check_goals(service, encoder),
    }


def format_steps(steps: dict[str, float]) -> str:
    return ", ".join(f"{step} {value}" for step, value in steps.items())


def print_table(figures: dict) -> None:
    print(f"machine: {figures['machine']}")
    print(f"load average at start {figures['load_average_start']}, at end {figures['load_average_end']}")
    generators = figures["load_generators"]
    print(f"load generators on the same cores: misses and open loop {generators['misses_and_open_loop']}, hits {generators['hits']}")
    print(f"server torch threads {figures['server_torch_threads']}, BLAS threads {figures['server_blas_threads']} (0: the library's default)")
    graph = figures["graph"]
    counts = graph["counts"]
    origin = "reused from the work folder" if graph["reused"] else "built"
    print(
        f"graph ({origin}, {graph['seconds']} s to build): {counts['chunks']} chunks, {counts['entities']} entities, "
        f"{counts['relations']} relations, {counts['communities']} communities"
    )
    service = figures["service"]
    print(f"mode {figures['mode']}, top_k {figures['top_k']}, hops {figures['hops']}; first query (graph load) {service['warm_up_seconds']} s\n")

    print(f"{'run':18} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} {'cpu ms':>7}  step p50 ms")
    rows = [(f"miss, {c} client{'s' if c > 1 else ''}", service["misses"][c]) for c in service["misses"]]
    rows += [(f"hit, {c} client{'s' if c > 1 else ''}", service["hits"][c]) for c in service["hits"]]
    rows.append((f"open loop {service['open_loop']['offered_requests_per_second']}/s", service["open_loop"]))
    for label, summary in rows:
        errors = sum(summary["errors"].values())
        print(
            f"{label:18} {summary['requests']:8} {errors:6} {summary['p50_ms']:8.1f} {summary['p95_ms']:8.1f} "
            f"{summary['p99_ms']:8.1f} {summary['requests_per_second']:8.1f} {summary.get('server_cpu_ms_per_request', float('nan')):7.2f}"
            f"  {format_steps(summary['step_p50_ms'])}"
        )

    encoder = figures["encoder"]
    print("\ncpu ms: the server process's CPU time per request during the run")
    print(f"encoder in-process, texts/s: {format_steps(encoder)}")
    print("\ngoals:")
    for name, result in figures["goals"].items():
        print(f"  {name}: {result['value']} ({'met' if result['met'] else 'missed'})")


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure latency and throughput of graphmem serve over the podcast graph.")
    parser.add_argument("--mode", default="hybrid", choices=("naive", "local", "global", "hybrid"), help="query mode of every request (default hybrid)")
    parser.add_argument("--workdir", type=Path, help="folder for the graph, reused by later runs (default: a temporary folder, deleted at the end)")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write a cProfile file of the server's event-loop thread to this path (queries run in worker threads, which it does not see)",
    )
    parser.add_argument(
        "--hit-load-generator",
        default="auto",
        choices=("auto", "wrk", "httpx"),
        help="client of the cache-hit runs: wrk, the asyncio httpx client, or auto (wrk when it is on the PATH)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    arguments = parser.parse_args()

    require_corpus()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="graphmem-query-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        figures = run(workdir, arguments.mode, arguments.profile, arguments.hit_load_generator)
    finally:
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    if arguments.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

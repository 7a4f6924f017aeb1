#!/usr/bin/env python3
"""Wall time of the workflow from empty results, and what it is made of.

Runs `snakemake --cores N` on a config (default: the embedded demo, config/config.yaml) in a fresh
temporary folder, then reads Snakemake's own records of that run:
  * the log's job start/finish times: wall time, and for how many seconds 0, 1, 2, ... jobs ran
    (the cores' occupancy at the job level);
  * the benchmark TSVs every rule writes (s, cpu_time): CPU seconds per rule, and the slowest jobs;
  * the tail: what still ran after the last training job ended (the part no packing can hide).

    python benchmarks/demo_time.py                  # the demo, all cores
    python benchmarks/demo_time.py --cores 2 --keep /tmp/demo-run

Time it on an idle machine. Printed beside the figures: the load average before and after, the
share of CPU time stolen by the hypervisor during the run, and a host probe (one demo training
step timed alone, before and after), so that runs on a host whose speed drifts can be compared.
Another process on the cores shows up as a lower job-level occupancy and longer jobs, another
virtual machine on the same host as steal or as a slower probe.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
FINISHED = re.compile(r"^Finished jobid: (\d+)")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_ticks() -> dict[str, int]:
    """The machine's cumulative CPU ticks by kind (Linux /proc/stat); {} elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return {}
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(v) for name, v in zip(names, fields)}


def steal_share(before: dict[str, int], after: dict[str, int]) -> str:
    """Share of the run's CPU ticks that the hypervisor gave to other machines (steal) and that
    stayed idle: on a shared virtual machine, steal lengthens every job without showing in the load."""
    if not before or not after:
        return "unknown (no /proc/stat)"
    delta = {k: after[k] - before[k] for k in before}
    total = sum(delta.values()) or 1
    return f"steal {100 * delta['steal'] / total:.1f}%, idle {100 * delta['idle'] / total:.1f}% of CPU ticks"


def host_probe(steps: int = 20, at_once: int = 1) -> float:
    """Median seconds of one demo training step (msnlan x2, batch 8 of 16x16, one thread), in
    `at_once` subprocesses started together (the mean of their medians): on a shared virtual machine
    the host's speed drifts (measured here: 98 ms early in a session, 148 ms two hours later, same
    code), and so does what two jobs at once cost each other (their band sums are memory-bound), so
    every demo time is printed beside both."""
    code = f"""
import statistics, time, torch
import torch.nn.functional as F
torch.set_num_threads(1)
torch.manual_seed(0)
from msnlan.training.presets import trained_variant
from msnlan.training.checkpoint import build_network
model = build_network(trained_variant("msnlan", "demo"), 2)
opt = torch.optim.Adam(model.parameters(), 1e-4)
x, y = torch.rand(8, 3, 16, 16) * 255, torch.rand(8, 3, 32, 32) * 255
times = []
for i in range({steps} + 3):
    t = time.perf_counter()
    loss = F.l1_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t)
print(statistics.median(times[3:]))
"""
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(at_once)]
    medians = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return sum(medians) / len(medians)


def probe_text() -> str:
    return (f"{1000 * host_probe():.0f} ms per demo training step alone, {1000 * host_probe(at_once=2):.0f} ms "
            "with two at once (msnlan x2, one thread each)")


def run_measuring_own_cpu(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float | None]:
    """Run `cmd`; also return the CPU seconds of its own process (Snakemake's scheduling and
    bookkeeping, without the jobs it starts), sampled every 0.2 s until it exits."""
    import psutil  # a dependency of Snakemake

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        popen = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        handle, own = psutil.Process(popen.pid), None
        while popen.poll() is None:
            try:
                times = handle.cpu_times()
                own = times.user + times.system
            except psutil.Error:
                pass
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, popen.returncode, out.read(), err.read()), own


def parse_log(path: Path) -> list[dict]:
    """Jobs of one Snakemake log: rule, wildcards, start and end (datetime; end None if unfinished)."""
    jobs: dict[int, dict] = {}
    now = pending = last = None
    for line in path.read_text().splitlines():
        if m := STAMP.match(line):
            now = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := RULE.match(line):
            pending = m.group(1)
        elif (m := JOBID.match(line)) and pending:
            last = int(m.group(1))
            jobs[last] = {"rule": pending, "wildcards": "", "start": now, "end": None}
            pending = None
        elif (m := WILDCARDS.match(line)) and last in jobs and not jobs[last]["wildcards"]:
            jobs[last]["wildcards"] = m.group(1)
        elif m := FINISHED.match(line):
            if int(m.group(1)) in jobs:
                jobs[int(m.group(1))]["end"] = now
    return [j for j in jobs.values() if j["end"] is not None]


def occupancy(jobs: list[dict]) -> dict[int, float]:
    """Seconds during which n jobs ran, for each n."""
    events = sorted([(j["start"], 1) for j in jobs] + [(j["end"], -1) for j in jobs])
    seconds: dict[int, float] = defaultdict(float)
    running, prev = 0, events[0][0]
    for when, step in events:
        seconds[running] += (when - prev).total_seconds()
        running, prev = running + step, when
    return dict(sorted(seconds.items()))


def tail_after(jobs: list[dict], rule: str) -> tuple[float, list[dict]]:
    """Seconds from the end of the last `rule` job to the end of the run, and the jobs in that tail."""
    last = max((j["end"] for j in jobs if j["rule"] == rule), default=None)
    if last is None:
        return 0.0, []
    end = max(j["end"] for j in jobs)
    return (end - last).total_seconds(), sorted((j for j in jobs if j["end"] > last), key=lambda j: j["start"])


def benchmark_rows(results: Path) -> list[dict]:
    """Every benchmark TSV under results/<name>/benchmarks: rule, job, wall s, cpu s."""
    rows = []
    for bench_dir in sorted(results.glob("*/benchmarks")):
        for tsv in sorted(bench_dir.rglob("*.tsv")):
            rel = tsv.relative_to(bench_dir).with_suffix("")
            rule = rel.parts[0] if len(rel.parts) > 1 else rel.name
            with tsv.open() as f:
                for row in csv.DictReader(f, delimiter="\t"):
                    try:
                        cpu = float(row.get("cpu_time", "0"))
                    except ValueError:  # "NA" where the job was too short to sample
                        cpu = 0.0
                    rows.append({"rule": rule, "job": str(rel), "s": float(row["s"]), "cpu": cpu})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--cores", default="all")
    ap.add_argument("--keep", help="run in this folder (created; must not exist) and keep it")
    ap.add_argument("--top", type=int, default=8, help="slowest jobs listed")
    args = ap.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="msnlan-demo-time-"))
    if args.keep:
        work.mkdir(parents=True)
    config = yaml.safe_load(Path(args.config).read_text())
    # the run folder has no ablations/: point the config at the repository's (absolute path)
    if not os.path.isabs(config.get("ablations_dir", "ablations")):
        config["ablations_dir"] = str(REPO / config.get("ablations_dir", "ablations"))
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
           "--directory", str(work), "--configfile", str(work / "config.yaml"), "--cores", args.cores]
    print(f"load average before: {load_average()}; host probe: {probe_text()}; running in {work}", flush=True)
    started, ticks = time.perf_counter(), cpu_ticks()
    proc, own_cpu = run_measuring_own_cpu(cmd)
    wall = time.perf_counter() - started
    print(f"load average after: {load_average()}; during the run: {steal_share(ticks, cpu_ticks())}; "
          f"host probe after: {probe_text()}")
    if proc.returncode != 0:
        print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
        print(f"snakemake failed (exit {proc.returncode}); folder kept: {work}", file=sys.stderr)
        return 1

    logs = sorted((work / ".snakemake" / "log").glob("*.snakemake.log"))
    jobs = parse_log(logs[-1])
    print(f"\nwall time {wall:.0f} s ({wall / 60:.1f} min) for {len(jobs)} jobs, --cores {args.cores}; "
          f"Snakemake's own process: {'unknown' if own_cpu is None else f'{own_cpu:.0f}'} CPU-seconds")
    occ = occupancy(jobs)
    print("seconds with n jobs running: " + ", ".join(f"{n}: {s:.0f}" for n, s in occ.items()))

    rows = benchmark_rows(work / config.get("results_dir", "results"))
    by_rule: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for r in rows:
        agg = by_rule[r["rule"]]
        agg[0] += 1
        agg[1] += r["s"]
        agg[2] += r["cpu"]
    total_cpu = sum(a[2] for a in by_rule.values())
    print(f"\nCPU seconds by rule (benchmark files; total {total_cpu:.0f} s):")
    for rule, (n, s, cpu) in sorted(by_rule.items(), key=lambda kv: -kv[1][2]):
        print(f"  {rule:<18} {n:3d} jobs  cpu {cpu:7.1f} s ({100 * cpu / max(total_cpu, 1e-9):4.1f}%)  "
              f"wall {s:7.1f} s")
    print(f"\nslowest {args.top} jobs (wall s, cpu s):")
    for r in sorted(rows, key=lambda r: -r["s"])[:args.top]:
        print(f"  {r['job']:<48} {r['s']:7.1f} {r['cpu']:7.1f}")
    t0 = min(j["start"] for j in jobs)
    busy = sum((j["end"] - j["start"]).total_seconds() for j in jobs)
    print(f"\njob-seconds {busy:.0f} (sum of job wall times); divided by 2 cores: {busy / 2:.0f} s")
    tail, tail_jobs = tail_after(jobs, "train")
    print(f"after the last training job: {tail:.0f} s")
    for j in tail_jobs:
        print(f"  {(j['start'] - t0).total_seconds():5.0f} - {(j['end'] - t0).total_seconds():5.0f} s  "
              f"{j['rule']} {j['wildcards']}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

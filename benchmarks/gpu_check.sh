#!/usr/bin/env bash
# One-shot GPU check of the training engine, for a borrowed CUDA machine (about 5 minutes).
#
#   bash benchmarks/gpu_check.sh            # from anywhere; writes to $OUT (or /tmp/msnlan-gpu-check)
#
# The machine is assumed to have python3 with a CUDA torch but NOT this package and no internet:
# the package runs from the checkout through PYTHONPATH (nothing is installed). Missing Python
# dependencies are installed only from local wheels in ./.whl if that folder exists; steps whose
# dependencies are still missing are skipped. Every step has its own timeout; a failed step does
# not stop the others; a summary is printed at the end.
#
# Steps: versions and nvidia-smi; training throughput of the paper model
# (batch 16 of 48x48 LR patches, the paper's first stage, and of 64x64, its second) per attention
# form (auto, fast, direct, and auto with CUDA graphs) in fp32 and bf16; the training engine with
# `cuda_graphs` against eager steps (weights and speed); MSNLAB forward at 64x64, 128x128 and 256x256 feature
# maps per form in fp32 and bf16 (the direct form where it fits); GPU leasing with two concurrent training runs
# on 2 simulated GPUs (MSNLAN_GPU_COUNT=2) mapped onto the real one; a run killed with SIGKILL
# and resumed on the GPU (same iterations and lr as an uninterrupted run; weights compared);
# the unit tests that touch CUDA.
set -u

cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
OUT=${OUT:-/tmp/msnlan-gpu-check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
PY=${PYTHON:-python3}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
ITERS=${GPU_CHECK_ITERS:-20}
BUDGET=${GPU_CHECK_BUDGET:-420}   # seconds; a step that would start later is skipped
# GPU_CHECK_ONLY="throughput graphs msnlab lease resume tests": run only these steps (default all);
# GPU_CHECK_PATCHES / GPU_CHECK_BATCHES (comma-separated) / GPU_CHECK_MODES / GPU_CHECK_FORMATS ("default channels_last")
# narrow or widen the throughput step. Its default format is channels_last, what training runs on
# CUDA (the presets' `channels_last: auto`).
# Open questions on CUDA (an H200, 2026-11-30). (1) Under bf16 the direct form was 12-16% faster
# than auto at 64x64 patches and 2-11% slower at 48x48; at 64x64, batch 16, the fast form runs 22
# tiles and, beyond its 2^29-element keep budget, recomputes its forward pass in the backward one:
# larger budgets (train_throughput.py's mode@chunk=...@saved=...) mean fewer tiles and no
# recomputation. (2) The step was launch-bound (GPU busy 96 of 179 ms in fp32; bf16 slower than
# fp32 because autocast adds casts): CUDA graphs (mode@graphs; the preset key cuda_graphs) replay
# each pass with one launch, which may make bf16 the faster precision. One call of about 5 minutes
# answers both, fp32 and bf16, with the engine's graphed run against an eager one:
#   GPU_CHECK_ONLY="throughput graphs" GPU_CHECK_PATCHES="48 64" \
#       GPU_CHECK_MODES=auto@graphs,direct@graphs,auto,auto@chunk=2^28@saved=2^32,direct bash benchmarks/gpu_check.sh
# GPU_CHECK_DRY_RUN=1 runs every step on the CPU at toy sizes, to check the script without a GPU
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
    DEV=cpu; THR_CONFIGS=paper; THR_BATCH=1; THR_PATCHES="12 16"; ITERS=1; MSN_SIZES="16 24"; LEASE_ITERS=2
else
    DEV=cuda; THR_CONFIGS=paper; THR_BATCH=16; THR_PATCHES="48 64"; MSN_SIZES="64 128 256"; LEASE_ITERS=30
fi
THR_PATCHES=${GPU_CHECK_PATCHES:-$THR_PATCHES}
if [ "$DEV" = cuda ]; then THR_MODES=${GPU_CHECK_MODES:-auto@graphs,auto,fast,direct}; else THR_MODES=${GPU_CHECK_MODES:-auto,fast,direct}; fi
THR_BATCH=${GPU_CHECK_BATCHES:-$THR_BATCH}
THR_FORMATS=${GPU_CHECK_FORMATS:-channels_last}
wanted() { [ -z "${GPU_CHECK_ONLY:-}" ] || case " $GPU_CHECK_ONLY " in *" $1 "*) return 0;; *) return 1;; esac; }

declare -a SUMMARY=()
log() { echo "$*" | tee -a "$LOG"; }

# run_step NAME TIMEOUT_S COMMAND... : runs with a timeout, output to the log, records the outcome
run_step() {
    local name=$1 limit=$2
    shift 2
    if [ "$SECONDS" -ge "$BUDGET" ]; then
        skip_step "$name" "time budget of ${BUDGET}s spent (GPU_CHECK_BUDGET)"
        return
    fi
    log ""
    log "=== [$name] (timeout ${limit}s): $*"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    local status=ok
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status="TIMEOUT"; elif [ "$rc" -ne 0 ]; then status="FAILED (rc $rc)"; fi
    SUMMARY+=("$(printf '%-28s %-16s %4ss' "$name" "$status" "$((SECONDS - t0))")")
}

skip_step() {
    log ""
    log "=== [$1] skipped: $2"
    SUMMARY+=("$(printf '%-28s %-16s %s' "$1" "skipped" "$2")")
}

# ---------------------------------------------------------------- 1. environment
log "msnlan GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), repo $REPO, git $(git rev-parse --short HEAD 2>/dev/null || echo '?'), out $OUT"
run_step "nvidia-smi" 15 nvidia-smi
run_step "torch/cuda versions" 45 "$PY" -c '
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), "| devices:", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}")
if torch.cuda.is_available():
    print("bf16 supported:", torch.cuda.is_bf16_supported())
'

# ---------------------------------------------------------------- 2. dependencies
missing_modules() {
    "$PY" - "$@" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}
# module -> pip name
declare -A PIP_NAME=([yaml]=pyyaml [jsonschema]=jsonschema [numpy]=numpy [PIL]=pillow [scipy]=scipy
                     [skimage]=scikit-image [tqdm]=tqdm [pytest]=pytest [fvcore]=fvcore)
MISSING=$(missing_modules yaml jsonschema numpy PIL scipy skimage tqdm pytest fvcore)
log ""
log "=== [dependencies] missing: ${MISSING:-none}"
if [ -n "$MISSING" ] && [ -d "$REPO/.whl" ]; then
    pkgs=()
    for m in $MISSING; do pkgs+=("${PIP_NAME[$m]}"); done
    run_step "install local wheels" 120 "$PY" -m pip install --no-index --find-links "$REPO/.whl" "${pkgs[@]}"
    MISSING=$(missing_modules yaml jsonschema numpy PIL scipy skimage tqdm pytest fvcore)
    log "still missing: ${MISSING:-none}"
fi
has() { for m in "$@"; do case " $MISSING " in *" $m "*) return 1;; esac; done; return 0; }
CORE_OK=1
has yaml jsonschema numpy PIL || CORE_OK=0
if [ "$DEV" = cuda ] && ! "$PY" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then CORE_OK=0; fi

# ---------------------------------------------------------------- 3. training throughput
if ! wanted throughput; then
    :
elif [ "$CORE_OK" = 1 ]; then
    # every attention form (auto must be the fastest or within 5% of it), fp32 and bf16, batch 16 by default;
    # the forms run interleaved in one process, each step timed with its peak memory
    for patch in $THR_PATCHES; do
        for fmt in $THR_FORMATS; do
            for amp in none bf16; do
                flag=(--memory-format contiguous); [ "$fmt" = channels_last ] && flag=(--memory-format channels_last)
                run_step "throughput ${patch}x$patch $fmt amp=$amp" 120 "$PY" benchmarks/train_throughput.py \
                    --configs "$THR_CONFIGS" --batches "$THR_BATCH" --patch-size "$patch" --modes "$THR_MODES" \
                    --device "$DEV" --amp "$amp" --iterations "$ITERS" --warmup 3 --profile-steps 1 --top 10 \
                    "${flag[@]}" --json "$OUT/throughput_${patch}_${fmt}_$amp.json"
            done
        done
    done
else
    skip_step "throughput paper" "core dependencies (yaml, jsonschema, numpy, PIL) missing, or no CUDA"
fi

# ---------------------------------------------------------------- 3b. the engine with CUDA graphs
if ! wanted graphs; then
    :
elif [ "$CORE_OK" = 1 ] && [ -f msnlan/training/cuda_graphs.py ]; then
    run_step "engine: cuda_graphs vs eager" 150 "$PY" - "$OUT/graphs" "$DEV" "${GPU_CHECK_DRY_RUN:-0}" <<'EOF'
# `msnlan train` twice from the same seed, eager and with cuda_graphs (auto: on CUDA only): the
# demo network at batch 16 of 48x48 LR patches, one stage, deterministic. The final weights must
# agree; the images/s of log.csv (median of the rows after the first) are compared.
import json, statistics, subprocess, sys, time
import torch

sys.path.insert(0, "benchmarks")
from synthetic_images import write_image_sets

root, device, dry = write_image_sets(sys.argv[1], 4, 160), sys.argv[2], sys.argv[3] == "1"
iters = 6 if dry else 200
sets = [f"iterations={iters}", f"checkpoint_interval={iters}", "log_interval=2" if dry else "log_interval=20",
        f"val_interval={iters}", "stages=null", "val_max_images=1"]
sets += (["batch_size=2", "patch_size=12", "model.n_feats=8", "model.reduction=4"] if dry
         else ["batch_size=16", "patch_size=48"])
speeds, finals = {}, {}
for graphs in ("false", "auto"):
    out = root / f"run_{graphs}"
    cmd = [sys.executable, "-m", "msnlan", "train", "--variant", "msnlan", "--scale", "2", "--preset", "demo",
           "--train-data", str(root / "train"), "--val-data", str(root / "val"), "--device", device, "--out", str(out)]
    cmd += [a for kv in sets + [f"cuda_graphs={graphs}"] for a in ("--set", kv)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(f"cuda_graphs={graphs}: exit status {proc.returncode} after {time.time() - t0:.1f} s")
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    for line in proc.stderr.splitlines():
        if "CUDA graphs" in line:
            print("  " + line.strip())
    env = json.loads((out / "environment.json").read_text())
    rows = [line.split(",") for line in (out / "log.csv").read_text().splitlines()]
    col = rows[0].index("images_per_s")
    speeds[graphs] = statistics.median(float(r[col]) for r in rows[2:])
    finals[graphs] = torch.load(out / "final.pt", weights_only=True)["model"]
    print(f"  environment.json: cuda_graphs {env.get('cuda_graphs')}, attention {env.get('attention_form')}, "
          f"{env.get('memory_format')}; median {speeds[graphs]:.1f} images/s")
a, b = finals["false"], finals["auto"]
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
bitwise = all(torch.equal(a[k], b[k]) for k in a)
print(f"final weights bitwise equal: {bitwise} (max |diff| {diff:.3g}); images/s with graphs / eager: "
      f"{speeds['auto'] / speeds['false']:.2f}x")
if diff > 1e-4:
    sys.exit("the graphed run's weights differ from the eager run's")
EOF
else
    skip_step "engine: cuda_graphs vs eager" "msnlan/training/cuda_graphs.py or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- 4. MSNLAB forward per size, form, precision
if ! wanted msnlab; then
    :
elif [ "$CORE_OK" = 1 ] && [ -f msnlan/models/msnlab.py ]; then
    run_step "MSNLAB forward ($MSN_SIZES)" 120 "$PY" - "$OUT/msnlab_forward.json" "$DEV" $MSN_SIZES <<'EOF'
# The paper's MSNLAB (64 channels, k = 3/5/7) alone, no_grad, batch 1, per square feature-map size:
# each attention mode in fp32 and under bf16 autocast (median of 5 after 1; the direct form only
# where its working memory fits), its peak memory and its difference from the fast form in fp32.
import contextlib, json, statistics, sys, time
import torch
from msnlan.models import msnlab as M

dev = torch.device(sys.argv[2])
cuda = dev.type == "cuda"
torch.manual_seed(0)
C = 64
block = M.MSNLAB(C, (3, 5, 7)).to(dev).eval()
rows = []


def timed(x, mode, amp):
    M.configure_attention(block, mode)
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.no_grad(), ctx:
        for i in range(6):
            if cuda: torch.cuda.synchronize()
            t0 = time.perf_counter()
            y = block(x)
            if cuda: torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
    return y.float(), statistics.median(times), peak


for size in (int(a) for a in sys.argv[3:]):
    x = torch.randn(1, C, size, size, device=dev) * 10  # activations of about the trained network's scale
    need = max(M.direct_attention_bytes(size, size, C, k) for k in (3, 5, 7))
    free = torch.cuda.mem_get_info()[0] if cuda else 4 * 2**30
    ref = None
    for amp in ("none", "bf16"):
        for mode in ("fast", "direct", "auto"):
            if mode == "direct" and need * 1.5 > free:
                print(f"{size}x{size} {mode} amp={amp}: skipped, needs ~{need / 2**30:.1f} GiB of {free / 2**30:.1f} free")
                continue
            y, t, peak = timed(x, mode, amp)
            ref = y if ref is None else ref
            diff = (y - ref).abs().max().item() / ref.abs().max().item()
            form = M.attention_form(block, dev)
            rows.append({"size": size, "amp": amp, "mode": mode, "form": form, "median_ms": t * 1e3,
                         "peak_memory_mb": peak, "max_rel_diff_vs_fast_fp32": diff})
            print(f"{size}x{size}x{C} {mode:6s} ({form}) amp={amp:4s}: {t * 1e3:8.2f} ms, peak {peak:7.0f} MiB, "
                  f"max rel. diff vs fast fp32 {diff:.2e}", flush=True)
    del x
    if cuda:
        torch.cuda.empty_cache()
json.dump({"device": torch.cuda.get_device_name(dev) if cuda else "cpu", "torch": torch.__version__, "rows": rows},
          open(sys.argv[1], "w"), indent=2)
EOF
else
    skip_step "MSNLAB forward" "msnlan/models/msnlab.py or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- 5. GPU leasing, two concurrent runs
if ! wanted lease; then
    :
elif [ "$CORE_OK" = 1 ] && [ -f msnlan/models/network.py ]; then
    lease_check() {
        local dir="$OUT/lease"
        "$PY" benchmarks/synthetic_images.py "$dir" 3 96 || return 1
        mkdir -p "$dir/locks"
        local pids=()
        for run in a b; do
            MSNLAN_GPU_COUNT=2 MSNLAN_GPU_LOCK_DIR="$dir/locks" "$PY" -m msnlan train --variant msnlan --scale 2 \
                --preset demo --train-data "$dir/train" --val-data "$dir/val" --out "$dir/run_$run" --device "$LEASE_DEVICE" \
                --set iterations="$LEASE_ITERS" --set val_interval="$LEASE_ITERS" \
                --set checkpoint_interval="$LEASE_ITERS" > "$dir/run_$run.log" 2>&1 &
            pids+=($!)
        done
        local rc=0
        for p in "${pids[@]}"; do wait "$p" || rc=1; done
        for run in a b; do
            echo "--- run $run:"
            grep -E "GPU lease|device|error|finished" "$dir/run_$run.log" || tail -5 "$dir/run_$run.log"
        done
        local slots
        slots=$(grep -ho "GPU lease: slot [0-9]*" "$dir"/run_*.log | sort | uniq | wc -l)
        if [ "$slots" = 2 ] && [ "$rc" = 0 ]; then
            echo "LEASE CHECK PASSED: the two concurrent runs got different slots"
        else
            echo "LEASE CHECK FAILED: distinct slots=$slots, exit status $rc"
            return 1
        fi
    }
    export -f lease_check
    LEASE_DEVICE=auto
    export OUT PY LEASE_ITERS LEASE_DEVICE
    run_step "GPU lease (2 simulated)" 100 bash -c lease_check
else
    skip_step "GPU lease (2 simulated)" "msnlan/models/network.py or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- 6. kill -9 and resume on the device
if ! wanted resume; then
    :
elif [ "$CORE_OK" = 1 ] && [ -f msnlan/models/network.py ]; then
    run_step "SIGKILL + resume on $DEV" 120 "$PY" - "$OUT/resume" "$DEV" "${GPU_CHECK_DRY_RUN:-0}" <<'EOF'
# A reference run, and a run killed with SIGKILL mid-way then restarted: the resumed run must
# finish with the same iterations (no duplicate log rows) and the same lr at every iteration;
# on CUDA the weights are reported as bitwise equal or not (CPU runs must be bitwise equal).
import signal, subprocess, sys, time
import torch

sys.path.insert(0, "benchmarks")
from synthetic_images import write_image_sets

root, device = write_image_sets(sys.argv[1], 3, 96), sys.argv[2]
iters = 40
cmd = [sys.executable, "-m", "msnlan", "train", "--variant", "msnlan", "--scale", "2", "--preset", "demo",
       "--train-data", str(root / "train"), "--val-data", str(root / "val"), "--device", device]
sets = [f"iterations={iters}", "checkpoint_interval=5", "log_interval=1", "val_interval=20", "milestones=[15,30]"]
if sys.argv[3] == "1":  # dry run on the CPU: a toy network
    sets += ["model.n_feats=8", "model.patch_sizes=[3]", "model.reduction=4", "batch_size=2", "patch_size=12"]
cmd += [a for kv in sets for a in ("--set", kv)]


def rows(out):
    return [line.split(",") for line in (out / "log.csv").read_text().splitlines()[1:]]


def run(out, kill_at=None):
    proc = subprocess.Popen(cmd + ["--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_at is not None:
        while proc.poll() is None:
            # stage 1 of the demo preset checkpoints in RUN_DIR/stage1; log.csv is RUN_DIR's
            if (out / "stage1" / "last.pt").is_file() and (out / "log.csv").is_file() and len(rows(out)) >= kill_at:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                print(f"killed at log row {len(rows(out))}", flush=True)
                return proc.returncode
            time.sleep(0.002)
    text = proc.communicate()[0]
    if proc.returncode:
        print(text)
    return proc.returncode


t0 = time.time()
assert run(root / "ref") == 0, "reference run failed"
print(f"reference run: {time.time() - t0:.1f} s", flush=True)
rc = run(root / "killed", kill_at=17)
assert rc == -signal.SIGKILL, f"the run was not killed mid-way (exit status {rc})"
assert run(root / "killed") == 0, "resumed run failed"
ref, got = rows(root / "ref"), rows(root / "killed")
# the demo preset has two stages: log.csv lists (iteration, ..., stage) for both, each stage from 1
stage1 = [r[0] for r in got if r[-1] == "1"]
assert stage1 == [str(i) for i in range(1, iters + 1)], f"stage-1 log iterations differ or repeat: {stage1}"
assert [(r[0], r[-1]) for r in got] == [(r[0], r[-1]) for r in ref], "log rows differ from the uninterrupted run"
assert [r[2] for r in got] == [r[2] for r in ref], "lr column differs"
a = torch.load(root / "ref" / "final.pt", weights_only=True)["model"]
b = torch.load(root / "killed" / "final.pt", weights_only=True)["model"]
bitwise = all(torch.equal(a[k], b[k]) for k in a)
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(f"killed (rc {rc}) and resumed: stage-1 iterations 1..{iters} once each, then stage 2, lr identical; weights bitwise equal: "
      f"{bitwise} (max |diff| {diff:.3g}); loss column identical: {[r[1] for r in got] == [r[1] for r in ref]}")
if device == "cpu" and not bitwise:
    sys.exit("CPU resume is not bitwise equal")
EOF
else
    skip_step "SIGKILL + resume" "msnlan/models/network.py or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- 7. unit tests touching CUDA (last: the measurements come first)
if ! wanted tests; then
    :
elif has pytest && [ "$CORE_OK" = 1 ]; then
    run_step "unit tests (cuda/gpu)" 75 "$PY" -m pytest -q -rs -p no:cacheprovider --continue-on-collection-errors \
        -k "cuda or gpu" tests/
else
    skip_step "unit tests (cuda/gpu)" "pytest or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- summary
log ""
log "=== summary"
for line in "${SUMMARY[@]}"; do log "$line"; done
for f in "$OUT"/throughput_*.json; do
    [ -f "$f" ] && "$PY" -c "
import json, sys
for r in json.load(open('$f')):
    print(f\"throughput {r['config']} {r['lr_patch']}x{r['lr_patch']} b{r['batch_size']} {'channels_last' if r.get('channels_last') else 'default'} amp={r['amp']} {r['attention_mode']} ({r['attention_form']}): {r['images_per_s']:.1f} images/s, {r['s_per_iteration_median']*1e3:.1f} ms/iteration, MSNLAB {'%.0f%%' % (100 * r['msnlab_share']) if r['msnlab_share'] is not None else 'n/a'}, peak {r['peak_memory_mb'] or 0:.0f} MiB\")
" | tee -a "$LOG"
done
log "outputs in $OUT"

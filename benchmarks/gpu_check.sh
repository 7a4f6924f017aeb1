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
# Steps: versions and nvidia-smi; CUDA-touching unit tests; training throughput of the paper model
# (batch 16, 48x48 LR) per attention form (auto, fast, direct) in fp32 and bf16; MSNLAB forward at a 256x256 feature map (memory-bounded
# vs direct attention, where the direct form fits); GPU leasing with two concurrent training runs
# on 2 simulated GPUs (MSNLAN_GPU_COUNT=2) mapped onto the real one; a run killed with SIGKILL
# and resumed on the GPU (same iterations and lr as an uninterrupted run; weights compared).
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
# GPU_CHECK_DRY_RUN=1 runs every step on the CPU at toy sizes, to check the script without a GPU
if [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
    DEV=cpu; THR_CONFIGS=demo; THR_BATCH=2; ITERS=2; MSN_SIZE=48; LEASE_ITERS=2
else
    DEV=cuda; THR_CONFIGS=paper; THR_BATCH=16; MSN_SIZE=256; LEASE_ITERS=30
fi

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

# ---------------------------------------------------------------- 3. unit tests touching CUDA
if has pytest && [ "$CORE_OK" = 1 ]; then
    run_step "unit tests (cuda/gpu)" 75 "$PY" -m pytest -q -rs -p no:cacheprovider --continue-on-collection-errors \
        -k "cuda or gpu" tests/
else
    skip_step "unit tests (cuda/gpu)" "pytest or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- 4. training throughput
if [ "$CORE_OK" = 1 ]; then
    # every attention form (auto must be the fastest or within 5% of it), fp32 and bf16, batch 16;
    # the forms run interleaved in one process, each step timed with its peak memory
    for amp in none bf16; do
        run_step "throughput $THR_CONFIGS amp=$amp" 150 "$PY" benchmarks/train_throughput.py --configs "$THR_CONFIGS" \
            --batches "$THR_BATCH" --modes auto,fast,direct --device "$DEV" --amp "$amp" --iterations "$ITERS" \
            --warmup 3 --profile-steps 2 --top 12 --json "$OUT/throughput_$amp.json"
    done
else
    skip_step "throughput paper" "core dependencies (yaml, jsonschema, numpy, PIL) missing, or no CUDA"
fi

# ---------------------------------------------------------------- 5. MSNLAB forward at 256x256
if [ "$CORE_OK" = 1 ] && [ -f msnlan/models/msnlab.py ]; then
    run_step "MSNLAB ${MSN_SIZE}x${MSN_SIZE} forward" 75 "$PY" - "$OUT/msnlab_$MSN_SIZE.json" "$DEV" "$MSN_SIZE" <<'EOF'
import json, statistics, sys, time
import torch
from msnlan.models import msnlab as M

dev = torch.device(sys.argv[2])
torch.manual_seed(0)
C, H, W = 64, int(sys.argv[3]), int(sys.argv[3])
cuda = dev.type == "cuda"
block = M.MSNLAB(C, (3, 5, 7)).to(dev).eval()
x = torch.randn(1, C, H, W, device=dev)

def timed(mode, runs):
    M.configure_attention(block, mode)
    times = []
    with torch.no_grad():
        for i in range(runs + 1):
            if cuda: torch.cuda.synchronize()
            t0 = time.perf_counter()
            y = block(x)
            if cuda: torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    return y, statistics.median(times)

def peak_mb():
    return torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0

res = {"shape": [1, C, H, W], "device": torch.cuda.get_device_name(dev) if cuda else "cpu", "torch": torch.__version__}
if cuda: torch.cuda.reset_peak_memory_stats()
y_fast, t_fast = timed("fast", 5)
res["fast"] = {"median_ms": t_fast * 1e3, "peak_memory_mb": peak_mb()}
print(f"MSNLAB fast (memory-bounded) forward {H}x{W}x{C}: {t_fast*1e3:.1f} ms, peak {peak_mb():.0f} MiB", flush=True)
need = max(M.direct_attention_bytes(H, W, C, k) for k in (3, 5, 7))
free = torch.cuda.mem_get_info()[0] if cuda else 4 * 2**30
if need * 1.3 < free:
    if cuda: torch.cuda.reset_peak_memory_stats()
    y_direct, t_direct = timed("direct", 2)
    diff = (y_direct - y_fast).abs().max().item()
    res["direct"] = {"median_ms": t_direct * 1e3, "peak_memory_mb": peak_mb(), "max_abs_diff_vs_fast": diff}
    print(f"MSNLAB direct forward: {t_direct*1e3:.1f} ms, peak {res['direct']['peak_memory_mb']:.0f} MiB; "
          f"max |direct - fast| = {diff:.3g}; fast is {t_direct / t_fast:.2f}x faster", flush=True)
else:
    res["direct"] = f"skipped: needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"
    print("MSNLAB direct:", res["direct"])
json.dump(res, open(sys.argv[1], "w"), indent=2)
EOF
else
    skip_step "MSNLAB forward" "msnlan/models/msnlab.py or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- 6. GPU leasing, two concurrent runs
if [ "$CORE_OK" = 1 ] && [ -f msnlan/models/network.py ]; then
    lease_check() {
        local dir="$OUT/lease"
        rm -rf "$dir"
        mkdir -p "$dir/locks"
        "$PY" - "$dir" <<'EOF' || return 1
import sys
from pathlib import Path
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for name, n, size in (("train", 3, 96), ("val", 1, 48)):
    folder = Path(sys.argv[1]) / name / "HR"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
EOF
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

# ---------------------------------------------------------------- 7. kill -9 and resume on the device
if [ "$CORE_OK" = 1 ] && [ -f msnlan/models/network.py ]; then
    run_step "SIGKILL + resume on $DEV" 120 "$PY" - "$OUT/resume" "$DEV" "${GPU_CHECK_DRY_RUN:-0}" <<'EOF'
# A reference run, and a run killed with SIGKILL mid-way then restarted: the resumed run must
# finish with the same iterations (no duplicate log rows) and the same lr at every iteration;
# on CUDA the weights are reported as bitwise equal or not (CPU runs must be bitwise equal).
import shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import torch
from PIL import Image

root, device = Path(sys.argv[1]), sys.argv[2]
shutil.rmtree(root, ignore_errors=True)
rng = np.random.default_rng(0)
for name, n, size in (("train", 3, 96), ("val", 1, 48)):
    (root / name / "HR").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name / "HR" / f"im{i}.png")
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
            if (out / "last.pt").is_file() and (out / "log.csv").is_file() and len(rows(out)) >= kill_at:
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
assert run(root / "killed") == 0, "resumed run failed"
ref, got = rows(root / "ref"), rows(root / "killed")
assert [r[0] for r in got] == [str(i) for i in range(1, iters + 1)], "log iterations differ or repeat"
assert [r[2] for r in got] == [r[2] for r in ref], "lr column differs"
a = torch.load(root / "ref" / "final.pt", weights_only=True)["model"]
b = torch.load(root / "killed" / "final.pt", weights_only=True)["model"]
bitwise = all(torch.equal(a[k], b[k]) for k in a)
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(f"killed (rc {rc}) and resumed: iterations 1..{iters} once each, lr identical; weights bitwise equal: "
      f"{bitwise} (max |diff| {diff:.3g}); loss column identical: {[r[1] for r in got] == [r[1] for r in ref]}")
if device == "cpu" and not bitwise:
    sys.exit("CPU resume is not bitwise equal")
EOF
else
    skip_step "SIGKILL + resume" "msnlan/models/network.py or core dependencies missing, or no CUDA"
fi

# ---------------------------------------------------------------- summary
log ""
log "=== summary"
for line in "${SUMMARY[@]}"; do log "$line"; done
for amp in none bf16; do
    f="$OUT/throughput_$amp.json"
    [ -f "$f" ] && "$PY" -c "
import json, sys
for r in json.load(open('$f')):
    print(f\"throughput {r['config']} amp={r['amp']}: {r['images_per_s']:.1f} images/s, {r['s_per_iteration_median']*1e3:.1f} ms/iteration, peak {r['peak_memory_mb'] or 0:.0f} MiB\")
" | tee -a "$LOG"
done
log "outputs in $OUT"

#!/bin/sh
# `ember governor calibrate --profile-out` then `ember governor sim --profile FILE`, as a user
# would, on copies of the fake trees (a 3-cluster RK3588 table tree on the rk3588 base, an
# 8-policy amd-pstate continuous-range tree on the ryzen base): calibrate exits 0 and prints the
# fit at every measured point (the profile's decode terms and the printed model are the least-
# squares fit of the measured points, recomputed here; prefill exact at the top);
# the profile carries the measured top point as its references; sim accepts it and prints every
# policy's column with finite numbers in every row, and --json agrees.
# usage: calib_sim_test.sh EMBER SOURCE_DIR SHARED_DIR
set -u
ember=$1 src=$2 shared=$3
model=$shared/models/stories260K.gguf
[ -r "$model" ] || { echo "missing $model"; exit 1; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cli-calib-sim.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0 pass=0
check() { # check DESCRIPTION COMMAND...
	desc=$1; shift
	if "$@"; then pass=$((pass + 1)); else echo "FAIL: $desc" >&2; fail=$((fail + 1)); fi
}

run_case() { # run_case TREE BASE CLUSTERS
	tree=$1 base=$2 n=$3 dir=$tmp/$1
	mkdir -p "$dir/root" && cp -a "$src/tests/sysfs-trees/$tree/." "$dir/root/" && chmod -R u+w "$dir/root"
	"$ember" governor calibrate -m "$model" --root "$dir/root" --saved "$dir/saved" \
		--out "$dir/cal.json" --profile-out "$dir/mybox.json" --base "$base" --steps 4 \
		--prefill 32 --decode 8 --threads 1 >"$dir/cal.out" 2>"$dir/cal.err"
	rc=$?
	check "$tree: calibrate exits 0 ($(tail -1 "$dir/cal.err"))" test $rc -eq 0
	check "$tree: calibrate names the profile" grep -q "profile written to $dir/mybox.json" "$dir/cal.out"
	# the fit table: one row per measured point, model against measurement
	python3 - "$dir/cal.out" "$dir/cal.json" "$dir/mybox.json" "$n" <<'EOF'
import json, math, sys
out, cal, prof, n = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), int(sys.argv[4])
lines = open(out).read().splitlines()
i = next(k for k, l in enumerate(lines) if l.startswith("profile fit:"))
rows = [l.split() for l in lines[i + 1:] if l and l[0].isdigit()]
bad = []
if len(rows) != len(cal["points"]):
    bad.append(f"{len(rows)} fit rows for {len(cal['points'])} points")
# The fit recomputed here (the oracle): capacity as the plant sums it, decode time per token a
# least-squares line against 1/capacity, a negative part clamped at 0 and the other refitted.
# The measured speeds themselves are noise on a fake tree (the real clock never changes), so
# what is checked is that the profile and the printed model are that fit of those measurements.
eng = [c for c in prof["clusters"]]
def cap(pt):
    khz = pt["khz"] if isinstance(pt["khz"], list) else [pt["khz"]] * len(eng)
    return sum(c["cpus"] * c["ipc"] * k / 1e6 for c, k in zip(eng, khz) if c["engine"])
xs = [1 / cap(p) for p in cal["points"]]
ys = [1 / p["decode_tok_s"] for p in cal["points"]]
m = len(xs); sx = sum(xs); sy = sum(ys)
sxx = sum(x * x for x in xs); sxy = sum(x * y for x, y in zip(xs, ys))
den = m * sxx - sx * sx
b = (m * sxy - sx * sy) / den if abs(den) > 1e-18 else 0
a = (sy - b * sx) / m
if b < 0:
    b, a = 0, sy / m
if a < 0:
    a, b = 0, sxy / sxx
perf = prof["performance"]
if abs(perf["decode_mem_ms"] - a * 1e3) > 1e-6 * max(1, a * 1e3) or \
        abs(perf["decode_gcycles_per_token"] - b) > 1e-6 * max(1, b) or perf["decode_overlap"] != 0:
    bad.append(f"profile decode terms {perf} are not the fit a={a} b={b}")
for r, x in zip(rows, xs):
    dm, dmod, pm, pmod = map(float, r[1:5])
    if not all(math.isfinite(v) and v > 0 for v in (dm, dmod, pm, pmod)):
        bad.append(f"not finite: {r}")
    elif abs(dmod / (1 / (a + b * x)) - 1) > 0.005:
        bad.append(f"decode {dmod} printed, the fit gives {1 / (a + b * x)} at {r[0]}")
top = cal["points"][-1]
pm, pmod = map(float, rows[-1][3:5])
if abs(pmod / pm - 1) > 0.01:
    bad.append(f"prefill at the top {pmod} modelled for {pm}")
refs = {r["figure"]: r["value"] for r in prof["references"]}
for fig in ("decode_tok_s", "prefill_tok_s"):
    if abs(refs.get(fig, 0) / top[fig] - 1) > 1e-6:
        bad.append(f"reference {fig} {refs.get(fig)} is not the measured {top[fig]}")
if len(prof["clusters"]) != n:
    bad.append(f"{len(prof['clusters'])} clusters, expected {n}")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	check "$tree: the fit reproduces the measured points, the references are the top point" test $? -eq 0

	"$ember" governor sim --profile "$dir/mybox.json" --duration 120 >"$dir/sim.out" 2>"$dir/sim.err"
	rc=$?
	check "$tree: sim --profile FILE exits 0 ($(tail -1 "$dir/sim.err"))" test $rc -eq 0
	python3 - "$dir/sim.out" <<'EOF'
import math, sys
lines = open(sys.argv[1]).read().splitlines()
policies = ["performance", "powersave", "ondemand", "conservative", "schedutil", "balanced",
            "efficiency", "quiet"]
head = next((l.split() for l in lines if l.split()[:1] == ["performance"]), None)
bad = [] if head == policies else [f"policy header {head}"]
rows = ["requests", "generated tokens", "J/token total", "wall J/token", "wall J/tok +idle",
        "prefill tok/s", "decode tok/s", "TTFT p50 ms", "TTFT p99 ms", "avg power W",
        "peak temp C"]
for name in rows:
    line = next((l for l in lines if l.startswith(name + " ")), None)
    vals = line[len(name):].split() if line else []
    if len(vals) != len(policies):
        bad.append(f"{name}: {len(vals)} values")
        continue
    try:
        nums = [float(v) for v in vals]
    except ValueError:
        bad.append(f"{name}: not numbers {vals}")
        continue
    if not all(math.isfinite(x) and x >= 0 for x in nums):
        bad.append(f"{name}: {vals}")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	check "$tree: every policy has finite numbers in every row" test $? -eq 0
	"$ember" governor sim --profile "$dir/mybox.json" --duration 60 --policy balanced --json \
		>"$dir/sim.json" 2>/dev/null
	check "$tree: sim --json runs the profile" python3 -c "
import json, math, sys
r = json.load(open(sys.argv[1]))[0]
sys.exit(0 if r['requests'] > 0 and math.isfinite(r['joules_per_token']) else 1)" "$dir/sim.json"
}

run_case rk3588-3cluster rk3588 3
run_case amd-pstate-epp-8c ryzen 8
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# `ember quantize` against llama.cpp (the peer binaries in ../shared/peers/llama.cpp/avx2):
#  1. Q8_0 and Q4_0 with --pure from our quantizer are byte-identical, tensor by tensor, to
#     llama-quantize --pure output for the same F16 input (a small synthetic llama model with
#     256-wide rows, made by ../shared/peers/make_synthetic_gguf.py);
#  2. without --pure, every tensor of our Q8_0, Q4_0, Q4_K, Q5_K and Q6_K files has the type
#     llama-quantize's default mixture gives it (an 8-layer synthetic model, so that the
#     Q4_K_M/Q5_K_M layer rule picks some layers and not others), and our Q8_0/Q4_0 tensors
#     are byte-identical to its;
#  3. our default Q4_0 and Q8_0 of stories260K are byte-identical, tensor by tensor, to the shared
#     reference files ../shared/models/stories260K-{q4_0,q8_0}.gguf;
#  4. llama.cpp loads and runs what we write: llama-cli generates from our Q4_K, Q5_K, Q6_K and
#     mixed files of that model and from our Q4_0 and mixed stories260K files.
# Skips (77) by name when the peer binaries or python3-numpy are absent.
# usage: quantize_llamacpp_test.sh EMBER SHARED_DIR
set -u
ember=$1
shared=$2
peer="$shared/peers/llama.cpp/avx2"
py=/usr/bin/python3
for b in llama-quantize llama-cli; do
    if [ ! -x "$peer/$b" ]; then
        echo "SKIP: llama.cpp peer binary $peer/$b is absent"
        exit 77
    fi
done
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "SKIP: python3-numpy for $py is absent (scripts/setup installs it)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # name command...
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        echo "ok   $name"
    else
        echo "FAIL $name"
        sed 's/^/     /' "$tmp/out" | tail -15
        fail=1
    fi
}

"$py" "$shared/peers/make_synthetic_gguf.py" --dim 256 --layers 2 --heads 4 --kv-heads 4 \
    --ffn 512 --vocab 1024 --ctx 256 -o "$tmp/tiny-f16.gguf" >/dev/null 2>&1 || {
    echo "FAIL making the synthetic model"
    exit 1
}

# ours theirs [BYTE_TYPES]: every tensor's type and shape equal, and its bytes equal when its
# type is in BYTE_TYPES (ggml type numbers, comma-separated; default: all types)
compare() {
    "$py" - "$1" "$2" "${3:-}" <<'EOF'
import sys
import os; sys.path.insert(0, os.environ["TOOLS"])
from gguf_io import Reader
a, b = Reader(sys.argv[1]), Reader(sys.argv[2])
only = {int(t) for t in sys.argv[3].split(',')} if sys.argv[3] else None
assert sorted(a.tensors) == sorted(b.tensors), "tensor names differ"
bad = bytes_cmp = 0
types = {}
for name in a.order:
    ta, tb = a.tensors[name], b.tensors[name]
    types[ta['type']] = types.get(ta['type'], 0) + 1
    if ta['type'] != tb['type'] or ta['ne'] != tb['ne']:
        print(f"{name}: type/shape {ta['type']}{ta['ne']} vs {tb['type']}{tb['ne']}"); bad += 1
    elif only is None or ta['type'] in only:
        bytes_cmp += 1
        if a.raw(name) != b.raw(name):
            ra, rb = a.raw(name), b.raw(name)
            diff = sum(x != y for x, y in zip(ra, rb))
            print(f"{name}: {diff} of {len(ra)} bytes differ"); bad += 1
print(f"{len(a.order)} tensors compared (types {types}), {bytes_cmp} by their bytes, {bad} differ")
sys.exit(1 if bad else 0)
EOF
}
export TOOLS="$shared/models/tools"

for t in Q8_0 Q4_0; do
    "$peer/llama-quantize" --pure "$tmp/tiny-f16.gguf" "$tmp/ref-$t.gguf" "$t" 1 \
        >"$tmp/lq.log" 2>&1 || { echo "FAIL llama-quantize --pure $t"; tail -5 "$tmp/lq.log"; fail=1; }
    check "ember quantize --type $t --pure" "$ember" quantize -q "$tmp/tiny-f16.gguf" \
        "$tmp/ours-$t.gguf" --type "$t" --pure --threads 2
    check "$t --pure bytes equal llama-quantize --pure" compare "$tmp/ours-$t.gguf" \
        "$tmp/ref-$t.gguf"
done

# the default mixture, on 8 layers: use_more_bits picks layers 0, 3, 6 and 7
"$py" "$shared/peers/make_synthetic_gguf.py" --dim 256 --layers 8 --heads 4 --kv-heads 4 \
    --ffn 512 --vocab 512 --ctx 256 -o "$tmp/tiny8-f16.gguf" >/dev/null 2>&1 || {
    echo "FAIL making the 8-layer synthetic model"
    exit 1
}
for t in Q8_0 Q4_0 Q4_K Q5_K Q6_K; do
    lt=$t
    case $t in Q4_K) lt=Q4_K_M ;; Q5_K) lt=Q5_K_M ;; esac
    "$peer/llama-quantize" "$tmp/tiny8-f16.gguf" "$tmp/ref8-$t.gguf" "$lt" 1 \
        >"$tmp/lq.log" 2>&1 || { echo "FAIL llama-quantize $lt"; tail -5 "$tmp/lq.log"; fail=1; }
    check "ember quantize --type $t (default mixture)" "$ember" quantize -q \
        "$tmp/tiny8-f16.gguf" "$tmp/ours8-$t.gguf" --type "$t" --threads 2
    # the type of every tensor; the bytes of the Q8_0 (ggml type 8) and Q4_0 (2) ones
    check "$t: every tensor's type as llama-quantize $lt's, Q8_0/Q4_0 bytes equal" compare \
        "$tmp/ours8-$t.gguf" "$tmp/ref8-$t.gguf" 8,2
done

runs_in_llamacpp() { # file: llama-cli loads it and generates 8 tokens
    "$peer/llama-cli" -m "$1" -p "Once upon a time" -n 8 -no-cnv --temp 0 --no-mmap -t 2 \
        </dev/null >"$1.txt" 2>&1
    local rc=$?
    cat "$1.txt"
    return $rc
}
for t in Q4_K Q5_K Q6_K; do
    check "ember quantize --type $t" "$ember" quantize -q "$tmp/tiny-f16.gguf" \
        "$tmp/ours-$t.gguf" --type "$t"
    check "llama-cli runs our $t" runs_in_llamacpp "$tmp/ours-$t.gguf"
done
check "ember quantize --type mixed (K types fit)" "$ember" quantize -q "$tmp/tiny-f16.gguf" \
    "$tmp/ours-mixed.gguf" --type mixed --target-bpw 5.5
check "llama-cli runs our mixed" runs_in_llamacpp "$tmp/ours-mixed.gguf"

st="$shared/models/stories260K.gguf"
check "stories260K Q4_0" "$ember" quantize -q "$st" "$tmp/st-q4_0.gguf" --type Q4_0
# llama-quantize itself cannot make these (it aborts on ffn_down's 172-wide rows); the shared
# Q8_0/Q4_0 files that ../shared/vectors/README.md measures (output.weight Q8_0, ffn_down F16)
# are what our default mixture writes, tensor for tensor
check "stories260K Q4_0 equals ../shared/models/stories260K-q4_0.gguf" compare \
    "$tmp/st-q4_0.gguf" "$shared/models/stories260K-q4_0.gguf"
check "stories260K Q8_0" "$ember" quantize -q "$st" "$tmp/st-q8_0.gguf" --type Q8_0
check "stories260K Q8_0 equals ../shared/models/stories260K-q8_0.gguf" compare \
    "$tmp/st-q8_0.gguf" "$shared/models/stories260K-q8_0.gguf"
check "llama-cli runs our stories260K Q4_0" runs_in_llamacpp "$tmp/st-q4_0.gguf"
check "stories260K mixed" "$ember" quantize -q "$st" "$tmp/st-mixed.gguf" --type mixed \
    --target-bpw 7.5
check "llama-cli runs our stories260K mixed" runs_in_llamacpp "$tmp/st-mixed.gguf"
# a trained model: llama.cpp's greedy text from our mixed file reads as a story
check "llama-cli's text from our mixed file is a story" grep -q "Once upon a time, there" \
    "$tmp/st-mixed.gguf.txt"

exit $fail

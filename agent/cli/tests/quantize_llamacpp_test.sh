#!/usr/bin/env bash
# `ember quantize` against llama.cpp (the peer binaries in ../shared/peers/llama.cpp/avx2):
#  1. Q8_0 and Q4_0 from our quantizer are byte-identical, tensor by tensor, to
#     llama-quantize --pure output for the same F16 input (a small synthetic llama model with
#     256-wide rows, made by ../shared/peers/make_synthetic_gguf.py);
#  2. llama.cpp loads and runs what we write: llama-cli generates from our Q4_K, Q5_K, Q6_K and
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

compare() { # ours theirs: every tensor's bytes and type equal
    "$py" - "$1" "$2" <<'EOF'
import sys
import os; sys.path.insert(0, os.environ["TOOLS"])
from gguf_io import Reader
a, b = Reader(sys.argv[1]), Reader(sys.argv[2])
assert sorted(a.tensors) == sorted(b.tensors), "tensor names differ"
bad = 0
for name in a.order:
    ta, tb = a.tensors[name], b.tensors[name]
    if ta['type'] != tb['type'] or ta['ne'] != tb['ne']:
        print(f"{name}: type/shape {ta['type']}{ta['ne']} vs {tb['type']}{tb['ne']}"); bad += 1
    elif a.raw(name) != b.raw(name):
        ra, rb = a.raw(name), b.raw(name)
        diff = sum(x != y for x, y in zip(ra, rb))
        print(f"{name}: {diff} of {len(ra)} bytes differ"); bad += 1
print(f"{len(a.order)} tensors compared, {bad} differ")
sys.exit(1 if bad else 0)
EOF
}
export TOOLS="$shared/models/tools"

for t in Q8_0 Q4_0; do
    "$peer/llama-quantize" --pure "$tmp/tiny-f16.gguf" "$tmp/ref-$t.gguf" "$t" 1 \
        >"$tmp/lq.log" 2>&1 || { echo "FAIL llama-quantize $t"; tail -5 "$tmp/lq.log"; fail=1; }
    check "ember quantize --type $t" "$ember" quantize -q "$tmp/tiny-f16.gguf" \
        "$tmp/ours-$t.gguf" --type "$t" --threads 2
    check "$t bytes equal llama-quantize --pure" compare "$tmp/ours-$t.gguf" "$tmp/ref-$t.gguf"
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
check "llama-cli runs our stories260K Q4_0" runs_in_llamacpp "$tmp/st-q4_0.gguf"
check "stories260K mixed" "$ember" quantize -q "$st" "$tmp/st-mixed.gguf" --type mixed \
    --target-bpw 7.5
check "llama-cli runs our stories260K mixed" runs_in_llamacpp "$tmp/st-mixed.gguf"
# a trained model: llama.cpp's greedy text from our mixed file reads as a story
check "llama-cli's text from our mixed file is a story" grep -q "Once upon a time, there" \
    "$tmp/st-mixed.gguf.txt"

exit $fail

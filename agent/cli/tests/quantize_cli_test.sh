#!/usr/bin/env bash
# `ember quantize` and `ember eval` end to end on ../shared/models/stories260K*.gguf: --help,
# usage errors (exit 2), every bad input of issue 11 (a non-GGUF file, an unsupported tensor
# type, an already quantized input without --allow-requantize, a missing output directory, the
# input as output) with a clear message, exit 1 and nothing left behind; then accuracy through
# ember eval against the F32 original (F16 and Q8_0 agree with F32, the mixed plan at the size of
# plain Q4_0 (--pure) beats it; the default mixture keeps output.weight in Q8_0 and beats --pure) and
# the plan shown by ember run and ember bench.
# usage: quantize_cli_test.sh EMBER SOURCE_DIR SHARED_DIR
set -u
ember=$1
src=$2
shared=$3
st="$shared/models/stories260K.gguf"
text="$src/docs/quantization-eval.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() {
    echo "FAIL $1"
    sed 's/^/     /' "$tmp/err" | tail -8
    fail=1
}
# expect NAME RC PATTERN command...: exit status RC and PATTERN in stderr
expect() {
    local name=$1 want=$2 pat=$3
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" = "$want" ] && { [ -z "$pat" ] || grep -qE -- "$pat" "$tmp/err"; }; then
        ok "$name"
    else
        echo "     exit $rc (want $want), pattern '$pat'"
        bad "$name"
    fi
}
# nothing but the given files in the output directory (no temporary left)
only() { # dir files...
    local dir=$1
    shift
    local left
    left=$(cd "$dir" && ls -A | grep -vxF -f <(printf '%s\n' "$@") || true)
    [ -z "$left" ]
}

"$ember" quantize --help >"$tmp/out" 2>&1 && grep -q -- "--target-bpw" "$tmp/out" &&
    ok "quantize --help" || bad "quantize --help"
"$ember" eval --help >"$tmp/out" 2>&1 && grep -q -- "--ref" "$tmp/out" &&
    ok "eval --help" || bad "eval --help"
expect "quantize without --type" 2 "--type is required" "$ember" quantize "$st" "$tmp/o.gguf"
expect "quantize bad type" 2 "'Q3_X' is not one of" "$ember" quantize "$st" "$tmp/o.gguf" \
    --type Q3_X
expect "quantize bad budget" 2 "--target-bpw: 'abc'" "$ember" quantize "$st" "$tmp/o.gguf" \
    --type mixed --target-bpw abc
expect "quantize one file" 2 "give the input and the output" "$ember" quantize "$st" --type Q8_0
expect "--pure with mixed" 2 "--pure gives every matrix one type" "$ember" quantize "$st" \
    "$tmp/o.gguf" --type mixed --pure
expect "eval without text" 2 "--text FILE is required" "$ember" eval -m "$st"
expect "eval without model" 2 "no model" "$ember" eval --config /dev/null --text "$text"

mkdir "$tmp/w"
printf 'this is not a model\n' >"$tmp/w/notgguf.gguf"
expect "non-GGUF input" 1 "notgguf.gguf.*(magic|GGUF)" "$ember" quantize "$tmp/w/notgguf.gguf" \
    "$tmp/w/o.gguf" --type Q8_0
only "$tmp/w" notgguf.gguf && ok "non-GGUF: nothing written" || bad "non-GGUF: nothing written"

# an F16 file whose blk.0.ffn_gate.weight claims type Q4_1 (3), which ember cannot read
/usr/bin/python3 - "$shared/models/stories260K-f16.gguf" "$tmp/w/q4_1.gguf" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
name = b'blk.0.ffn_gate.weight'
i = b.index(len(name).to_bytes(8, 'little') + name) + 8 + len(name)
nd = int.from_bytes(b[i:i + 4], 'little')
t = i + 4 + 8 * nd
assert int.from_bytes(b[t:t + 4], 'little') == 1
b[t:t + 4] = (3).to_bytes(4, 'little')
open(sys.argv[2], 'wb').write(b)
PY
expect "unsupported input type" 1 "blk.0.ffn_gate.weight' has type Q4_1" "$ember" quantize \
    "$tmp/w/q4_1.gguf" "$tmp/w/o.gguf" --type Q8_0
only "$tmp/w" notgguf.gguf q4_1.gguf && ok "unsupported: nothing written" ||
    bad "unsupported: nothing written"

expect "requantize refused" 1 "already quantized \(Q8_0\).*--allow-requantize" "$ember" quantize \
    "$shared/models/stories260K-q8_0.gguf" "$tmp/w/o.gguf" --type Q4_0
only "$tmp/w" notgguf.gguf q4_1.gguf && ok "requantize: nothing written" ||
    bad "requantize: nothing written"
expect "requantize allowed" 0 "" "$ember" quantize -q --allow-requantize \
    "$shared/models/stories260K-q8_0.gguf" "$tmp/w/requant.gguf" --type Q4_0
expect "missing output directory" 1 "$tmp/nodir/o.gguf.*No such file or directory" "$ember" \
    quantize "$st" "$tmp/nodir/o.gguf" --type Q8_0
cp "$st" "$tmp/w/in.gguf"
expect "output is the input" 1 "output is the input" "$ember" quantize "$tmp/w/in.gguf" \
    "$tmp/w/in.gguf" --type Q8_0
cmp -s "$st" "$tmp/w/in.gguf" && ok "input untouched" || bad "input untouched"
expect "eval missing text" 1 "cannot open" "$ember" eval -m "$st" --text "$tmp/none.txt"

# accuracy: ember eval --json against the F32 original
field() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
for t in F16 Q8_0; do
    "$ember" quantize -q "$st" "$tmp/st-$t.gguf" --type $t 2>"$tmp/err" || bad "quantize $t"
done
# Q4_0 as llama-quantize --pure makes it (output.weight in Q4_0 too): the size mixed competes at
"$ember" quantize -q "$st" "$tmp/st-Q4_0.gguf" --type Q4_0 --pure 2>"$tmp/err" ||
    bad "quantize Q4_0 --pure"
# and llama-quantize's default mixture: output.weight (64-wide rows) in Q8_0
"$ember" quantize "$st" "$tmp/st-Q4_0-default.gguf" --type Q4_0 >"$tmp/plan.txt" 2>"$tmp/err" &&
    grep -q "^output.weight .*F32 *Q8_0 .*output projection: Q8_0" "$tmp/plan.txt" &&
    grep -q "^blk.0.attn_q.weight .*F32 *Q4_0 " "$tmp/plan.txt" &&
    ok "Q4_0's default mixture keeps output.weight in Q8_0" ||
    bad "Q4_0's default mixture keeps output.weight in Q8_0"
"$ember" quantize "$st" "$tmp/st-mixed.gguf" --type mixed --target-bpw 6.73 \
    >"$tmp/plan.txt" 2>"$tmp/err" || bad "quantize mixed"
grep -q "smallest possible" "$tmp/plan.txt" && grep -q "blk.0.ffn_down.weight.*F16.*rows do not fit" \
    "$tmp/plan.txt" && ok "mixed plan printed" || bad "mixed plan printed"
"$ember" quantize "$st" "$tmp/st-Q5_K.gguf" --type Q5_K >"$tmp/plan.txt" 2>"$tmp/err" &&
    grep -q "blk.0.ffn_up.weight .*F32 *Q8_0 .*rows do not fit 256" "$tmp/plan.txt" &&
    grep -q "blk.0.ffn_down.weight .*F32 *F16 .*rows do not fit a block" "$tmp/plan.txt" &&
    ok "Q5_K falls back to Q8_0, then F16, where rows do not fit" ||
    bad "Q5_K falls back to Q8_0, then F16, where rows do not fit"
for t in F16 Q8_0 Q4_0 Q4_0-default mixed; do
    "$ember" eval -m "$tmp/st-$t.gguf" --ref "$st" --text "$text" --json >"$tmp/$t.json" \
        2>"$tmp/err" || bad "eval $t"
done
a=$(field "$tmp/F16.json" top1_agreement)
awk -v a="$a" 'BEGIN { exit !(a >= 0.99) }' && ok "F16 top-1 agreement $a >= 0.99" ||
    bad "F16 top-1 agreement $a >= 0.99"
a=$(field "$tmp/Q8_0.json" top1_agreement)
awk -v a="$a" 'BEGIN { exit !(a >= 0.97) }' && ok "Q8_0 top-1 agreement $a >= 0.97" ||
    bad "Q8_0 top-1 agreement $a >= 0.97"
kq=$(field "$tmp/Q4_0.json" kl_divergence)
km=$(field "$tmp/mixed.json" kl_divergence)
sq=$(stat -c %s "$tmp/st-Q4_0.gguf")
sm=$(stat -c %s "$tmp/st-mixed.gguf")
awk -v kq="$kq" -v km="$km" -v sq="$sq" -v sm="$sm" \
    'BEGIN { exit !(km < kq && sm <= sq * 1.001) }' &&
    ok "mixed KL $km < Q4_0 KL $kq at size $sm <= $sq" ||
    bad "mixed KL $km < Q4_0 KL $kq at size $sm <= $sq"
# the default mixture's Q8_0 output projection is worth its bytes: lower KL than --pure
kd=$(field "$tmp/Q4_0-default.json" kl_divergence)
awk -v kq="$kq" -v kd="$kd" 'BEGIN { exit !(kd < kq) }' &&
    ok "Q4_0 default KL $kd < Q4_0 --pure KL $kq" || bad "Q4_0 default KL $kd < Q4_0 --pure KL $kq"
p=$(field "$tmp/F16.json" perplexity)
awk -v p="$p" 'BEGIN { exit !(p > 1 && p < 10) }' && ok "F16 perplexity $p is sane" ||
    bad "F16 perplexity $p is sane"

"$ember" run -m "$tmp/st-mixed.gguf" -n 4 -p Once >"$tmp/out" 2>"$tmp/err"
grep -q "quantization (ember quantize): mixed" "$tmp/err" && ok "ember run shows the plan" ||
    bad "ember run shows the plan"
"$ember" bench -m "$tmp/st-mixed.gguf" -p 4 -n 4 -r 1 -t 1 --bandwidth 10 >"$tmp/out" 2>"$tmp/err"
grep -q "quantization (ember quantize): mixed" "$tmp/out" && ok "ember bench shows the plan" ||
    { cp "$tmp/out" "$tmp/err"; bad "ember bench shows the plan"; }
exit $fail

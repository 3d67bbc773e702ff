#!/usr/bin/env bash
# `ember models list|show|rm` and `ember pull` through the binary, as a user meets them. The pulls
# go to a model server on loopback started here (tests/agent/model_server.py): a whole file with
# its .sha256 sidecar, a second pull of it (skipped), a connection cut midway (resumed with a
# Range request, within one pull and across two), a Hugging Face style redirect with
# X-Linked-Etag (verified) and a wrong one (refused), a corrupt file (refused, nothing listed), a
# 404, and a directory too small (refused before writing). Never the internet.
# Usage: models_cli_test.sh EMBER SOURCE_DIR SHARED_DIR
set -uo pipefail
ember=$1 src=$2 shared=$3
f32="$shared/models/stories260K.gguf"
q8="$shared/models/stories260K-q8_0.gguf"
[ -f "$f32" ] && [ -f "$q8" ] || { echo "skip: no stories260K models in $shared/models"; exit 77; }
command -v python3 >/dev/null || { echo "skip: python3 missing"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ember-models.XXXXXX")
pids=()
pass=0 fail=0
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    mountpoint -q "$tmp/small" 2>/dev/null && umount "$tmp/small"
    if [ "$fail" != 0 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
run() { "$@" >"$tmp/out" 2>"$tmp/err" </dev/null; rc=$?; out=$(cat "$tmp/out"); err=$(cat "$tmp/err"); }
has() { grep -q -- "$1" <<<"$2"; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <<<"$out"; }

dir="$tmp/models"
mkdir -p "$dir/sub"
cp "$f32" "$dir/stories260K.gguf"
cp "$q8" "$dir/sub/stories260K-q8.gguf"
printf 'not a model' >"$dir/broken.gguf"
cat >"$tmp/ember.conf" <<EOF
[models]
dir = $dir
aliases = small=sub/stories260K-q8
[api]
port = 9
EOF
conf="--config $tmp/ember.conf"

# --- help and usage errors
for c in "models" "models list" "models show" "models rm" "pull"; do
    run "$ember" $c --help
    check "$c --help exits 0 with usage" bash -c "[ $rc = 0 ] && grep -q '^usage: ember' <<<\"\$1\"" _ "$out"
done
run "$ember" models
check "models without a sub-command: exit 2" test "$rc" = 2
run "$ember" models frobnicate
check "models frobnicate: exit 2 naming it" bash -c "[ $rc = 2 ] && grep -q frobnicate <<<\"\$1\"" _ "$err"
run "$ember" models show $conf
check "models show without ID: exit 2" test "$rc" = 2
run "$ember" pull $conf
check "pull without a source: exit 2" test "$rc" = 2
run "$ember" pull $conf ftp://example/x.gguf
check "pull ftp: exit 2" bash -c "[ $rc = 2 ] && grep -q 'http(s)://' <<<\"\$1\"" _ "$err"

# --- list, show, rm
run "$ember" models list $conf
check "list: exit 0" test "$rc" = 0
check "list shows the F32 model with its metadata" has "stories260K .*llama .*F32" "$out"
check "list shows the subdirectory model" has "sub/stories260K-q8 .*Q8_0" "$out"
check "list shows the broken file with the loader's message" has "broken .*broken: .*broken.gguf" "$out"
check "list says no agent answered" has "no agent answered" "$out"
run "$ember" models list --json $conf
check "list --json: 3 models" test "$(jq_py 'len(d)')" = 3
check "list --json: fields" test "$(jq_py '[m["id"] for m in d if m["status"]=="ok" and m["architecture"]=="llama" and m["parameters"]>0 and m["context_length"]>0 and m["loaded"] is None]')" = "['stories260K', 'sub/stories260K-q8']"
check "list --json: alias" test "$(jq_py '[m["aliases"] for m in d if m["id"]=="sub/stories260K-q8"][0]')" = "['small']"
check "list --json: broken has its error" test "$(jq_py '[m["status"] for m in d if m["id"]=="broken"][0]')" = broken
run "$ember" models show small $conf
check "show by alias: exit 0" test "$rc" = 0
check "show: quantization" has "quantization   Q8_0" "$out"
check "show: chat template line" has "chat template" "$out"
run "$ember" models show --json stories260K $conf
check "show --json: vocab and layers" test "$(jq_py 'd["vocab_size"], d["block_count"] > 0')" = "512 True"
run "$ember" models show nope $conf
check "show unknown: exit 2 naming it" bash -c "[ $rc = 2 ] && grep -q \"no model 'nope'\" <<<\"\$1\"" _ "$err"
run "$ember" models rm broken $conf
check "rm broken: exit 0" test "$rc" = 0
check "rm removed the file" test ! -e "$dir/broken.gguf"
run "$ember" models rm broken $conf
check "rm again: exit 2" test "$rc" = 2

# --- pull from a loopback server
srv="$tmp/srv"
mkdir -p "$srv"
cp "$f32" "$srv/stories260K-f32.gguf"
cp "$q8" "$srv/stories260K-q8_0.gguf"
cp "$q8" "$srv/resume.gguf"
python3 -c "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest() + '  stories260K-f32.gguf')" "$srv/stories260K-f32.gguf" >"$srv/stories260K-f32.gguf.sha256"
python3 "$src/tests/agent/model_server.py" "$srv" "$tmp/port" "$tmp/server.log" 2>"$tmp/server.err" &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || { echo "the model server did not start"; cat "$tmp/server.err"; exit 1; }
base="http://127.0.0.1:$(cat "$tmp/port")"
pulldir="$tmp/pulled"

run "$ember" pull $conf --dir "$pulldir" "$base/files/stories260K-f32.gguf"
check "pull: exit 0 ($err)" test "$rc" = 0
check "pull: installed and verified against the sidecar" has "verified against sidecar" "$out"
check "pull: same bytes" cmp -s "$f32" "$pulldir/stories260K-f32.gguf"
check "pull: no partial file left" test -z "$(ls -A "$pulldir" | grep '^\.')"
run "$ember" pull $conf --dir "$pulldir" "$base/files/stories260K-f32.gguf"
check "pull twice: skipped" bash -c "[ $rc = 0 ] && grep -q 'skipped' <<<\"\$1\"" _ "$out"
run "$ember" models list --dir "$pulldir" $conf
check "the pulled model is listed" has "stories260K-f32 .*F32" "$out"

# a connection cut midway: resumed by Range within one pull
run "$ember" pull $conf --dir "$pulldir" "$base/cut/stories260K-q8_0.gguf"
check "pull cut: exit 0 ($err)" test "$rc" = 0
check "pull cut: resumed with a Range request" grep -q "GET /cut/stories260K-q8_0.gguf range=bytes=[1-9]" "$tmp/server.log"
check "pull cut: same bytes" cmp -s "$q8" "$pulldir/stories260K-q8_0.gguf"
# ... and across two pulls: the first gives up, leaves a hidden partial file nobody lists
run "$ember" pull $conf --dir "$pulldir" --retries 0 "$base/cut/resume.gguf"
check "pull cut, no retries: exit 1" test "$rc" = 1
check "pull cut, no retries: the partial file is kept" test -s "$pulldir/.resume.gguf.part"
run "$ember" models list --json --dir "$pulldir" $conf
check "a partial file is not listed" test "$(jq_py '[m["id"] for m in d if "resume" in m["id"]]')" = "[]"
run "$ember" pull $conf --dir "$pulldir" --retries 0 "$base/cut/resume.gguf"
check "second pull resumes and completes ($err)" bash -c "[ $rc = 0 ] && grep -q 'resuming at' <<<\"\$1\"" _ "$err"
check "resumed file: same bytes" cmp -s "$q8" "$pulldir/resume.gguf"

# Hugging Face: the 302 carries X-Linked-Etag
run env HF_ENDPOINT="$base/hf" "$ember" pull $conf --dir "$pulldir" --name hf-q8.gguf hf:owner/repo/stories260K-q8_0.gguf
check "pull hf: verified against X-Linked-Etag ($err)" bash -c "[ $rc = 0 ] && grep -q 'X-Linked-Etag' <<<\"\$1\"" _ "$out"
run env HF_ENDPOINT="$base/hfbad" "$ember" pull $conf --dir "$pulldir" --name hf-bad.gguf hf:owner/repo/stories260K-q8_0.gguf
check "pull hf with a wrong hash: exit 1, SHA-256 named" bash -c "[ $rc = 1 ] && grep -q 'SHA-256' <<<\"\$1\"" _ "$err"
check "pull hf with a wrong hash: nothing installed" test ! -e "$pulldir/hf-bad.gguf"
run "$ember" pull $conf --dir "$pulldir" --sha256 "$(printf '1%.0s' $(seq 64))" "$base/files/stories260K-q8_0.gguf" --name q8-wrong.gguf
check "pull --sha256 wrong: exit 1" test "$rc" = 1

# corrupt: the size is right, the header is not
run "$ember" pull $conf --dir "$pulldir" --name corrupt.gguf "$base/corrupt/stories260K-q8_0.gguf"
check "pull corrupt: exit 1 saying not a model" bash -c "[ $rc = 1 ] && grep -q 'not a model Ember can load' <<<\"\$1\"" _ "$err"
check "pull corrupt: nothing installed or left" test -z "$(ls -A "$pulldir" | grep corrupt)"
run "$ember" pull $conf --dir "$pulldir" "$base/files/missing.gguf"
check "pull 404: exit 1 naming HTTP 404" bash -c "[ $rc = 1 ] && grep -q '404' <<<\"\$1\"" _ "$err"
run "$ember" pull $conf --dir "$pulldir" "$base/files/"
check "pull a URL naming no file: exit 2" test "$rc" = 2

# a directory too small: refused before writing (needs root for a tmpfs)
if [ "$(id -u)" = 0 ] && mkdir -p "$tmp/small" && mount -t tmpfs -o size=4m tmpfs "$tmp/small" 2>/dev/null; then
    run "$ember" pull $conf --dir "$tmp/small" "$base/files/stories260K-f32.gguf"
    check "pull onto a full disk: exit 1, says free" bash -c "[ $rc = 1 ] && grep -q 'free' <<<\"\$1\"" _ "$err"
    check "pull onto a full disk: nothing written" test -z "$(ls -A "$tmp/small")"
    umount "$tmp/small"
else
    echo "note: not root or no tmpfs: the full-disk check did not run"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

#!/usr/bin/env bash
# Runs every fuzz target under libFuzzer (with AddressSanitizer) for a time budget each:
#
#     scripts/fuzz.sh 60                 # each target for 60 s
#     scripts/fuzz.sh 600 regex stream   # only these
#
# Targets: stream (the lifecycle machine against a reference model), regex (generated
# patterns against a direct evaluation; raw patterns for the parser), proxy_header (the PROXY
# v1/v2 decoder), config (the YAML config loader), client_hello (the proxy plugin's SNI
# reader, in C). Seeds and regression inputs live in Tests/Fuzz/corpus/<target>; new corpus
# entries go to .build-fuzz/corpus/<target>, and any input that breaks a check is saved as
# .build-fuzz/findings/<target>-crash-* (add it to the committed corpus once fixed: `swift
# test` replays that corpus). The first run builds everything with the sanitizers into
# .build-fuzz (about 10 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stream regex proxy_header config client_hello)
command -v swift >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
scratch=.build-fuzz
mkdir -p "$scratch/findings"

WHARF_FUZZ=1 swift build --scratch-path "$scratch" -c debug --product wharf-fuzz \
    -Xswiftc -sanitize=fuzzer,address >"$scratch/build.log" 2>&1 || { tail -40 "$scratch/build.log"; exit 1; }
# (gold warns about ASan's local symbols on every fuzzer link: noise, kept in the log)
clang -std=c11 -g -O1 -fsanitize=fuzzer,address -Iinclude -Iplugins/proxy -Iplugins/common \
    Tests/Fuzz/ClientHello/client_hello_fuzz.c plugins/proxy/client_hello.c -o "$scratch/client-hello-fuzz" \
    >>"$scratch/build.log" 2>&1 || { tail -40 "$scratch/build.log"; exit 1; }

status=0
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    mkdir -p "$corpus"
    if [ "$target" = client_hello ]; then binary="$scratch/client-hello-fuzz"; else binary="$scratch/debug/wharf-fuzz"; fi
    log="$scratch/$target.log"
    set +e
    WHARF_FUZZ_TARGET="$target" "$binary" -max_total_time="$budget" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$scratch/findings/$target-" -print_final_stats=1 \
        "$corpus" "Tests/Fuzz/corpus/$target" >"$log" 2>&1
    code=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    found=$(ls "$scratch/findings" 2>/dev/null | grep -c "^$target-" || true)
    echo "$target: ${budget} s, $runs inputs, $coverage, corpus $(ls "$corpus" | wc -l) files, findings: $found (exit $code)"
    if [ "$code" -ne 0 ]; then
        status=1
        grep -E "Fatal error|ERROR: (libFuzzer|AddressSanitizer: (heap|global|stack-buffer-overflow|use))" "$log" | head -3
    fi
done
exit $status

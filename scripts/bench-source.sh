#!/usr/bin/env bash
# Benchmarks pkg/source against the git CLI on the same generated repository
# (10,000 files, 1,000 commits, served by git daemon on 127.0.0.1): a full
# clone, and an incremental fetch of one new commit; and reading every file of
# a snapshot of the tip. Prints the median of
# each benchmark and the go-git/CLI ratio.
#
#   scripts/bench-source.sh            # COUNT=5 runs of BENCHTIME=5x each
#   COUNT=10 BENCHTIME=10x scripts/bench-source.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

count=${COUNT:-5}
benchtime=${BENCHTIME:-5x}
out=${OUT:-$(mktemp -t gitorch-bench-source.XXXXXX)}

echo "go test ./pkg/source -run '^\$' -bench 'Clone|FetchIncremental|SnapshotRead' -benchtime=$benchtime -count=$count -benchmem"
go test ./pkg/source -run '^$' -bench 'Clone|FetchIncremental|SnapshotRead' -benchtime="$benchtime" -count="$count" -benchmem | tee "$out"
echo
echo "raw output: $out"
echo

# Median ns/op per benchmark, then the ratio of go-git to the CLI.
awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) if ($(i+1) == "ns/op") { v[name] = v[name] " " $i; n[name]++ }
}
function median(list,   a, k, i, j, t) {
	k = split(list, a, " ")
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
	printf "%-40s %6s %12s\n", "benchmark", "runs", "median"
	for (name in v) { m[name] = median(v[name]); printf "%-40s %6d %10.1f ms\n", name, n[name], m[name] / 1e6 | "sort" }
	close("sort")
	print ""
	split("BenchmarkClone BenchmarkFetchIncremental", groups, " ")
	for (g = 1; g <= 2; g++) {
		a = m[groups[g] "/go-git"]; b = m[groups[g] "/git-cli"]
		if (a && b) printf "%-28s go-git/CLI = %.2f\n", groups[g], a / b
	}
}' "$out"

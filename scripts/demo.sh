#!/usr/bin/env bash
# gitorch's main job as far as it goes today: build gitorch, check the
# example GitOps repository, and show where its pods would run on a
# three-node cluster and what happens when a node leaves.
#
# Running the pods themselves (the node agent on containerd) is not part of
# gitorch yet: this script stops at the plan.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

mkdir -p bin
go build -o bin/gitorch ./cmd/gitorch
./bin/gitorch version

echo
echo "== gitorch validate examples/repo"
./bin/gitorch validate examples/repo

echo
echo "== gitorch plan examples/repo --nodes examples/nodes.yaml"
rc=0
NO_COLOR=1 ./bin/gitorch plan --nodes examples/nodes.yaml examples/repo || rc=$?
# plan exits 2 when there are changes, as terraform plan -detailed-exitcode.
[ "$rc" -eq 2 ] || { echo "plan exited $rc, want 2 (changes)"; exit 1; }

echo
echo "== what if node-b leaves?"
cat >/tmp/gitorch-demo-nodes.yaml <<'NODES'
nodes:
- name: node-a
  address: 127.0.0.1
  labels: {zone: a}
  capacity: {cpu: "2", memory: 4Gi, pods: 110}
- name: node-c
  address: 127.0.0.3
  labels: {zone: c, disk: ssd}
  capacity: {cpu: "4", memory: 8Gi, pods: 110}
NODES
rc=0
NO_COLOR=1 ./bin/gitorch plan --nodes /tmp/gitorch-demo-nodes.yaml \
	--against-dir examples/repo --against-nodes examples/nodes.yaml examples/repo || rc=$?
[ "$rc" -eq 2 ] || { echo "plan exited $rc, want 2 (changes)"; exit 1; }

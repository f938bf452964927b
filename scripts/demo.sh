#!/usr/bin/env bash
# gitorch's main job on one machine: build gitorch, check the example GitOps
# repository, show where its pods would run on a three-node cluster, then
# run this node's agent on examples/repo against a containerd of its own and
# show its pods running.
#
#   scripts/demo.sh          run it (as root, on Debian 12); the agent and
#                            its containerd keep running afterwards
#   scripts/demo.sh stop     stop the agent, its pods and its containerd,
#                            and remove everything the demo made
#
# Nothing is pulled from the internet but the Go modules: the hello pods run
# a busybox image built from Debian's busybox-static. The guestbook and
# nginx pods need their public images; without registry access they stay in
# ImagePullBackOff, which `gitorch status` shows.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

DEMO=/tmp/gitorch-demo
SOCK=$DEMO/containerd/c.sock
API=127.0.0.1:7480
CIDR=10.88.0.0/24

stop_demo() {
	if [ -f $DEMO/agent.pid ]; then
		kill "$(cat $DEMO/agent.pid)" 2>/dev/null || true
		sleep 1
	fi
	if [ -S $SOCK ]; then
		for t in $(ctr -a $SOCK -n gitorch tasks ls -q 2>/dev/null); do
			ctr -a $SOCK -n gitorch tasks kill -s SIGKILL "$t" 2>/dev/null || true
		done
		sleep 1
		for c in $(ctr -a $SOCK -n gitorch containers ls -q 2>/dev/null); do
			ctr -a $SOCK -n gitorch tasks delete -f "$c" >/dev/null 2>&1 || true
			ctr -a $SOCK -n gitorch containers delete "$c" >/dev/null 2>&1 || true
		done
	fi
	if [ -f $DEMO/containerd.pid ]; then
		kill "$(cat $DEMO/containerd.pid)" 2>/dev/null || true
		sleep 1
	fi
	ip link del gitorch0 2>/dev/null || true
	if [ -d $DEMO ]; then
		# Pod namespaces and volumes are mounts under the data directory.
		grep -o " $DEMO[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
		rm -rf $DEMO
	fi
}

if [ "${1:-}" = stop ]; then
	stop_demo
	echo "demo stopped and removed"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "scripts/demo.sh runs pods: run it as root" >&2
	exit 2
fi
missing=()
for p in containerd runc busybox-static git iproute2; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p bin
go build -o bin/gitorch ./cmd/gitorch
./bin/gitorch version

echo
echo "== gitorch validate examples/repo"
./bin/gitorch validate examples/repo

echo
echo "== gitorch plan examples/repo --nodes examples/nodes.yaml"
# plan exits 2 when there are changes, as terraform plan -detailed-exitcode.
NO_COLOR=1 ./bin/gitorch plan --nodes examples/nodes.yaml examples/repo | head -40 || true
echo "   ... (the plan goes on)"

echo
echo "== a node agent syncing examples/repo from this Git repository"
stop_demo
mkdir -p $DEMO/containerd
cat >$DEMO/containerd/config.toml <<EOF
version = 2
root = "$DEMO/containerd/root"
state = "$DEMO/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.t"
EOF
containerd --config $DEMO/containerd/config.toml >$DEMO/containerd.log 2>&1 &
echo $! >$DEMO/containerd.pid
for _ in $(seq 100); do [ -S $SOCK ] && break; sleep 0.1; done

go run ./scripts/busybox-image -o $DEMO/busybox.tar -ref gitorch.local/busybox:1
./bin/gitorch image import --containerd-address $SOCK $DEMO/busybox.tar

# The agent follows this clone's current branch (HEAD), directory
# examples/repo, and fetches every 10 seconds.
./bin/gitorch agent --repo "$PWD" --path examples/repo --poll-interval 10s \
	--containerd-address $SOCK --data-dir $DEMO/data --pod-cidr $CIDR \
	--api-address $API >$DEMO/agent.log 2>&1 &
echo $! >$DEMO/agent.pid
echo "agent started (log: $DEMO/agent.log)"

# Wait for the two hello pods to be ready.
for i in $(seq 120); do
	ready=$(./bin/gitorch status --api-address $API 2>/dev/null | grep -c '^default *hello-.* 1/1 *Running' || true)
	[ "$ready" -ge 2 ] && break
	[ "$i" -eq 120 ] && { echo "hello pods not ready after 2 minutes"; cat $DEMO/agent.log; exit 1; }
	sleep 1
done

echo
echo "== gitorch status"
./bin/gitorch status --api-address $API

pod=$(./bin/gitorch status --api-address $API | awk '$2 ~ /^hello-/ {print $2; exit}')
ip=$(./bin/gitorch status --api-address $API | awk '$2 ~ /^hello-/ {print $7; exit}')
echo
echo "== curl http://$ip:8080/   (pod $pod)"
curl -s --max-time 5 "http://$ip:8080/"

echo
echo "== gitorch logs $pod"
./bin/gitorch logs --api-address $API "$pod" | tail -5

echo
echo "The agent keeps running. Try: ./bin/gitorch status; edit examples/repo/hello/hello.yaml,"
echo "commit, and watch the pods change within 10 seconds. Stop everything: scripts/demo.sh stop"

#!/usr/bin/env bash
# gitorch's main job on one machine: build gitorch, check the example GitOps
# repository, show where its pods would run on a three-node cluster, then
# run that cluster: three agents, each in a network namespace of its own
# (a "host" of a LAN made by scripts/lib/lan.sh), gossiping with an
# encrypted key, all on one containerd of the demo's own (a containerd
# namespace per node), all following examples/repo of this Git clone. It
# waits until every pod is Running and ready, asks every node for the
# cluster's status, writes a guestbook entry through node 1's NodePort and
# reads it back through node 2's (from a fourth host of the LAN that runs
# no gitorch: from outside the cluster), then kills one node (kill -9 and
# its cable cut) and shows its pods running on the others.
#
#   scripts/demo.sh          run it (as root, on Debian 12); the cluster,
#                            less the killed node, keeps running afterwards
#   scripts/demo.sh stop     stop the agents, their pods and the containerd,
#                            and remove everything the demo made
#
# GITORCH_DEMO=NAME (letters and digits; default demo) runs a demo of its own
# beside others on the machine: directory /tmp/gitorch-NAME, network and
# containerd namespaces gtNAME-*. Give it to stop as well.
#
# Nothing is pulled from the internet but the Go modules: the demo builds
# every image its pods use and imports it into each node's containerd —
# busybox from Debian's busybox-static for hello, and the guestbook's
# frontend and key-value backend from examples/guestbook-app.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
. scripts/lib/lan.sh

name=${GITORCH_DEMO:-demo}
if [[ ! $name =~ ^[A-Za-z0-9]+$ ]]; then
	echo "GITORCH_DEMO=$name: use letters and digits" >&2
	exit 2
fi
DEMO=/tmp/gitorch-$name
SOCK=$DEMO/containerd/c.sock
LAN=gt$name # network namespaces gtdemo-br, gtdemo-1 ... gtdemo-4
export LAN_NET=10.77.0
NODES=3
CLIENT=$((NODES + 1)) # a host of the LAN that runs no gitorch
NS=gt$name # containerd namespaces gtdemo-n1 ... gtdemo-n3
G=./bin/gitorch

# on I CMD...: runs CMD in node I's network namespace.
on() { lan_exec $LAN "$@"; }
# status_of I [ARGS...]: `gitorch status` of node I's API, asked from node
# I (the LAN's addresses exist only inside its namespaces).
status_of() {
	local i=$1
	shift
	on "$i" $G status --server "http://$LAN_NET.$i:7480" --api-token-file $DEMO/api.token "$@"
}

stop_demo() {
	local i t c
	for i in $(seq $NODES); do
		if [ -f $DEMO/agent$i.pid ]; then
			kill "$(cat $DEMO/agent$i.pid)" 2>/dev/null || true
		fi
	done
	sleep 1
	if [ -S $SOCK ]; then
		for i in $(seq $NODES); do
			for t in $(ctr -a $SOCK -n $NS-n$i tasks ls -q 2>/dev/null); do
				ctr -a $SOCK -n $NS-n$i tasks kill -s SIGKILL "$t" 2>/dev/null || true
			done
		done
		sleep 1
		for i in $(seq $NODES); do
			for c in $(ctr -a $SOCK -n $NS-n$i containers ls -q 2>/dev/null); do
				ctr -a $SOCK -n $NS-n$i tasks delete -f "$c" >/dev/null 2>&1 || true
				ctr -a $SOCK -n $NS-n$i containers delete "$c" >/dev/null 2>&1 || true
			done
		done
	fi
	if [ -f $DEMO/containerd.pid ]; then
		kill "$(cat $DEMO/containerd.pid)" 2>/dev/null || true
		sleep 1
	fi
	lan_down $LAN || true # (lan.sh is written for shells without set -e)
	for i in $(seq $NODES); do
		# The tasks' runc state and cgroups are kept per containerd
		# namespace; rmdir removes a cgroup only when it is empty.
		rm -rf "/run/containerd/runc/$NS-n$i"
		find /sys/fs/cgroup -maxdepth 2 -type d -name "$NS-n$i" -exec rmdir {} + 2>/dev/null || true
	done
	if [ -d $DEMO ]; then
		# Pod namespaces and volumes are mounts under the data directories.
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
for p in containerd runc busybox-static git iproute2 util-linux curl; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p bin
go build -o bin/gitorch ./cmd/gitorch
$G version

echo
echo "== gitorch validate examples/repo"
$G validate examples/repo

echo
echo "== gitorch plan examples/repo --nodes examples/nodes.yaml"
# plan exits 2 when there are changes, as terraform plan -detailed-exitcode.
NO_COLOR=1 $G plan --nodes examples/nodes.yaml examples/repo >$DEMO.plan || true
head -40 $DEMO.plan
if [ "$(wc -l <$DEMO.plan)" -gt 41 ]; then
	echo "   ... (the plan goes on)"
	tail -1 $DEMO.plan
fi
# Every pod the plan places must run: the count the cluster is waited for.
PODS=$(sed -n 's/.* \([0-9][0-9]*\) pods placed.*/\1/p' $DEMO.plan)
rm -f $DEMO.plan
[ -n "$PODS" ] || { echo "cannot read the number of pods from the plan" >&2; exit 1; }

echo
echo "== a cluster of $NODES nodes syncing examples/repo from this Git repository"
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

# The images of every pod of examples/repo, into every node's containerd
# namespace (each node is a machine of its own: it has only what it was
# given).
mkdir -p $DEMO/images
go run ./scripts/busybox-image -o $DEMO/images/busybox.tar -ref gitorch.local/busybox:1
go run ./scripts/guestbook-images -o $DEMO/images
for i in $(seq $NODES); do
	for img in $DEMO/images/*.tar; do
		$G image import --containerd-address $SOCK --containerd-namespace $NS-n$i "$img" >/dev/null
	done
done
echo "imported $(ls $DEMO/images | tr '\n' ' ')into the containerd of each node"

# One gossip key and one API token for the whole cluster.
(umask 077 && $G gossip keygen >$DEMO/gossip.key && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >$DEMO/api.token)

lan_up $LAN $CLIENT
join=$(for i in $(seq $NODES); do printf '%s,' "$LAN_NET.$i"; done)
join=${join%,}
for i in $(seq $NODES); do
	# The agent follows this clone's current branch (HEAD), directory
	# examples/repo, and fetches every 10 seconds. nsenter execs it, so
	# $! is the agent.
	nsenter --net="$(lan_ns $LAN "$i")" -- $G agent --repo "$PWD" --path examples/repo --poll-interval 10s \
		--node-name n$i --advertise-address "$LAN_NET.$i" --join "$join" \
		--gossip-key-file $DEMO/gossip.key --pod-cidr "10.88.$i.0/24" \
		--api-address "$LAN_NET.$i:7480" --api-token-file $DEMO/api.token \
		--containerd-address $SOCK --containerd-namespace $NS-n$i \
		--data-dir $DEMO/n$i >$DEMO/agent$i.log 2>&1 &
	echo $! >$DEMO/agent$i.pid
	disown # the shell says nothing when a node is killed
	echo "node n$i: agent $(cat $DEMO/agent$i.pid) at $LAN_NET.$i (log: $DEMO/agent$i.log)"
done

# pods_ready I: how many pods node I sees Running and ready, and the names
# of the others. READY is n/n for the node's own pods, yes for other
# nodes' pods.
pods_ready() {
	{ status_of "$1" 2>/dev/null || true; } | awk '
		/^NAMESPACE /   { table = 1; next }
		table && NF == 0 { table = 0 }
		table {
			split($3, r, "/")
			if ($4 == "Running" && ($3 == "yes" || (r[1] == r[2] && r[1] > 0))) ready++
			else waiting = waiting " " $1 "/" $2 "(" $3 "," $4 ")"
		}
		END { printf "%d%s\n", ready, waiting }'
}

# Bounded: every pod of the repository Running and ready, as node 1 and
# node 3 see them, within 3 minutes.
echo
echo "== waiting for the $PODS pods of examples/repo to be Running and ready"
last=
start=$SECONDS
while :; do
	r1=$(pods_ready 1)
	r3=$(pods_ready 3)
	[ "${r1%% *}" -ge "$PODS" ] && [ "${r3%% *}" -ge "$PODS" ] && break
	if [ "${r1%% *}" != "$last" ]; then
		echo "   $(date +%T) n1 sees ${r1%% *}/$PODS ready"
		last=${r1%% *}
	fi
	if [ $((SECONDS - start)) -ge 180 ]; then
		echo "FAILED: pods not Running and ready after 3 minutes:${r1#* }" >&2
		status_of 1 >&2 || true
		tail -n 20 $DEMO/agent*.log >&2
		exit 1
	fi
	sleep 1
done
echo "   all $PODS pods Running and ready after $((SECONDS - start)) s"
echo
echo "== gitorch status nodes   (asked of n1)"
status_of 1 nodes
echo
echo "== gitorch status   (asked of n2: every node answers for the whole cluster)"
status_of 2

# The guestbook, from outside: a host of the LAN that runs no gitorch
# writes through node 1's NodePort and reads back through node 2's.
# NodePort 30001 is the frontend Service's, in examples/repo/guestbook.
entry="Hello from the gitorch demo at $(date +%T)" # no comma: the page splits entries on commas
echo
echo "== write: curl http://$LAN_NET.1:30001/guestbook.php?cmd=set&key=messages&value=...   (from host $LAN_NET.$CLIENT, outside the cluster)"
for i in $(seq 30); do
	out=$(on $CLIENT curl -sS --fail-with-body --max-time 5 -G "http://$LAN_NET.1:30001/guestbook.php" \
		--data-urlencode cmd=set --data-urlencode key=messages --data-urlencode "value=$entry" 2>&1) && break
	[ "$i" -eq 30 ] && { echo "FAILED: writing through node 1's NodePort 30001: $out" >&2; exit 1; }
	sleep 1
done
echo "$out"
echo
echo "== read: curl http://$LAN_NET.2:30001/guestbook.php?cmd=get&key=messages   (from host $LAN_NET.$CLIENT)"
# The frontend reads from a replica, which follows the master within
# moments: poll, bounded.
want=$(printf '{"data":"%s"}' "$entry")
for i in $(seq 30); do
	out=$(on $CLIENT curl -sS --fail-with-body --max-time 5 "http://$LAN_NET.2:30001/guestbook.php?cmd=get&key=messages" 2>&1) &&
		[ "$out" = "$want" ] && break
	[ "$i" -eq 30 ] && { echo "FAILED: reading back through node 2's NodePort 30001: got $out, want $want" >&2; exit 1; }
	sleep 1
done
echo "$out"
echo "the entry written through n1 was read back through n2"

pod=$(status_of 3 | awk '$2 ~ /^hello-/ {print $2; exit}')
ip=$(status_of 3 | awk '$2 ~ /^hello-/ {print $7; exit}')
node=$(status_of 3 | awk '$2 ~ /^hello-/ {print $8; exit}')
k=${node#n}
echo
echo "== curl http://$ip:8080/   (pod $pod on $node, from $node)"
on "$k" curl -s --max-time 5 "http://$ip:8080/"
echo
echo "== gitorch logs $pod   (asked of n3, which forwards to $node)"
on 3 $G logs --server "http://$LAN_NET.3:7480" --api-token-file $DEMO/api.token "$pod" | tail -3

echo
echo "== $node dies: kill -9 its agent and cut its cable"
kill -9 "$(cat $DEMO/agent$k.pid)"
lan_cut $LAN "$k"
rm $DEMO/agent$k.pid
killed=${EPOCHREALTIME/./}
other=$((k % NODES + 1))
for i in $(seq 120); do
	moved=$(status_of $other 2>/dev/null | awk -v dead="$node" '$2 ~ /^hello-/ && ($3 == "1/1" || $3 == "yes") && $4 == "Running" && $8 != dead' | wc -l)
	[ "$moved" -ge 2 ] && break
	[ "$i" -eq 120 ] && { echo "hello pods not back after 2 minutes"; tail -n 20 $DEMO/agent$other.log; exit 1; }
	sleep 0.5
done
ms=$(((${EPOCHREALTIME/./} - killed) / 1000))
echo "the hello pods run on the survivors $((ms / 1000)).$((ms % 1000 / 100)) s after the kill"
echo
echo "== gitorch status nodes   (asked of n$other)"
status_of $other nodes
echo
echo "== gitorch status   (asked of n$other)"
status_of $other

echo
echo "The cluster keeps running (the killed node's containers too: its machine"
echo "\"died\", containerd did not). Try, from a node's namespace:"
echo "  nsenter --net=$(lan_ns $LAN $other) $G status --server http://$LAN_NET.$other:7480 --api-token-file $DEMO/api.token"
echo "edit examples/repo/hello/hello.yaml, commit, and watch the pods change within 10 seconds."
echo "Stop everything: scripts/demo.sh stop"

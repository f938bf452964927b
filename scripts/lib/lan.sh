# shellcheck shell=bash
# A LAN of network namespaces for running several gitorch nodes on one
# machine, the shell twin of applytest.NewLAN: host namespaces NAME-1 ...
# NAME-N, each with an eth0 that is one end of a veth pair whose other end
# is a port of the bridge br0 in the namespace NAME-br. Nothing is added to
# the machine's own network, and the addresses exist only inside the LAN.
# Needs root, iproute2 and util-linux's nsenter.
#
#   . scripts/lib/lan.sh
#   lan_up demo 3                 # demo-br, demo-1..demo-3 at 10.77.0.1-3/24
#   lan_exec demo 1 gitorch agent --bind "$(lan_addr demo 1)" ...
#   lan_cut demo 2; lan_restore demo 2   # unplug / plug host 2's cable
#   lan_down demo                 # kills what runs in it, removes it all
#
# LAN_NET holds the first three bytes of the /24 (default 10.77.0); host I
# gets LAN_NET.I. NAME is letters, digits and underscores; a namespace is
# entered with nsenter --net=/var/run/netns/NAME-I (not `ip netns exec`,
# whose private mount namespace hides the pods' namespace bind mounts).

lan_check_name() {
	if [[ ! $1 =~ ^[A-Za-z0-9_]+$ ]]; then
		echo "lan: name '$1': use letters, digits and underscores" >&2
		return 2
	fi
}

# lan_up NAME N: makes the LAN NAME of N hosts.
lan_up() {
	local name=$1 n=$2 net=${LAN_NET:-10.77.0} i
	lan_check_name "$name" || return
	if [[ ! $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 250)); then
		echo "lan_up: $n hosts: want 1 to 250" >&2
		return 2
	fi
	if [ -e "/var/run/netns/$name-br" ]; then
		echo "lan_up: LAN $name exists (lan_down $name removes it)" >&2
		return 1
	fi
	ip netns add "$name-br" || return
	ip -n "$name-br" link set lo up &&
		ip -n "$name-br" link add br0 type bridge &&
		ip -n "$name-br" link set br0 up || return
	for ((i = 1; i <= n; i++)); do
		ip netns add "$name-$i" &&
			ip -n "$name-br" link add "p$i" type veth peer name eth0 netns "$name-$i" &&
			ip -n "$name-br" link set "p$i" master br0 up &&
			ip -n "$name-$i" link set lo up &&
			ip -n "$name-$i" addr add "$net.$i/24" dev eth0 &&
			ip -n "$name-$i" link set eth0 up || return
	done
}

# lan_hosts NAME: prints the host numbers of the LAN, one a line.
lan_hosts() {
	local f
	for f in /var/run/netns/"$1"-*; do
		f=${f##*/}
		f=${f#"$1"-}
		[[ $f =~ ^[0-9]+$ ]] && echo "$f"
	done | sort -n
}

# lan_down NAME: kills the processes in the LAN's namespaces and removes
# them (with them go the veths and the bridge). A LAN that is not there
# is no error.
lan_down() {
	local name=$1 i pids
	lan_check_name "$name" || return
	for i in $(lan_hosts "$name") br; do
		pids=$(ip netns pids "$name-$i" 2>/dev/null)
		if [ -n "$pids" ]; then
			# shellcheck disable=SC2086
			kill -KILL $pids 2>/dev/null
		fi
		ip netns del "$name-$i" 2>/dev/null
	done
	return 0
}

# lan_ns NAME I: prints the path of host I's network namespace.
lan_ns() { echo "/var/run/netns/$1-$2"; }

# lan_addr NAME I: prints host I's address, as its eth0 has it.
lan_addr() {
	ip -n "$1-$2" -4 -o addr show dev eth0 | awk '{split($4, a, "/"); print a[1]; exit}'
}

# lan_exec NAME I CMD [ARG...]: runs CMD in host I's network namespace.
lan_exec() {
	local name=$1 i=$2
	shift 2
	nsenter --net="/var/run/netns/$name-$i" -- "$@"
}

# lan_cut NAME I: takes host I off the LAN (its bridge port goes down).
lan_cut() { ip -n "$1-br" link set "p$2" down; }

# lan_restore NAME I: puts host I back on the LAN.
lan_restore() { ip -n "$1-br" link set "p$2" up; }

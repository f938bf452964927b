// Package apply carries out actions on the node: it runs pods as
// containers on containerd, gives them a network (network namespace,
// bridge, veth pair, IP from an on-disk allocator) and imports images.
//
// It decides nothing: what should run comes from pkg/plan, and the loop
// that calls apply lives in pkg/node. Everything apply does is observable
// again from containerd and the data directory, so that a restarted
// gitorch adopts the pods it finds instead of restarting them.
package apply

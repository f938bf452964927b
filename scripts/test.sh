#!/usr/bin/env bash
# Sets up a Debian machine for gitorch's tests (when run as root) and runs the
# whole suite: vet, then every package's tests, ending with go test's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the integration tests drive for real.
packages=(git gnupg openssh-client openssh-server iproute2 containerd runc nftables busybox-static docker-registry age)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "installing: ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
go version
go vet ./...
go test -count=1 -timeout 20m ./... 2>&1 | tee /tmp/gitorch-test.log

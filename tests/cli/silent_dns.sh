#!/bin/sh
# Run inside `unshare -nm` (a network and mount namespace of its own): loopback up, and
# /etc/resolv.conf, bind-mounted in this namespace only, aimed at 127.0.0.1:53, where a UDP
# socket takes every query and never answers. Then runs the command and returns its status.
set -e
ip link set lo up
conf=$(mktemp)
printf 'nameserver 127.0.0.1\noptions timeout:5 attempts:2\n' > "$conf"
mount --bind "$conf" /etc/resolv.conf
python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
time.sleep(30)' &
listener=$!
sleep 0.3
set +e
"$@"
code=$?
kill "$listener" 2>/dev/null
rm -f "$conf"
exit "$code"

#!/usr/bin/env bash
# Make sure the local Redis and Postgres answer; start them when they are down. Exit 1 with a clear
# message when one cannot be reached (the tests never skip for a missing service).
set -u

redis_up() { python3 - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=2); s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}
pg_up() { python3 -c "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=2)" 2>/dev/null; }

if ! redis_up; then
  echo "redis is down; starting it" >&2
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
fi
if ! pg_up; then
  echo "postgres is down; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
fi
for _ in $(seq 1 30); do
  if redis_up && pg_up; then exit 0; fi
  sleep 1
done
redis_up || echo "error: Redis is not reachable on 127.0.0.1:6379" >&2
pg_up || echo "error: Postgres is not reachable on 127.0.0.1:5432" >&2
exit 1

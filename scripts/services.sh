#!/usr/bin/env bash
# Make sure the test Redis and Postgres answer; start them when they are down and local. Exit 1 with
# a clear message when one cannot be reached (the tests never skip for a missing service).
# Where they are comes from the same variables the tests read (README, "Test services").
set -u

# host and port of each service: CAMPAIGNFLOW_TEST_* first, then the older TEST_* names, then defaults
read -r REDIS_HOST REDIS_PORT PG_HOST PG_PORT < <(python3 - <<'PY'
import os
from urllib.parse import urlsplit

def env(name, legacy, default):
    return os.environ.get(name, "").strip() or os.environ.get(legacy, "").strip() or default

pg = urlsplit(env("CAMPAIGNFLOW_TEST_DATABASE_URL", "TEST_DATABASE_URL",
                  "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
print(env("CAMPAIGNFLOW_TEST_REDIS_HOST", "TEST_REDIS_HOST", "127.0.0.1"),
      env("CAMPAIGNFLOW_TEST_REDIS_PORT", "TEST_REDIS_PORT", "6379"),
      pg.hostname or "127.0.0.1", pg.port or 5432)
PY
)
export REDIS_HOST REDIS_PORT PG_HOST PG_PORT

redis_up() { python3 - <<'PY'
import os, socket, sys
try:
    s = socket.create_connection((os.environ["REDIS_HOST"], int(os.environ["REDIS_PORT"])), timeout=2)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}
pg_up() {
  python3 -c "import os, socket; socket.create_connection((os.environ['PG_HOST'], int(os.environ['PG_PORT'])), timeout=2)" \
    2>/dev/null
}
is_local() { case "$1" in 127.0.0.1 | localhost | ::1) return 0 ;; *) return 1 ;; esac; }

if ! redis_up && is_local "$REDIS_HOST"; then
  echo "redis is down; starting it" >&2
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
fi
if ! pg_up && is_local "$PG_HOST"; then
  echo "postgres is down; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
fi
for _ in $(seq 1 30); do
  if redis_up && pg_up; then exit 0; fi
  sleep 1
done
redis_up || echo "error: Redis is not reachable on $REDIS_HOST:$REDIS_PORT (CAMPAIGNFLOW_TEST_REDIS_HOST/PORT)" >&2
pg_up || echo "error: Postgres is not reachable on $PG_HOST:$PG_PORT (CAMPAIGNFLOW_TEST_DATABASE_URL)" >&2
exit 1

# launch sealed-env shim (run by /bin/sh as the container's entrypoint).
# It loads the job's secret environment variables from a read-only file on a tmpfs bind mount, then execs the
# job's own entrypoint and command unchanged: same argv, same PID 1, same signals, same exit code, same working
# directory and user. The values never pass through an argument list, `docker inspect` or /var/lib/docker.
if [ ! -r /.launch/env ]; then
    echo "launch shim: cannot read /.launch/env as uid $(id -u 2>/dev/null || echo '?')" >&2
    exit 126
fi
. /.launch/env
exec "$@"

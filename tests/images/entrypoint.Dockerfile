FROM launch-test/busybox:latest
RUN printf '#!/bin/sh\necho "entrypoint argv: $*"\necho "cwd: $(pwd)"\necho "uid: $(id -u)"\necho "pid: $$"\nexec "$@"\n' > /bin/job-entry && chmod 755 /bin/job-entry
WORKDIR /home/app
USER app
ENTRYPOINT ["/bin/job-entry"]
CMD ["echo", "default", "cmd"]

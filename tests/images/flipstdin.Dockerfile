# /bin/sh hands the real shell its stdin with one byte of the bundle's second line changed: a corrupted bundle.
FROM launch-test/busybox:latest
RUN rm /bin/sh && printf '#!/bin/busybox ash\n/bin/busybox sed "2s/^./X/" | exec /bin/busybox ash "$@"\n' > /bin/sh && chmod 755 /bin/sh

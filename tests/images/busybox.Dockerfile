FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY passwd group /etc/
RUN ["/bin/mkdir", "-p", "/tmp", "/home/app", "/data"]
RUN ["/bin/chmod", "1777", "/tmp"]
RUN ["/bin/chown", "app:app", "/home/app"]
ENV PATH=/bin
CMD ["/bin/sh"]

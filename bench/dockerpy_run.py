"""The floor of any docker-py client for one job: `python3 bench/dockerpy_run.py VALUES.json [COMMAND...]`.

What `launch run --rm` does with the engine, done as plainly as docker-py allows: create a container with the 5 env
values in its Env and the 5 files put into it as a tar archive (`put_archive`, before the start), start it, wait
for it, remove it; exit with its exit code. No store, no template, no masking, no secret kept off the engine's
disk: a floor, not a peer (bench/run.py compares `launch run --rm` with it).
"""

import io
import json
import sys
import tarfile

import docker


def main() -> int:
    spec = json.loads(open(sys.argv[1]).read())
    command = sys.argv[2:] or ["true"]
    api = docker.from_env().api
    container = api.create_container(
        spec["image"],
        command,
        environment=spec["env"],
        labels=spec["labels"],
        host_config=api.create_host_config(network_mode="none"),
    )["Id"]
    try:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for path, value in spec["files"].items():
                data = value.encode()
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode = len(data), 0o400
                tar.addfile(info, io.BytesIO(data))
        api.put_archive(container, "/", archive.getvalue())
        api.start(container)
        return int(api.wait(container)["StatusCode"])
    finally:
        api.remove_container(container, force=True)


if __name__ == "__main__":
    sys.exit(main())

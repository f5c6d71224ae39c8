"""The floor of `launch ps -a` on the Docker SDK: `python3 bench/dockerpy_ps.py LABEL=VALUE`.

Lists every container (ended ones too) carrying the label, with its labels, and prints one line per container:
id, name, image, state, status and the labels as JSON. What any docker-py client listing jobs pays.
"""

import json
import sys

import docker


def main() -> int:
    api = docker.from_env().api
    for c in api.containers(all=True, filters={"label": sys.argv[1]}):
        name = (c.get("Names") or ["?"])[0].lstrip("/")
        sys.stdout.write(
            f"{c['Id'][:12]}  {name}  {c['Image']}  {c['State']}  {c['Status']}  {json.dumps(c['Labels'])}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

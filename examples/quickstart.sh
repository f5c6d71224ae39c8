#!/usr/bin/env bash
# From a fresh machine to a real job with secrets: set up, store two secrets (never typed on a command line),
# run the example, and show that nothing of them is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if ! launch secret show demo_token >/dev/null 2>&1; then
    # a random token through stdin: it never appears in shell history or in a process's argument list
    head -c 18 /dev/urandom | base64 | launch secret add demo_token --description "demo API token"
fi
if ! launch secret show demo_config >/dev/null 2>&1; then
    printf 'endpoint = "https://api.example"\nretries = 3\n' | launch secret add demo_config -d "demo config file"
fi
launch secret ls
launch run examples/hello-secret.yaml --rm

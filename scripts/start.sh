#!/bin/sh
# Start the service as `npx -y deno@2.9.6 task start` does, with Deno from npm, but with Deno in this shell's place
# (exec): a SIGTERM sent to this process alone (Docker's stop to PID 1, systemd with KillMode=process, `kill PID`)
# reaches the service, which drains and flushes its log. Through npx it would not: npm passes the signal to its `sh -c`
# child, which ends without passing it on, and the service is left running, or killed without its last flush.
#
# usage: sh scripts/start.sh   (the service's settings come from the environment; see .env.example)
set -eu
cd "$(dirname "$0")/.."
deno=$(npx -y -p deno@2.9.6 -c 'command -v deno')
exec "$deno" task start

#!/bin/sh
# One-shot initialiser for docker-compose.yml: creates validator keys, a funded faucet and genesis.json in
# /shared on the first run, and leaves an existing network untouched afterwards.
set -eu
ML="node /app/bin/meshledger.js"
if [ -f /shared/genesis.json ]; then echo "network already initialised"; exit 0; fi
mkdir -p /shared/keys
for i in 0 1 2 3; do $ML keygen --out /shared/keys/validator-$i.json >/dev/null; done
$ML keygen --out /shared/keys/faucet.json >/dev/null
FAUCET=$(node -p 'require("/shared/keys/faucet.json").address')
$ML genesis --validators /shared/keys/validator-0.json,/shared/keys/validator-1.json,/shared/keys/validator-2.json,/shared/keys/validator-3.json \
  --alloc "$FAUCET=1000000000000000" --slot-ms 1000 --chain-id meshledger-compose --out /shared/genesis.json
chmod -R a+rX /shared
echo "initialised: faucet $FAUCET"

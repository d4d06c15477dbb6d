#!/usr/bin/env bash
# Builds the two base images the Dockerfile starts FROM, using only what this machine already has or can get
# from Debian's archive (no container registry is needed):
#
#   meshledger-base:bookworm         runtime: this machine's Node.js binary and the shared libraries it loads
#                                    (as ldd reports them), Debian's busybox-static for /bin/sh and basic tools,
#                                    and a `meshledger` user (uid/gid 10001). No package manager, no npm.
#   meshledger-base:bookworm-build   the runtime image plus this machine's npm, with the npm registry and CA
#                                    settings this machine's npm uses (so `npm ci` works behind the same proxy).
#
# Both carry the label meshledger.base.hash: a hash of every input (the node binary, its libraries, the busybox
# package's archive checksum, npm's version and settings, and this script). When images with that label exist
# they are reused, so the script is cheap to call before every build; --force rebuilds them.
#
# Needs: bash, docker (a running engine), ldd, tar, sha256sum, apt-get/apt-cache and dpkg-deb (Debian or Ubuntu).
# The node binary must be a glibc build for this machine's architecture (Debian's, NodeSource's or nodejs.org's).
# Usage: scripts/docker/build-base.sh [--force]          DOCKER=/path/to/docker overrides the client.
set -euo pipefail

DOCKER=${DOCKER:-docker}
RUNTIME_TAG=meshledger-base:bookworm
BUILD_TAG=meshledger-base:bookworm-build
APP_UID=10001
force=0
[ "${1:-}" = "--force" ] && force=1

say() { echo "build-base: $*" >&2; }
die() { say "$*"; exit 1; }

node_bin=$(node -p 'process.execPath') || die "node is not on PATH"
node_version=$(node --version)
npm_cli=$(readlink -f "$(command -v npm)") || die "npm is not on PATH"
npm_dir=$(dirname "$(dirname "$npm_cli")")                      # …/node_modules/npm
[ -f "$npm_dir/package.json" ] || die "cannot find npm's folder from $npm_cli"
npm_version=$(node -p "require('$npm_dir/package.json').version")
npm_registry=$(npm config get registry)
npm_cafile=$(npm config get cafile)
[ "$npm_cafile" = "null" ] || [ "$npm_cafile" = "undefined" ] && npm_cafile=""

# The libraries node loads: every absolute path in ldd's output (the dynamic loader included).
mapfile -t libs < <(ldd "$node_bin" 2>/dev/null | grep -o '/[^ )]*' | sort -u || true)
[ "${#libs[@]}" -gt 0 ] || say "ldd lists no libraries for $node_bin; assuming a static binary"

bb_sha=$(apt-cache show --no-all-versions busybox-static 2>/dev/null | sed -n 's/^SHA256: //p' | head -n1)
if [ -z "$bb_sha" ]; then
  say "apt has no index for busybox-static; running apt-get update"
  apt-get update -q >/dev/null
  bb_sha=$(apt-cache show --no-all-versions busybox-static | sed -n 's/^SHA256: //p' | head -n1)
fi
[ -n "$bb_sha" ] || die "busybox-static is not in the apt index"

hash=$({
  sha256sum "$0" "$node_bin" "${libs[@]}" | cut -d' ' -f1
  echo "busybox-static $bb_sha npm $npm_version $npm_registry"
  [ -n "$npm_cafile" ] && sha256sum "$npm_cafile" | cut -d' ' -f1
  true
} | sha256sum | cut -c1-16)

label_of() { "$DOCKER" image inspect -f '{{ index .Config.Labels "meshledger.base.hash" }}' "$1" 2>/dev/null || true; }
if [ "$force" = 0 ] && [ "$(label_of "$RUNTIME_TAG")" = "$hash" ] && [ "$(label_of "$BUILD_TAG")" = "$hash" ]; then
  say "reusing $RUNTIME_TAG and $BUILD_TAG (inputs hash $hash)"
  echo "$hash"
  exit 0
fi

started=$(date +%s)
old_ids=$("$DOCKER" image inspect -f '{{ .Id }}' "$RUNTIME_TAG" "$BUILD_TAG" 2>/dev/null || true)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root"/{bin,usr/bin,usr/local/bin,etc,tmp,root,home/meshledger}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

cp "$node_bin" "$root/usr/local/bin/node"
for lib in "${libs[@]}"; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"                                      # the file itself, not a symlink to it
done

say "fetching busybox-static from Debian's archive"
(cd "$work" && apt-get download -q busybox-static >/dev/null 2>&1) || die "apt-get download busybox-static failed"
deb=$(ls "$work"/busybox-static_*.deb)
[ "$(sha256sum "$deb" | cut -d' ' -f1)" = "$bb_sha" ] || die "busybox-static does not match the archive's checksum"
dpkg-deb -x "$deb" "$work/bb"
cp "$work/bb/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
ln -s ../../bin/busybox "$root/usr/bin/env"                   # for `#!/usr/bin/env node` scripts

cat >"$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
meshledger:x:$APP_UID:$APP_UID:meshledger:/home/meshledger:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<GROUP
root:x:0:
meshledger:x:$APP_UID:
nogroup:x:65534:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"

bb_version=$(dpkg-deb -f "$deb" Version)
labels=(--change "LABEL meshledger.base.hash=$hash"
        --change "LABEL meshledger.base.node=$node_version"
        --change "LABEL meshledger.base.busybox=$bb_version")
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" .
"$DOCKER" import "${labels[@]}" \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'CMD ["/bin/sh"]' \
  "$work/rootfs.tar" "$RUNTIME_TAG" >/dev/null
"$DOCKER" run --rm --network none "$RUNTIME_TAG" node -e 'process.exit(0)' \
  || die "node does not start inside $RUNTIME_TAG"

# The build image: npm on top of the runtime image, set up as this machine's npm is.
ctx="$work/build"
mkdir -p "$ctx/etc"
cp -a "$npm_dir" "$ctx/npm"
{
  echo "registry=$npm_registry"
  [ -n "$npm_cafile" ] && echo "cafile=/usr/local/etc/npm-ca.crt"
  echo "fund=false"
  echo "audit=false"
  echo "update-notifier=false"
} >"$ctx/etc/npmrc"
if [ -n "$npm_cafile" ]; then cp "$npm_cafile" "$ctx/etc/npm-ca.crt"; else : >"$ctx/etc/npm-ca.crt"; fi
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $RUNTIME_TAG
COPY npm /usr/local/lib/node_modules/npm
COPY etc/ /usr/local/etc/
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && npm --version >/dev/null
LABEL meshledger.base.hash=$hash meshledger.base.npm=$npm_version
DOCKERFILE
"$DOCKER" build --network none -t "$BUILD_TAG" "$ctx" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; die "building $BUILD_TAG failed"; }

# The images these tags pointed to before are replaced; drop them unless something still uses them.
for old in $old_ids; do "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; done

size=$("$DOCKER" image inspect -f '{{ .Size }}' "$RUNTIME_TAG")
say "built $RUNTIME_TAG ($((size / 1000000)) MB, node $node_version, busybox $bb_version) and $BUILD_TAG (npm $npm_version) in $(( $(date +%s) - started ))s"
echo "$hash"

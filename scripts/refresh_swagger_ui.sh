#!/usr/bin/env bash
# Refresh the vendored Swagger UI (served by the API at /docs, so the page works offline).
#   bash scripts/refresh_swagger_ui.sh [VERSION]     default: the latest 5.x from npm
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-5}
DEST=app/api/static/swagger-ui
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@${VERSION}" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
mkdir -p "$DEST"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png \
    LICENSE NOTICE; do
    cp "$work/package/$f" "$DEST/$f"
done
node -p "require('$work/package/package.json').version" > "$DEST/VERSION"
echo "Swagger UI $(cat "$DEST/VERSION") vendored into $DEST"

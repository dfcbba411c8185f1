#!/usr/bin/env bash
# Chromium for the browser tests of the query service, from the Debian package.
#
# usage: chromium.sh install
#
# The tests start Chromium themselves (headless, one run per screenshot), so there is nothing to
# start or stop here; `install` only makes sure /usr/bin/chromium exists.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
svc_init chromium

case "${1:-}" in
    install)
        if command -v chromium >/dev/null; then
            svc_log "already installed: $(command -v chromium)"
        else
            svc_apt_install chromium
        fi
        ;;
    *)
        echo "usage: $0 install" >&2
        exit 2
        ;;
esac

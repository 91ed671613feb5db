#!/usr/bin/env bash
# Debian packages the tests use as real peers, plus a private syslog-ng (it conflicts with
# rsyslog as a system install, so it is unpacked under .tools/ and run from there).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need=()
command -v rsyslogd >/dev/null || need+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -n "$(ls /usr/lib/*/rsyslog/lmnsd_gtls.so 2>/dev/null)" ] || need+=(rsyslog-gnutls)
[ -n "$(ls /usr/lib/*/rsyslog/omrelp.so 2>/dev/null)" ] || need+=(rsyslog-relp)
[ -n "$(ls /usr/lib/*/rsyslog/omelasticsearch.so 2>/dev/null)" ] || need+=(rsyslog-elasticsearch)
command -v logger >/dev/null || need+=(bsdutils)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)  # the console's browser tests (Playwright drives it)
command -v pdftoppm >/dev/null || need+=(poppler-utils)  # report tests look at the rendered PDF pages
[ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || need+=(postgresql)  # state tests run on PostgreSQL too (private cluster)
# the real clients of the journald and auditd receivers (issue 14)
command -v systemd-journal-upload >/dev/null || [ -x /lib/systemd/systemd-journal-upload ] || need+=(systemd-journal-remote)
[ -x /sbin/audisp-remote ] || [ -x /usr/sbin/audisp-remote ] || need+=(audispd-plugins)
# a real Active Directory DC for response actions and enrichment (issue 17; tests/ad/samba_dc.py)
command -v samba-tool >/dev/null || need+=(samba)
command -v ip >/dev/null || need+=(iproute2)
# WeasyPrint (PDF reports) needs Pango
for pkg in libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# libraries the private syslog-ng links against (no conflict with rsyslog)
for pkg in libivykis0 libpcre3 libnet1 libjson-c5 libwrap0 libcurl4; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

SNG=.tools/syslog-ng
if [ ! -x "$SNG/usr/sbin/syslog-ng" ]; then
  echo "unpacking a private syslog-ng into $SNG"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq syslog-ng-core syslog-ng-mod-http syslog-ng-scl >/dev/null 2>&1) || {
    $SUDO apt-get update -qq && (cd "$tmp" && apt-get download -qq syslog-ng-core syslog-ng-mod-http syslog-ng-scl); }
  mkdir -p "$SNG"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$SNG"; done
  rm -rf "$tmp"
fi
echo "system dependencies ready"

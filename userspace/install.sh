#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Install (or --uninstall) the zero-configuration pieces: the kheaders-mount
# command, the systemd unit that runs it at boot, and the udev rule that runs
# it when /dev/kheaders0 appears. Says what it does; running it twice is
# harmless.
#
#   userspace/install.sh [--prefix /usr/local] [--uninstall]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local uninstall=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: must be run as root" >&2; exit 1; }
sbin=$prefix/sbin
unitdir=/etc/systemd/system
rulesdir=/etc/udev/rules.d
systemd_up() { [ -d /run/systemd/system ]; }

if [ -n "$uninstall" ]; then
    if systemd_up; then
        echo "systemctl disable --now kheaders.service"
        systemctl disable --now kheaders.service 2>/dev/null || true
    fi
    for f in "$sbin/kheaders-mount" "$unitdir/kheaders.service" "$rulesdir/60-kheaders.rules"; do
        [ -e "$f" ] && { echo "removing $f"; rm -f "$f"; }
    done
    systemd_up && systemctl daemon-reload
    exit 0
fi

echo "installing $sbin/kheaders-mount"
install -D -m 0755 "$here/kheaders-mount" "$sbin/kheaders-mount"
echo "installing $unitdir/kheaders.service"
mkdir -p "$unitdir"
sed "s|@SBINDIR@|$sbin|g" "$here/kheaders.service" >"$unitdir/kheaders.service"
echo "installing $rulesdir/60-kheaders.rules"
install -D -m 0644 "$here/60-kheaders.rules" "$rulesdir/60-kheaders.rules"
if systemd_up; then
    echo "systemctl daemon-reload; systemctl enable --now kheaders.service"
    systemctl daemon-reload
    systemctl enable --now kheaders.service
    if command -v udevadm >/dev/null; then udevadm control --reload || true; fi
else
    echo "systemd is not running: start $sbin/kheaders-mount from your init instead"
fi

#!/bin/sh
# The global layer's hardening, run as root inside the booted vendor image. Each change is one
# that the scan's baseline (src/scan/baseline.toml) or the example's policy checks.
set -eu

# sshd: the drop-in (uploaded to /tmp by Packer's file provisioner), then sshd's own check.
install -m 0644 -o root -g root /tmp/50-hardening.conf /etc/ssh/sshd_config.d/50-hardening.conf
sshd -t

# Account files: shadow readable by root and the shadow group only, passwd writable by root only.
chown root:shadow /etc/shadow /etc/gshadow
chmod 0640 /etc/shadow /etc/gshadow
chown root:root /etc/passwd /etc/group
chmod 0644 /etc/passwd /etc/group
for f in /etc/shadow- /etc/gshadow-; do
  if [ -e "$f" ]; then chown root:shadow "$f"; chmod 0600 "$f"; fi
done
# No account may log in without a password.
if awk -F: '$2 == "" { print $1; bad = 1 } END { exit !bad }' /etc/shadow; then
  echo "accounts above have an empty password" >&2
  exit 1
fi

# No telnet or rsh servers (nor clients that send passwords in clear).
for p in telnetd inetutils-telnetd telnetd-ssl rsh-server rsh-redone-server rsh-client telnet; do
  if dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^.i'; then
    dpkg --purge "$p"
  fi
done

# A umask that keeps new files from other users: for logins (login.defs, read by pam_umask and
# useradd) and for shells.
sed -i -E 's/^UMASK[[:space:]]+[0-9]+/UMASK\t\t027/' /etc/login.defs
grep -Eq '^UMASK[[:space:]]+027$' /etc/login.defs
printf '# imagepipe global/debian-12: new files are not readable by other users.\numask 027\n' > /etc/profile.d/umask.sh

# A login banner on the console and over SSH, saying nothing about the system.
install -m 0644 -o root -g root /tmp/issue.net /etc/issue.net
{ cat /tmp/issue.net; echo; } > /etc/issue
: > /etc/motd

# Nothing under the system directories may be writable by everyone.
found=$(find /etc /usr /boot -xdev -type f -perm -0002 -print)
if [ -n "$found" ]; then
  echo "world-writable files: $found" >&2
  exit 1
fi

#!/bin/sh
# rootfs.sh BINARY DEST: lay out the runtime image's files under DEST: the binary at
# /usr/local/bin, every shared library it links (as ldd resolves them, at the same paths),
# and the loader configuration NVIDIA's container hook needs to register its libraries.
set -eu
bin=$1
dest=$2
mkdir -p "$dest/usr/local/bin" "$dest/etc/ld.so.conf.d" "$dest/tmp"
cp "$bin" "$dest/usr/local/bin/metrics-collector"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | while read -r lib; do
    mkdir -p "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
done
[ -f /etc/ld.so.conf ] && cp /etc/ld.so.conf "$dest/etc/" || echo 'include /etc/ld.so.conf.d/*.conf' > "$dest/etc/ld.so.conf"
cp /etc/ld.so.conf.d/*.conf "$dest/etc/ld.so.conf.d/" 2>/dev/null || true
chmod 1777 "$dest/tmp"

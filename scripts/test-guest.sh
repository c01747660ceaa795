#!/usr/bin/env bash
# Build the tiny test guest from Debian's packages, cached between runs:
#   vmlinuz      Debian's distribution kernel (not installed on this host)
#   initrd.img   busybox + the init in scripts/test-guest/init + the modules it needs
#   disk.raw     a whole-disk image booting the same kernel and initramfs through the
#                BIOS (syslinux on a FAT file system); disk.qcow2 the same as qcow2
#   manifest.json  versions and sha256 of each file
# Prints the directory holding them as its last line. Rebuilds only when the script,
# the init or a package version changes (the key of the cache directory).
#
#   scripts/test-guest.sh [CACHE_ROOT]   (default /var/cache/ironbark/test-guest)
source "$(dirname "$0")/lib.sh"
need_root

CACHE_ROOT="${1:-/var/cache/ironbark/test-guest}"
MODULES=(virtio_pci virtio_blk virtio_net ata_piix sr_mod isofs button evdev)

apt_install kmod cpio syslinux syslinux-common mtools dosfstools qemu-utils xorriso \
    apt-utils
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then apt-get update -q; fi

kernel_pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)
kernel_version=${kernel_pkg#linux-image-}
kernel_pkg_version=$(apt-cache policy "$kernel_pkg" | sed -n 's/^ *Candidate: //p')
busybox_version=$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')
key=$(cat "$0" "$REPO/scripts/test-guest/init" \
      <(echo "$kernel_pkg $kernel_pkg_version busybox-static $busybox_version ${MODULES[*]}") \
      | sha256sum | cut -c1-16)
out="$CACHE_ROOT/$key"
if [ -f "$out/manifest.json" ]; then
    echo "$out"
    exit 0
fi

log "building the test guest ($kernel_pkg, busybox $busybox_version) in $out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
cd "$work"
# apt-get download drops privileges to _apt, which cannot write into mktemp's 0700
# directory: give it a directory of its own.
mkdir debs && chown _apt debs 2>/dev/null || true
(cd debs && apt-get download -q "$kernel_pkg" busybox-static >/dev/null)
dpkg-deb -x debs/"${kernel_pkg}"_*.deb kernel
dpkg-deb -x debs/busybox-static_*.deb busybox

# The initramfs: busybox, the init, and the modules with their dependencies in load order.
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,etc,config,lib/modules}
cp busybox/bin/busybox "$root/bin/busybox"
cp "$REPO/scripts/test-guest/init" "$root/init"
chmod 0755 "$root/init" "$root/bin/busybox"
depmod -b kernel "$kernel_version"
moddir="kernel/lib/modules/$kernel_version"
for module in "${MODULES[@]}"; do
    modprobe -d kernel -S "$kernel_version" --show-depends "$module" \
        | sed -n "s|^insmod $work/$moddir/||p" | sed 's/ *$//'
done | awk '!seen[$0]++' > "$root/etc/modules.order"
while read -r rel; do
    mkdir -p "$root/lib/modules/$(dirname "$rel")"
    cp "$moddir/$rel" "$root/lib/modules/$rel"
done < "$root/etc/modules.order"

mkdir -p "$out.tmp"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out.tmp/initrd.img"
cp "kernel/boot/vmlinuz-$kernel_version" "$out.tmp/vmlinuz"

# The whole-disk image: a FAT file system with syslinux in its boot sector (a
# "superfloppy": SeaBIOS boots its first sector), no loop mount needed.
size_kib=$(( ( $(stat -c %s "$out.tmp/vmlinuz") + $(stat -c %s "$out.tmp/initrd.img") ) / 1024 + 2048 ))
truncate -s "${size_kib}K" "$out.tmp/disk.raw"
mkfs.fat -n IRONBARK "$out.tmp/disk.raw" >/dev/null
printf 'DEFAULT guest\nTIMEOUT 0\nPROMPT 0\nLABEL guest\n  KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND console=ttyS0 quiet\n' > syslinux.cfg
mcopy -i "$out.tmp/disk.raw" "$out.tmp/vmlinuz" "$out.tmp/initrd.img" syslinux.cfg ::/
syslinux --install "$out.tmp/disk.raw"
qemu-img convert -f raw -O qcow2 "$out.tmp/disk.raw" "$out.tmp/disk.qcow2"

sha() { sha256sum "$out.tmp/$1" | cut -d' ' -f1; }
cat > "$out.tmp/manifest.json" <<EOF
{
  "kernel_package": "$kernel_pkg",
  "kernel_package_version": "$kernel_pkg_version",
  "kernel_version": "$kernel_version",
  "busybox_version": "$busybox_version",
  "modules": "$(tr '\n' ' ' < "$root/etc/modules.order" | sed 's/ $//')",
  "sha256": {
    "vmlinuz": "$(sha vmlinuz)",
    "initrd.img": "$(sha initrd.img)",
    "disk.raw": "$(sha disk.raw)",
    "disk.qcow2": "$(sha disk.qcow2)"
  }
}
EOF
rm -rf "$out"
mv "$out.tmp" "$out"
log "test guest: $(du -sh "$out/initrd.img" | cut -f1) initramfs, $(du -sh "$out/vmlinuz" | cut -f1) kernel"
echo "$out"

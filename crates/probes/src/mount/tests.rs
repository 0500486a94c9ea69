use super::*;

/// A desktop's table (Ubuntu 22.04 with a separate /data and a snap), as the kernel
/// prints it.
const DESKTOP: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
31 28 259:1 / /boot/efi rw,relatime shared:30 - vfat /dev/nvme0n1p1 rw,fmask=0077
33 28 8:1 / /data rw,relatime shared:31 - xfs /dev/sda1 rw,attr2,inode64,noquota
35 28 8:17 / /media/usb\\040stick rw,relatime shared:33 - exfat /dev/sdb1 rw
120 28 7:3 / /snap/core20/2318 ro,nodev,relatime shared:65 - squashfs /dev/loop3 ro
";

fn found(path: &str) -> Mount {
    find(DESKTOP, Path::new(path)).unwrap()
}

#[test]
fn the_root_filesystem_holds_what_no_other_mount_does() {
    let m = found("/");
    assert_eq!(
        (m.mountpoint.as_str(), m.device.as_str(), m.fstype.as_str()),
        ("/", "/dev/nvme0n1p2", "ext4")
    );
    assert_eq!(found("/home/user").mountpoint, "/");
    // A name that merely starts like a mount point is not inside it.
    assert_eq!(found("/database").mountpoint, "/");
}

#[test]
fn the_deepest_mount_wins() {
    assert_eq!(found("/data").device, "/dev/sda1");
    assert_eq!(found("/data/models/x").fstype, "xfs");
    assert_eq!(found("/boot/efi/EFI").fstype, "vfat");
}

#[test]
fn escaped_characters_are_decoded() {
    let m = found("/media/usb stick/photos");
    assert_eq!(m.mountpoint, "/media/usb stick");
    assert_eq!(m.device, "/dev/sdb1");
}

#[test]
fn a_mount_stacked_on_top_wins_over_the_one_below() {
    // A container's table: an overlay root, then a bind mount over /etc/hosts and a
    // second mount stacked on /data.
    let table = "\
600 500 0:52 / / rw,relatime master:300 - overlay overlay rw,lowerdir=/l,upperdir=/u
601 600 0:54 / /data rw,relatime - ext4 /dev/sdc1 rw
602 601 0:55 / /data rw,relatime - tmpfs tmpfs rw
603 600 259:2 /var/lib/docker/containers/x/hosts /etc/hosts rw - ext4 /dev/nvme0n1p2 rw
";
    assert_eq!(find(table, Path::new("/")).unwrap().fstype, "overlay");
    assert_eq!(find(table, Path::new("/data/x")).unwrap().fstype, "tmpfs");
    assert_eq!(
        find(table, Path::new("/etc/hosts")).unwrap().device,
        "/dev/nvme0n1p2"
    );
}

#[test]
fn optional_fields_of_any_number_are_skipped() {
    let table = "40 28 0:40 / /srv rw shared:2 master:5 propagate_from:3 - nfs4 nas:/export rw\n";
    let m = find(table, Path::new("/srv/a")).unwrap();
    assert_eq!(
        (m.device.as_str(), m.fstype.as_str()),
        ("nas:/export", "nfs4")
    );
}

#[test]
fn malformed_lines_are_ignored_and_no_match_is_none() {
    let table = "garbage\n1 2 3\n33 28 8:1 / /data rw - xfs /dev/sda1 rw\n";
    assert_eq!(find(table, Path::new("/data")).unwrap().device, "/dev/sda1");
    assert_eq!(find(table, Path::new("/other")), None);
}

#[test]
fn this_hosts_table_names_the_root_filesystem() {
    let m = mount_of(&Roots::default(), Path::new("/")).unwrap();
    assert_eq!(m.mountpoint, "/");
    assert!(!m.fstype.is_empty() && !m.device.is_empty(), "{m:?}");
}

#[test]
fn a_missing_procfs_is_an_error_naming_the_table() {
    let roots = Roots {
        procfs: "/nonexistent-procfs".into(),
        ..Roots::default()
    };
    let err = crate::Unavailable::from(mount_of(&roots, Path::new("/")).unwrap_err());
    assert!(err.reason().contains("/nonexistent-procfs/"), "{err}");
}

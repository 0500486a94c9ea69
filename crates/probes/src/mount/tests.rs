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

/// A mount point the kernel writes with bytes that are not UTF-8 (it escapes only space,
/// tab, newline and backslash) made the whole table unreadable: no mount found at all.
#[test]
fn a_mount_point_that_is_not_utf8_leaves_the_rest_of_the_table_readable() {
    let dir = scratch_dir("mount-latin1");
    std::fs::create_dir_all(dir.join("self")).unwrap();
    let mut table = b"28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n".to_vec();
    table.extend_from_slice(b"40 28 8:1 / /media/caf\xe9 rw - vfat /dev/sdb1 rw\n");
    table.extend_from_slice(b"41 28 8:2 / /data rw - xfs /dev/sda1 rw\n");
    std::fs::write(dir.join("self/mountinfo"), table).unwrap();
    let roots = Roots {
        procfs: dir.clone(),
        ..Roots::default()
    };
    let m = mount_of(&roots, Path::new("/data/x")).unwrap();
    assert_eq!((m.device.as_str(), m.fstype.as_str()), ("/dev/sda1", "xfs"));
    assert_eq!(mount_of(&roots, Path::new("/")).unwrap().fstype, "ext4");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("probes-{name}-{}", std::process::id()))
}

// ---- Property tests: the mountinfo parser over any input -------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// The kernel's escaping of a mountinfo field (`mangle` in fs/proc_namespace.c).
    fn escape(field: &str) -> String {
        let mut out = String::new();
        for c in field.chars() {
            match c {
                ' ' => out.push_str("\\040"),
                '\t' => out.push_str("\\011"),
                '\n' => out.push_str("\\012"),
                '\\' => out.push_str("\\134"),
                c => out.push(c),
            }
        }
        out
    }

    /// A path component with the characters the kernel must escape, and others.
    fn component() -> impl Strategy<Value = String> {
        "[a-c \t\n\\\\é#-]{1,5}".prop_filter("not . or ..", |c| c != "." && c != "..")
    }

    fn mountpoint() -> impl Strategy<Value = String> {
        prop::collection::vec(component(), 0..4).prop_map(|c| format!("/{}", c.join("/")))
    }

    /// One mountinfo line for `m`, with `optional` fields before the `-`.
    fn line(id: u32, m: &Mount, optional: &[String]) -> String {
        let mut fields = vec![
            id.to_string(),
            "1".to_owned(),
            "8:1".to_owned(),
            "/".to_owned(),
            escape(&m.mountpoint),
            "rw,relatime".to_owned(),
        ];
        fields.extend(optional.iter().cloned());
        fields.extend([
            "-".to_owned(),
            escape(&m.fstype),
            escape(&m.device),
            "rw".to_owned(),
        ]);
        fields.join(" ")
    }

    fn mount() -> impl Strategy<Value = Mount> {
        (mountpoint(), "[a-z0-9/: \\\\é._-]{1,12}", "[a-z0-9. ]{1,8}").prop_map(
            |(mountpoint, device, fstype)| Mount {
                mountpoint,
                device,
                fstype,
            },
        )
    }

    fn optional_fields() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("(shared|master|propagate_from):[0-9]{1,3}|unbindable", 0..4)
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn no_table_and_no_path_make_the_parser_panic(table in any::<String>(), path in any::<String>()) {
            let _ = find(&table, Path::new(&path));
        }

        #[test]
        fn no_near_valid_line_makes_the_parser_panic(
            fields in prop::collection::vec("[0-9:/a-z\\\\-]{0,6}|\\\\[0-9]{0,4}|-", 0..14),
        ) {
            let _ = find(&fields.join(" "), Path::new("/a/b"));
        }

        #[test]
        fn a_line_the_kernel_writes_reads_back_as_the_mount_it_describes(
            m in mount(),
            optional in optional_fields(),
            crlf in any::<bool>(),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let table = format!("{}{end}", line(7, &m, &optional));
            prop_assert_eq!(find(&table, Path::new(&m.mountpoint)), Some(m), "{:?}", table);
        }

        #[test]
        fn the_mount_found_is_the_deepest_that_holds_the_path_the_last_of_equals(
            mounts in prop::collection::vec(mount(), 1..8),
            path in mountpoint(),
            with_root in any::<bool>(),
        ) {
            let mut all = mounts.clone();
            if with_root {
                all.insert(0, Mount { mountpoint: "/".into(), device: "root".into(), fstype: "ext4".into() });
            }
            let table: String = all
                .iter()
                .enumerate()
                .map(|(i, m)| line(i as u32 + 20, m, &[]) + "\n")
                .collect();
            let components = |p: &str| Path::new(p).components().map(|c| c.as_os_str().to_owned()).collect::<Vec<_>>();
            let wanted = components(&path);
            let holding: Vec<&Mount> = all.iter().filter(|m| wanted.starts_with(&components(&m.mountpoint))).collect();
            let deepest = holding.iter().map(|m| components(&m.mountpoint).len()).max();
            let expected = holding
                .iter()
                .rev()
                .find(|m| Some(components(&m.mountpoint).len()) == deepest)
                .map(|m| (*m).clone());
            prop_assert_eq!(find(&table, Path::new(&path)), expected.clone(), "{:?} in {:?}", path, table);
            if with_root {
                prop_assert!(expected.is_some(), "/ holds every path");
            }
        }
    }
}

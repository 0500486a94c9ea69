use super::*;

#[test]
fn df_semantics_on_an_ext4_with_reserved_blocks() {
    // statvfs of a 100 GiB ext4 with 5 % reserved: 4 KiB blocks.
    let blocks = 26_214_400;
    let bfree = 13_107_200; // half used
    let bavail = bfree - 1_310_720; // reserved blocks are not available
    let d = DiskUsage::from_blocks(4096, blocks, bfree, bavail);
    assert_eq!(d.total_bytes, 107_374_182_400);
    assert_eq!(d.used_bytes, 53_687_091_200);
    assert_eq!(d.free_bytes, bavail * 4096);
    // df prints 53 % (used / (used + avail)), not 50 % (used / total).
    assert_eq!(crate::round1(d.percent().unwrap()), 52.6);
}

#[test]
fn a_filesystem_without_blocks_has_no_percent() {
    assert_eq!(DiskUsage::from_blocks(4096, 0, 0, 0).percent(), None);
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let err = usage(Path::new("/no/such/mount")).unwrap_err();
    let text = crate::Unavailable::from(err).to_string();
    assert!(text.contains("/no/such/mount"), "{text}");
}

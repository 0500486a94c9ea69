use super::*;

#[test]
fn the_header_or_the_query_parameter_names_the_resume_point() {
    assert_eq!(
        resume_point(Some(b"1796122800000"), None),
        Ok(Some(1_796_122_800_000))
    );
    assert_eq!(
        resume_point(None, Some("_=1&last_event_id=1796122800000")),
        Ok(Some(1_796_122_800_000))
    );
    assert_eq!(
        resume_point(Some(b"5"), Some("last_event_id=7")),
        Ok(Some(5)),
        "the header wins"
    );
    assert_eq!(
        resume_point(Some(b"  "), Some("last_event_id=7")),
        Ok(Some(7)),
        "an empty header is no header"
    );
    assert_eq!(resume_point(None, Some("last_event_id=")), Ok(None));
    assert_eq!(resume_point(None, None), Ok(None));
}

#[test]
fn a_bad_id_is_refused_naming_where_it_came_from_and_its_value() {
    assert_eq!(
        resume_point(Some(b"abc"), None),
        Err("the Last-Event-ID header \"abc\" is not an event id (Unix milliseconds)".to_owned())
    );
    assert_eq!(
        resume_point(None, Some("last_event_id=1.5")),
        Err("last_event_id \"1.5\" is not an event id (Unix milliseconds)".to_owned())
    );
    // A header of any length was echoed whole into the 400; it is cut after 64 characters.
    let long = "9".repeat(8_000);
    let e = resume_point(Some(long.as_bytes()), None).unwrap_err();
    assert!(
        e.contains("… (8000 bytes) is not an event id") && e.len() < 200,
        "{e}"
    );
}

// ---- Property tests: `Last-Event-ID` and `last_event_id` -------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    use testkit::proptest_config as config;

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn no_header_or_query_makes_the_parser_panic(
            header in prop::option::of(any::<Vec<u8>>()),
            query in prop::option::of(any::<String>()),
        ) {
            if let Err(e) = resume_point(header.as_deref(), query.as_deref()) {
                prop_assert!(e.contains("is not an event id") && !e.contains('\n'), "{e:?}");
            }
        }

        #[test]
        fn an_id_we_sent_resumes_from_itself(
            id in any::<i64>(),
            pad in "[ \t]{0,2}",
            other in prop::option::of("[0-9]{1,13}"),
        ) {
            let header = format!("{pad}{id}{pad}");
            let query = other.map(|o| format!("last_event_id={o}"));
            prop_assert_eq!(resume_point(Some(header.as_bytes()), query.as_deref()), Ok(Some(id)));
            prop_assert_eq!(resume_point(None, Some(&format!("x=1&last_event_id={id}"))), Ok(Some(id)));
        }

        #[test]
        fn a_bad_id_is_refused_with_its_text_cut_when_long(
            bad in prop_oneof![
                "[a-zA-Z\u{80}-\u{3000}]{1,20}",
                "[0-9]{1,5}\\.[0-9]{1,3}",
                "[1-9][0-9]{19,40}",
                (0usize..5000).prop_map(|n| format!("1{}", "0".repeat(n + 19))),
            ],
            in_header in any::<bool>(),
        ) {
            let (e, from) = if in_header {
                (resume_point(Some(bad.as_bytes()), None), "the Last-Event-ID header ")
            } else {
                (resume_point(None, Some(&format!("last_event_id={bad}"))), "last_event_id ")
            };
            let e = e.expect_err("not an id");
            let head: String = bad.chars().take(20).collect();
            let head = format!("{from}{head:?}");
            prop_assert!(e.starts_with(head.trim_end_matches('"')), "{e} lacks {head}");
            prop_assert!(e.len() < 300, "{} bytes: {e}", e.len());
        }
    }
}

use std::collections::BTreeMap;

use base64::Engine as _;
use http::HeaderValue;

use super::*;

fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
}

fn auth() -> BasicAuth {
    let hash = bcrypt::hash("secret", 4).unwrap();
    BasicAuth::new(BTreeMap::from([("alice".to_owned(), hash)])).unwrap()
}

#[tokio::test]
async fn only_the_right_password_of_a_known_user_passes() {
    let auth = auth();
    let cases = [
        (Some(basic("alice", "secret")), true),
        (Some(basic("alice", "secret")), true), // remembered
        (Some(basic("alice", "wrong")), false),
        (Some(basic("bob", "secret")), false),
        (Some(basic("alice:secret", "")), false),
        (
            Some(HeaderValue::from_static("basic YWxpY2U6c2VjcmV0")),
            true,
        ),
        (
            Some(HeaderValue::from_static("Bearer YWxpY2U6c2VjcmV0")),
            false,
        ),
        (Some(HeaderValue::from_static("Basic !!!")), false),
        (Some(HeaderValue::from_static("Basic")), false),
        (Some(HeaderValue::from_static("Basic YWxpY2U=")), false), // no colon
        (None, false),
    ];
    for (header, expected) in cases {
        assert_eq!(auth.allows(header.as_ref()).await, expected, "{header:?}");
    }
}

#[test]
fn the_stand_in_is_a_hash_no_password_matches_at_the_users_cost() {
    for cost in [4, 10, 12] {
        let hash = stand_in(cost);
        let parts = bcrypt::HashParts::from_str(&hash).unwrap();
        assert_eq!(parts.get_cost(), cost);
    }
    assert!(!bcrypt::verify("", &stand_in(4)).unwrap());
    assert!(!bcrypt::verify("secret", &stand_in(4)).unwrap());
    let users = BTreeMap::from([
        ("a".to_owned(), bcrypt::hash("x", 4).unwrap()),
        ("b".to_owned(), bcrypt::hash("y", 5).unwrap()),
    ]);
    assert!(
        BasicAuth::new(users)
            .unwrap()
            .stand_in
            .starts_with("$2b$05$")
    );
}

#[test]
fn a_user_name_with_a_colon_is_refused() {
    let users = BTreeMap::from([("a:b".to_owned(), bcrypt::hash("x", 4).unwrap())]);
    assert!(BasicAuth::new(users).unwrap_err().contains("':'"));
}

#[test]
fn the_cache_stays_bounded() {
    let auth = auth();
    for i in 0..(REMEMBERED * 2) {
        auth.remember(auth.tag(b"alice", format!("p{i}").as_bytes()));
    }
    assert!(auth.remembered.lock().unwrap().len() <= REMEMBERED);
}

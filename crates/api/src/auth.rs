//! HTTP basic authentication against the web configuration's `basic_auth_users` (user →
//! bcrypt hash), as exporter-toolkit does it: every path needs a user's password.
//!
//! bcrypt is slow on purpose (cost 10 is tens of milliseconds), so a check that passed is
//! remembered: a scraper asking every 5 s with the same credentials costs one bcrypt, then
//! a keyed hash and a set lookup. The remembered entries are HMAC-SHA256 tags under a key
//! made at start-up, never the passwords: a memory dump shows nothing to try offline.
//! Only successes are remembered, at most [`REMEMBERED`] of them.
//!
//! Timing: an unknown user's password is checked against a stand-in hash of the same
//! cost, so "no such user" takes as long as "wrong password"; bcrypt compares its
//! results in constant time. The cache is looked up by a tag the client cannot compute,
//! so how long a lookup takes says nothing about any user. Checks run on the blocking
//! pool, a few at a time ([`AT_ONCE`]), so a flood of wrong passwords queues instead of
//! stalling the runtime's workers or taking every blocking thread.
//!
//! Never logged, never shown: a password, a hash, the `Authorization` header.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Mutex;

use base64::Engine as _;
use http::HeaderValue;
use ring::hmac;
use tokio::sync::Semaphore;

#[cfg(test)]
mod tests;

/// Successful checks remembered; past it the set starts again (a bcrypt each, once).
pub(crate) const REMEMBERED: usize = 256;
/// bcrypt checks running at once; more wait their turn.
pub(crate) const AT_ONCE: usize = 4;

/// The users and what they have proven.
pub(crate) struct BasicAuth {
    users: HashMap<String, String>,
    /// A well-formed bcrypt hash no password gives, of the highest cost among the users:
    /// what an unknown user's password is checked against.
    stand_in: String,
    key: hmac::Key,
    remembered: Mutex<HashSet<[u8; 32]>>,
    checking: Semaphore,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and hashes stay out of logs.
        f.debug_struct("BasicAuth")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// The users, each hash checked to be bcrypt (`$2a$`, `$2b$`, `$2x$`, `$2y$`, cost
    /// 4–31). The message names the user, never the hash.
    pub(crate) fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        let mut cost = 0;
        for (user, hash) in &users {
            let parts = bcrypt::HashParts::from_str(hash.trim()).map_err(|_| {
                format!("{user:?}: not a bcrypt hash (such as htpasswd -nBC 10 \"\" prints)")
            })?;
            if !(4..=31).contains(&parts.get_cost()) {
                return Err(format!(
                    "{user:?}: bcrypt cost {} is not 4 to 31",
                    parts.get_cost()
                ));
            }
            if user.contains(':') {
                return Err(format!("{user:?}: a user name cannot hold ':'"));
            }
            cost = cost.max(parts.get_cost());
        }
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| "no randomness for the password cache's key".to_owned())?;
        Ok(Self {
            users: users
                .into_iter()
                .map(|(u, h)| (u, h.trim().to_owned()))
                .collect(),
            stand_in: stand_in(cost),
            key,
            remembered: Mutex::new(HashSet::new()),
            checking: Semaphore::new(AT_ONCE),
        })
    }

    /// How many users there are.
    pub(crate) fn users(&self) -> usize {
        self.users.len()
    }

    /// Whether `authorization` (the request's header) holds a user's password.
    pub(crate) async fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let tag = self.tag(&user, &password);
        if self.is_remembered(&tag) {
            return true;
        }
        let Ok(_turn) = self.checking.acquire().await else {
            return false;
        };
        let (hash, known) = match std::str::from_utf8(&user)
            .ok()
            .and_then(|u| self.users.get(u))
        {
            Some(hash) => (hash.clone(), true),
            None => (self.stand_in.clone(), false),
        };
        // An error (a hash that changed under us: impossible, they are checked at start-up)
        // is a refusal.
        let verified =
            tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        let allowed = verified && known;
        if allowed {
            self.remember(tag);
        }
        allowed
    }

    fn tag(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        // The user name holds no ':' (refused at start-up, and the header splits at the
        // first one), so "user:password" is unambiguous.
        let mut context = hmac::Context::with_key(&self.key);
        context.update(user);
        context.update(b":");
        context.update(password);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    fn is_remembered(&self, tag: &[u8; 32]) -> bool {
        self.remembered
            .lock()
            .map(|set| set.contains(tag))
            .unwrap_or(false)
    }

    fn remember(&self, tag: [u8; 32]) {
        if let Ok(mut set) = self.remembered.lock() {
            if set.len() >= REMEMBERED {
                set.clear();
            }
            set.insert(tag);
        }
    }
}

/// A bcrypt hash of `cost` that no password gives (its digest is all zero bits, which a
/// 192-bit bcrypt output hits with probability 2⁻¹⁸⁴): checking a password against it
/// costs exactly what checking against a real hash of that cost does.
fn stand_in(cost: u32) -> String {
    // bcrypt's base64: '.' is 0; 22 characters of salt, 31 of digest.
    format!("$2b${:02}${}", cost.max(4), ".".repeat(53))
}

/// The user and password of a `Basic` authorization header, if it is one.
fn credentials(header: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = header.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let rest = rest.trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let (user, password) = decoded.split_at(colon);
    Some((user.to_vec(), password[1..].to_vec()))
}

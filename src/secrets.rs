//! Secrets the server stores but must read back (channel credentials): sealed with
//! AES-256-GCM under `--secret-key` (`GROWTHGRAPH_SECRET_KEY`, 64 hex digits). Each sealed
//! value is bound to what it belongs to (its `context`, e.g. the tenant and channel): a
//! sealed value copied to another row, or another tenant, does not open there.
//! Layout: version byte `1`, the 12-byte random nonce, then the ciphertext and its tag.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

const VERSION: u8 = 1;

/// The server's secret key (never printed: its `Debug` shows nothing of it).
#[derive(Clone)]
pub struct SecretKey(Arc<LessSafeKey>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl FromStr for SecretKey {
    type Err = String;

    /// 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`.
    fn from_str(hex_digits: &str) -> Result<Self, String> {
        let bytes = hex::decode(hex_digits.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or("the secret key is 64 hex digits (32 bytes)")?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "unusable secret key")?;
        Ok(SecretKey(Arc::new(LessSafeKey::new(key))))
    }
}

impl SecretKey {
    /// `plaintext` sealed for `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut body,
            )
            .expect("a message within AES-GCM's limits");
        sealed.extend_from_slice(&body);
        sealed
    }

    /// What [`SecretKey::seal`] sealed for `context` under this key (`None`: another key,
    /// another context, or altered).
    pub fn open(&self, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::SecretKey;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn sealed_values_open_only_with_their_key_and_context_and_unaltered() {
        let key: SecretKey = KEY.parse().unwrap();
        let sealed = key.seal("tenant-a/email", b"{\"apiKey\":\"SG.secret\"}");
        assert!(!sealed
            .windows(b"SG.secret".len())
            .any(|w| w == b"SG.secret"));
        assert_eq!(
            key.open("tenant-a/email", &sealed).unwrap(),
            b"{\"apiKey\":\"SG.secret\"}"
        );
        // A fresh nonce each time.
        assert_ne!(
            key.seal("tenant-a/email", b"x"),
            key.seal("tenant-a/email", b"x")
        );
        assert!(key.open("tenant-b/email", &sealed).is_none());
        let other: SecretKey = KEY.replace("00", "ff").parse().unwrap();
        assert!(other.open("tenant-a/email", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            assert!(key.open("tenant-a/email", &altered).is_none(), "byte {i}");
        }
        assert!(key.open("tenant-a/email", &sealed[..10]).is_none());
        assert!(key.open("tenant-a/email", &[]).is_none());
    }

    #[test]
    fn the_key_is_64_hex_digits_and_never_printed() {
        for bad in [
            "",
            "00",
            &KEY[2..],
            &format!("{KEY}00"),
            &KEY.replace('0', "g"),
        ] {
            assert!(bad.parse::<SecretKey>().is_err(), "{bad}");
        }
        let key: SecretKey = KEY.parse().unwrap();
        assert_eq!(format!("{key:?}"), "SecretKey(…)");
    }
}

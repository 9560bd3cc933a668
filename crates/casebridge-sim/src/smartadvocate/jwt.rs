//! The simulator's tokens: HS256 JWTs, as SmartAdvocate issues (its example token decodes to
//! `iat`, `exp` = `iat` + 7200 and `iss`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Claims {
    pub unique_name: String,
    pub jti: u64,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

fn mac(key: &[u8], signing_input: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    mac
}

pub(super) fn encode(key: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("serializable"));
    let input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(mac(key, &input).finalize().into_bytes());
    format!("{input}.{sig}")
}

/// The claims of a token signed with `key`; `None` for anything else.
pub(super) fn decode(key: &[u8], token: &str) -> Option<Claims> {
    let (input, sig) = token.rsplit_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    mac(key, input).verify_slice(&sig).ok()?;
    let (_, payload) = input.split_once('.')?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let claims = Claims {
            unique_name: "demo".into(),
            jti: 1,
            iat: 1_620_665_626,
            exp: 1_620_672_826,
            iss: "SmartAdvocateSim".into(),
        };
        let t = encode(b"k", &claims);
        assert_eq!(decode(b"k", &t), Some(claims));
        assert_eq!(decode(b"other", &t), None);
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"unique_name":"x","jti":1,"iat":0,"exp":9999999999,"iss":"x"}"#);
        parts[1] = &forged;
        assert_eq!(decode(b"k", &parts.join(".")), None);
    }
}

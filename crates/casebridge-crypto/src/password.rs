use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

use crate::CryptoError;

/// Hashes an admin UI password with Argon2id (the crate's default, OWASP-recommended parameters)
/// and a random salt. The result is a self-describing PHC string, so the parameters can be raised
/// later without breaking existing hashes.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))
}

/// Checks a password against a stored PHC string, using the parameters recorded in it.
///
/// Returns `false` for a wrong password and for an unparseable hash alike: a login form must not
/// distinguish the two, and a corrupt hash must never let anyone in.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_right_password() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapl", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn same_password_gets_different_salts() {
        let a = hash_password("pw").unwrap();
        let b = hash_password("pw").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn garbage_hash_never_verifies() {
        assert!(!verify_password("pw", ""));
        assert!(!verify_password("pw", "not a phc string"));
        assert!(!verify_password(
            "pw",
            "$argon2id$v=19$m=19456,t=2,p=1$broken"
        ));
    }
}

//! HTTP Basic auth with Prefect's auth string (`PREFECT_SERVER_API_AUTH_STRING`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Compares without leaking where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Authorization` header carries `Basic base64(auth_string)`.
pub fn authorized(header: Option<&str>, auth_string: &str) -> bool {
    let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic "))) else { return false };
    match BASE64.decode(encoded.trim()) {
        Ok(decoded) => constant_time_eq(&decoded, auth_string.as_bytes()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let header = format!("Basic {}", BASE64.encode("admin:pass"));
        assert!(authorized(Some(&header), "admin:pass"));
        assert!(!authorized(Some(&header), "admin:other"));
        assert!(!authorized(None, "admin:pass"));
        assert!(!authorized(Some("Bearer x"), "admin:pass"));
    }
}

//! Who may talk to whom (docs/security.md): same user on both ends (`SO_PEERCRED`), and, with a
//! `secret`, a mutual HMAC-SHA256 challenge in which the secret itself never travels.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Labels that keep a master's proof from being replayed as a client's, and the reverse.
pub const MASTER: &[u8] = b"sqlite3-cluster master";
pub const CLIENT: &[u8] = b"sqlite3-cluster client";

/// 32 bytes from the kernel's random source. An error when there is none: a predictable nonce
/// would let a recorded handshake be replayed, so no handshake runs without one.
pub fn nonce() -> std::io::Result<[u8; 32]> {
  let mut bytes = [0u8; 32];
  let mut filled = 0;
  while filled < bytes.len() {
    let rest = &mut bytes[filled..];
    // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`, which we own.
    let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
    if got < 0 {
      let e = std::io::Error::last_os_error();
      if e.kind() == std::io::ErrorKind::Interrupted {
        continue;
      }
      return Err(e);
    }
    filled += got as usize;
  }
  Ok(bytes)
}

fn mac(secret: &[u8], label: &[u8], first: &[u8; 32], second: &[u8; 32]) -> HmacSha256 {
  let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
  mac.update(label);
  mac.update(first);
  mac.update(second);
  mac
}

/// The proof that the sender knows `secret`, bound to both nonces of this handshake.
pub fn prove(secret: &[u8], label: &[u8], first: &[u8; 32], second: &[u8; 32]) -> [u8; 32] {
  mac(secret, label, first, second).finalize().into_bytes().into()
}

/// Checks a proof in constant time. With no secret on our side, only "no proof" matches.
pub fn verify(
  secret: Option<&[u8]>,
  label: &[u8],
  first: &[u8; 32],
  second: &[u8; 32],
  proof: Option<&[u8; 32]>,
) -> bool {
  match (secret, proof) {
    (None, None) => true,
    (Some(secret), Some(proof)) => mac(secret, label, first, second).verify_slice(proof).is_ok(),
    _ => false,
  }
}

/// This process's effective user id.
pub fn euid() -> u32 {
  // SAFETY: geteuid has no arguments and cannot fail.
  unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn proofs_bind_secret_label_and_nonces() {
    let (a, b) = (nonce().unwrap(), nonce().unwrap());
    assert_ne!(a, b);
    let p = prove(b"s3cret", CLIENT, &a, &b);
    assert!(verify(Some(b"s3cret"), CLIENT, &a, &b, Some(&p)));
    assert!(!verify(Some(b"other"), CLIENT, &a, &b, Some(&p)));
    assert!(!verify(Some(b"s3cret"), MASTER, &a, &b, Some(&p)));
    assert!(!verify(Some(b"s3cret"), CLIENT, &b, &a, Some(&p)));
    assert!(!verify(Some(b"s3cret"), CLIENT, &a, &b, None));
    assert!(!verify(None, CLIENT, &a, &b, Some(&p)));
    assert!(verify(None, CLIENT, &a, &b, None));
  }
}

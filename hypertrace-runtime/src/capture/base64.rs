//! Standard base64 (RFC 4648 §4) without padding, encode only: what `<key>.base64` attributes
//! hold.
//!
//! Written out here rather than taken from the `base64` crate: the agent only ever encodes, and
//! the crates around it (tonic, hyper-util, reqwest) pin different major versions of `base64`
//! from release to release; not depending on it means the agent never adds a version of its own
//! to an application's build.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in standard base64, without `=` padding.
pub fn encode_no_pad(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    let mut groups = bytes.chunks_exact(3);
    for g in &mut groups {
        let n = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *groups.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
            ]);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
            ]);
        }
        _ => {}
    }
    // Only ASCII from the alphabet was pushed.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::base64::engine::general_purpose::STANDARD_NO_PAD;
    use ::base64::Engine as _;
    use proptest::prelude::*;

    #[test]
    fn rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_no_pad(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(encode_no_pad(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    proptest! {
        #[test]
        fn same_as_the_base64_crate(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(encode_no_pad(&bytes), STANDARD_NO_PAD.encode(&bytes));
        }
    }
}

//! Salesforce record ids: 15-character case-sensitive ids and their 18-character
//! case-insensitive form (the 15 characters followed by a 3-character checksum).
//!
//! Layout of the 15 characters as Salesforce mints them: a 3-character key prefix
//! (`001` Account, `003` Contact, ...), a 2-character instance/pod id, one reserved
//! character and a 9-character base-62 counter.

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Pod id used in every id minted by the emulator ("Em" for emulator).
pub const POD: &str = "Em";

/// The 3-character checksum suffix that turns a 15-character id into the
/// 18-character one: for each 5-character chunk, bit `i` is set when character `i`
/// of the chunk is an uppercase ASCII letter; the 5-bit value indexes
/// `A..Z0..5`.
pub fn checksum(id15: &str) -> Option<String> {
    let bytes = id15.as_bytes();
    if bytes.len() != 15 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let mut out = String::with_capacity(3);
    for chunk in bytes.chunks(5) {
        let mut bits = 0usize;
        for (i, b) in chunk.iter().enumerate() {
            if b.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(char::from(CHECKSUM_ALPHABET[bits]));
    }
    Some(out)
}

/// Extends a 15-character id to 18 characters.
pub fn to_18(id15: &str) -> Option<String> {
    checksum(id15).map(|c| format!("{id15}{c}"))
}

/// Normalises a 15- or 18-character id to its 18-character form. An 18-character
/// id whose suffix does not match the checksum is rejected; the suffix is compared
/// case-insensitively, and the 15-character part is case-sensitive (as Salesforce does).
pub fn normalize(id: &str) -> Option<String> {
    match id.len() {
        15 => to_18(id),
        18 => {
            let (head, tail) = id.split_at(15);
            let sum = checksum(head)?;
            if sum.eq_ignore_ascii_case(tail) { Some(format!("{head}{sum}")) } else { None }
        }
        _ => None,
    }
}

/// Mints the 18-character id for `counter` under `key_prefix`.
pub fn mint(key_prefix: &str, counter: u64) -> String {
    let mut digits = [b'0'; 9];
    let mut n = counter;
    for slot in digits.iter_mut().rev() {
        // `n % 62` is always < 62.
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    let mut id15 = String::with_capacity(18);
    id15.push_str(key_prefix);
    id15.push_str(POD);
    id15.push('0');
    id15.extend(digits.iter().map(|b| char::from(*b)));
    let sum = checksum(&id15).unwrap_or_else(|| "AAA".to_owned());
    id15.push_str(&sum);
    id15
}

/// The base-62 digit for `n` (0..62; larger values wrap).
pub fn base62_digit(n: usize) -> char {
    char::from(BASE62[n % 62])
}

/// The key prefix (first three characters) of an id.
pub fn key_prefix(id: &str) -> Option<&str> {
    id.get(0..3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_real_ids() {
        // Ids recorded from a real org.
        for id in [
            "001dM00003jU9GxQAK",
            "001dM00003jU9H0QAK",
            "003dM00001vWOXJQA4",
            "005dM00000aYf0qQAC",
            "00DdM00000vfgTuUAI",
            "500dM00003F2OMjQAN",
        ] {
            assert_eq!(to_18(&id[..15]).as_deref(), Some(id), "{id}");
            assert_eq!(normalize(id).as_deref(), Some(id));
            assert_eq!(normalize(&id[..15]).as_deref(), Some(id));
        }
    }

    #[test]
    fn minted_ids_are_valid_and_ordered() {
        let a = mint("003", 1);
        let b = mint("003", 61);
        let c = mint("003", 62);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("003Em0"));
        assert_eq!(normalize(&a).as_deref(), Some(a.as_str()));
        assert!(a < b && b < c);
        assert_eq!(normalize("003Em0000000001XXX"), None);
        assert_eq!(normalize("short"), None);
    }
}

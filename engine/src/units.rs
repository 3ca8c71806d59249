//! Sizes as operators write them on the command line.

use crate::error::{Error, Result};

/// Parses a byte count such as `4096`, `500M` or `2G` (binary units, K to
/// T, either case). Negative sizes are refused.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let bad = || Error::InvalidArgument(format!("invalid size {s:?}: use e.g. 500M or 2G"));
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if n.is_nan() || n < 0.0 {
        return Err(bad());
    }
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("").is_err());
    }
}

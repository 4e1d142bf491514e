//! Byte search and compare for the per-line paths.
//!
//! `memchr::memchr` picks its AVX2 routine through a function pointer on
//! every call; a log line is ~100 bytes, and that choosing cost as much as
//! the search. SSE2 is part of every x86_64 CPU, so its routine is called
//! directly.

/// The first position of `b` in `hay`.
#[inline]
pub(crate) fn find_byte(b: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        memchr::arch::x86_64::sse2::memchr::One::new(b).map_or_else(|| memchr::memchr(b, hay), |one| one.find(hay))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr::memchr(b, hay)
    }
}

/// The last position of `b` in `hay`.
#[inline]
pub(crate) fn rfind_byte(b: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        memchr::arch::x86_64::sse2::memchr::One::new(b).map_or_else(|| memchr::memrchr(b, hay), |one| one.rfind(hay))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr::memrchr(b, hay)
    }
}

/// The first position in `hay` of any of `bytes` (one to three of them).
#[inline]
pub(crate) fn find_any(bytes: &[u8], hay: &[u8]) -> Option<usize> {
    match *bytes {
        [a] => find_byte(a, hay),
        [a, b] => find2(a, b, hay),
        [a, b, c] => find3(a, b, c, hay),
        _ => hay.iter().position(|x| bytes.contains(x)),
    }
}

#[inline]
fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        memchr::arch::x86_64::sse2::memchr::Two::new(a, b).map_or_else(|| memchr::memchr2(a, b, hay), |s| s.find(hay))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr::memchr2(a, b, hay)
    }
}

#[inline]
fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        memchr::arch::x86_64::sse2::memchr::Three::new(a, b, c)
            .map_or_else(|| memchr::memchr3(a, b, c, hay), |s| s.find(hay))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr::memchr3(a, b, c, hay)
    }
}

/// Whether `h` starts with `l`, by overlapping word loads: failregex
/// literals are short, and a `memcmp` call costs more than comparing them.
#[inline(always)]
pub(crate) fn starts_with(h: &[u8], l: &[u8]) -> bool {
    let n = l.len();
    if h.len() < n {
        return false;
    }
    let h = &h[..n];
    match n {
        0 => true,
        1 => h[0] == l[0],
        2..=3 => u16_at(h, 0) == u16_at(l, 0) && u16_at(h, n - 2) == u16_at(l, n - 2),
        4..=7 => u32_at(h, 0) == u32_at(l, 0) && u32_at(h, n - 4) == u32_at(l, n - 4),
        8..=16 => u64_at(h, 0) == u64_at(l, 0) && u64_at(h, n - 8) == u64_at(l, n - 8),
        _ => h == l,
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes(b[i..i + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_and_last_byte_at_every_length_and_place() {
        let hay: Vec<u8> = (0..100u8).map(|i| b'a' + i % 20).collect();
        for len in 0..hay.len() {
            let h = &hay[..len];
            for b in [b'a', b'k', b't', b'z', b'\n'] {
                assert_eq!(find_byte(b, h), h.iter().position(|&c| c == b), "{b} in {len} bytes");
                assert_eq!(rfind_byte(b, h), h.iter().rposition(|&c| c == b), "last {b} in {len} bytes");
                for set in [&[b][..], &[b, b'q'], &[b'q', b, b'c'], &[b'q', b'r', b'c', b]] {
                    assert_eq!(find_any(set, h), h.iter().position(|c| set.contains(c)), "{set:?} in {len} bytes");
                }
            }
        }
    }

    #[test]
    fn word_compare_agrees_with_slices() {
        let hay: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=20 {
            for at in 0..hay.len() {
                let mut lit: Vec<u8> = hay[at..].iter().copied().take(n).collect();
                lit.resize(n, b'a');
                assert_eq!(starts_with(&hay[at..], &lit), hay[at..].starts_with(&lit), "n={n} at={at}");
                for k in 0..n {
                    let mut bad = lit.clone();
                    bad[k] ^= 1;
                    assert!(!starts_with(&hay[at..], &bad), "n={n} at={at} k={k}");
                }
            }
        }
    }
}

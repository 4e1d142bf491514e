//! Byte search for the per-line paths.
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
}

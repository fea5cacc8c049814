// SPDX-License-Identifier: GPL-2.0

//! A small stable hash for cache keys. `std`'s hasher may change between
//! Rust releases, which would silently invalidate (or worse, alias) keys.

/// FNV-1a, 64 bits, fed with length-prefixed parts so `("ab", "c")` and
/// `("a", "bc")` differ.
#[derive(Debug, Clone)]
pub(crate) struct CacheKey(u64);

impl Default for CacheKey {
    fn default() -> Self {
        CacheKey(0xcbf2_9ce4_8422_2325)
    }
}

impl CacheKey {
    /// Adds one named part to the key. (A builder step, not arithmetic.)
    #[allow(clippy::should_implement_trait)]
    pub(crate) fn add(mut self, part: impl AsRef<[u8]>) -> Self {
        let part = part.as_ref();
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part) {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// The key as 16 hex digits, for directory names.
    pub(crate) fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::CacheKey;

    #[test]
    fn parts_are_delimited() {
        let a = CacheKey::default().add("ab").add("c").hex();
        let b = CacheKey::default().add("a").add("bc").hex();
        assert_ne!(a, b);
    }

    #[test]
    fn key_is_stable() {
        // A changed value here means every user's kernel cache is rebuilt:
        // FNV-1a's offset basis, and the key of one part, pinned.
        assert_eq!(CacheKey::default().hex(), "cbf29ce484222325");
        assert_eq!(CacheKey::default().add("7.3.4").hex(), "a1f9aafb3907f9b4");
    }
}

//! Public keys under which anyone can forge, refused wherever keys load (DESIGN.md §7):
//! Ed25519 points of small order and non-canonical encodings (with R = identity and S = 0 every
//! message verifies under the identity), and RSA moduli that are prime (then anyone computes
//! the private exponent from n - 1), have a factor below `SMALL_FACTOR_BOUND`, or are absurdly
//! large. The big-number arithmetic is aws-lc's (BN_mod_word, BN_primality_test), reached
//! through aws-lc-sys because aws-lc-rs does not expose it; this is the one module with
//! `unsafe`, and each call's contract is stated beside it.
#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::ptr;
use std::sync::OnceLock;

use aws_lc_sys::{BIGNUM, BN_CTX, BN_ULONG};

/// Remembers moduli (by SHA-256) that passed the primality test, so that test, a full-size
/// modular exponentiation (about 3 ms for 2048 bits, 15 ms for 4096), runs once per key rather
/// than in every short process. The crypto core does no I/O; the caller supplies the memo.
pub trait PrimalityMemo: Sync {
    fn known_composite(&self, digest: &[u8]) -> bool;
    fn remember_composite(&self, digest: &[u8]);
}

static MEMO: OnceLock<&'static dyn PrimalityMemo> = OnceLock::new();

/// Installs the memo (once per process; later calls are ignored).
pub fn set_primality_memo(memo: &'static dyn PrimalityMemo) {
    let _ = MEMO.set(memo);
}

/// RSA moduli over this many bits are refused (no real key is that large; the primality test
/// and every verification would cost seconds).
pub const MAX_RSA_BITS: usize = 16_384;

/// Moduli with a prime factor below this are refused.
pub const SMALL_FACTOR_BOUND: usize = 5000;

/// The primes below `SMALL_FACTOR_BOUND` (a sieve, evaluated at compile time).
const SMALL_PRIMES: ([u16; 700], usize) = {
    let mut composite = [false; SMALL_FACTOR_BOUND];
    let mut primes = [0u16; 700];
    let mut count = 0;
    let mut i = 2;
    while i < SMALL_FACTOR_BOUND {
        if !composite[i] {
            primes[count] = i as u16;
            count += 1;
            let mut j = i * i;
            while j < SMALL_FACTOR_BOUND {
                composite[j] = true;
                j += i;
            }
        }
        i += 1;
    }
    (primes, count)
};

/// An aws-lc BIGNUM, freed on drop.
struct Bn(*mut BIGNUM);

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: self.0 came from BN_bin2bn, is non-null, and is freed exactly once here.
        unsafe { aws_lc_sys::BN_free(self.0) }
    }
}

/// An aws-lc BN_CTX, freed on drop.
struct Ctx(*mut BN_CTX);

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: self.0 came from BN_CTX_new, is non-null, and is freed exactly once here.
        unsafe { aws_lc_sys::BN_CTX_free(self.0) }
    }
}

/// The largest BN_ULONG (a u64 on 64-bit targets, a u32 on 32-bit ones).
#[allow(clippy::unnecessary_cast)]
const WORD_MAX: u64 = BN_ULONG::MAX as u64;

/// Why an RSA modulus (big-endian, no leading zeros) is unsafe to trust, or None.
pub fn rsa_modulus_weakness(n: &[u8]) -> Option<String> {
    let bits = n
        .iter()
        .position(|&b| b != 0)
        .map_or(0, |i| (n.len() - i) * 8 - n[i].leading_zeros() as usize);
    if bits > MAX_RSA_BITS {
        return Some(format!(
            "the RSA modulus is {bits} bits; jwkit accepts at most {MAX_RSA_BITS}"
        ));
    }
    // SAFETY: n points to n.len() readable bytes; a null `ret` asks for a new BIGNUM, which we
    // own (and free through Bn). Null is returned only on allocation failure.
    let bn = unsafe { aws_lc_sys::BN_bin2bn(n.as_ptr(), n.len(), ptr::null_mut()) };
    if bn.is_null() {
        return Some("the RSA modulus could not be read (out of memory)".into());
    }
    let bn = Bn(bn);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, n);
    if MEMO
        .get()
        .is_some_and(|m| m.known_composite(digest.as_ref()))
    {
        return None;
    }
    // Primes are taken in groups whose product fits a machine word: one BN_mod_word per group,
    // then the remainder by each prime of the group in plain integer arithmetic.
    let (primes, count) = &SMALL_PRIMES;
    let mut group: Vec<u64> = Vec::with_capacity(8);
    let mut product: u64 = 1;
    let check_group = |group: &[u64], product: u64| -> Option<u64> {
        // SAFETY: bn.0 is a valid BIGNUM; BN_mod_word only reads it. It returns (BN_ULONG)-1 on
        // error; the product is below BN_ULONG::MAX, so no true remainder equals that.
        let rem = unsafe { aws_lc_sys::BN_mod_word(bn.0, product as BN_ULONG) } as u64;
        group.iter().copied().find(|p| rem.is_multiple_of(*p))
    };
    for &p in &primes[..*count] {
        let p = u64::from(p);
        if product.checked_mul(p).is_none_or(|v| v > WORD_MAX / 2) {
            if let Some(f) = check_group(&group, product) {
                return Some(small_factor(f));
            }
            group.clear();
            product = 1;
        }
        group.push(p);
        product *= p;
    }
    if let Some(f) = check_group(&group, product) {
        return Some(small_factor(f));
    }
    // SAFETY: BN_CTX_new returns an owned context or null on allocation failure.
    let ctx = unsafe { aws_lc_sys::BN_CTX_new() };
    if ctx.is_null() {
        return Some("the RSA modulus could not be checked (out of memory)".into());
    }
    let ctx = Ctx(ctx);
    let mut probably_prime: c_int = 0;
    // One Miller-Rabin round is enough here: a prime always passes it, so a prime modulus is
    // always caught; a composite passes with probability at most 1/4, and then only that
    // (deliberately odd) key is refused, never a weak one accepted.
    // SAFETY: all pointers are valid for the call (out-parameter, BIGNUM, context); a null
    // callback is allowed. Returns 1 on success, 0 on an internal error.
    let ok = unsafe {
        aws_lc_sys::BN_primality_test(&mut probably_prime, bn.0, 1, ctx.0, 0, ptr::null_mut())
    };
    if ok != 1 {
        return Some("the RSA modulus could not be checked for primality".into());
    }
    if probably_prime == 1 {
        return Some(
            "the RSA modulus is prime: anyone can compute the private exponent from it".into(),
        );
    }
    if let Some(m) = MEMO.get() {
        m.remember_composite(digest.as_ref());
    }
    None
}

fn small_factor(p: u64) -> String {
    format!("the RSA modulus has the small factor {p}: it is trivially factored")
}

/// p = 2^255 - 19, little-endian, as an Ed25519 y coordinate is encoded.
const ED25519_P: [u8; 32] = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// y coordinates of the points of order 8 (the others of small order have y = 0, 1 or p - 1).
const ED25519_ORDER8_Y: [[u8; 32]; 2] = [
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// Why an Ed25519 public key (32 bytes) is unsafe to trust, or None. Compares encodings only:
/// the y coordinate (the sign bit of x cleared) must be below p, and must not be that of one of
/// the eight points of small order.
pub fn ed25519_weakness(x: &[u8]) -> Option<&'static str> {
    let Ok(enc) = <[u8; 32]>::try_from(x) else {
        return Some("an Ed25519 public key is 32 bytes");
    };
    let mut y = enc;
    y[31] &= 0x7f;
    // Little-endian comparison of y with p, from the most significant byte.
    let at_least_p = y
        .iter()
        .rev()
        .zip(ED25519_P.iter().rev())
        .find(|(a, b)| a != b)
        .is_none_or(|(a, b)| a > b);
    if at_least_p {
        return Some("the Ed25519 public key is not canonically encoded (its y is not below p)");
    }
    let mut p_minus_1 = ED25519_P;
    p_minus_1[0] -= 1;
    let small = [0u8; 32] == y
        || y == {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }
        || y == p_minus_1
        || ED25519_ORDER8_Y.contains(&y);
    small.then_some(
        "the Ed25519 public key is a point of small order: signatures under it can be forged",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_primes_are_primes_below_the_bound() {
        let (primes, count) = SMALL_PRIMES;
        assert_eq!(count, 669);
        assert_eq!(&primes[..5], &[2, 3, 5, 7, 11]);
        assert_eq!(primes[count - 1], 4999);
    }

    #[test]
    fn rsa_moduli() {
        // 2^127 - 1 is prime; 2^61 - 1 times 2^89 - 1 is composite with no small factor.
        let m127 = {
            let mut v = vec![0x7f];
            v.extend([0xff; 15]);
            v
        };
        assert!(rsa_modulus_weakness(&m127).is_some_and(|w| w.contains("prime")));
        let composite: u128 = 2_305_843_009_213_693_951 * 3; // has factor 3
        assert!(
            rsa_modulus_weakness(&composite.to_be_bytes())
                .is_some_and(|w| w.contains("small factor 3"))
        );
        // 4001 * 4003: a small factor found by trial division.
        let n: u32 = 4001 * 4003;
        assert!(rsa_modulus_weakness(&n.to_be_bytes()).is_some_and(|w| w.contains("4001")));
        // (2^61 - 1)(2^31 - 1): composite, no factor below the bound.
        let n: u128 = 2_305_843_009_213_693_951u128 * 2_147_483_647;
        assert_eq!(rsa_modulus_weakness(&n.to_be_bytes()), None);
        let huge = vec![0xffu8; MAX_RSA_BITS / 8 + 1];
        assert!(rsa_modulus_weakness(&huge).is_some_and(|w| w.contains("at most")));
    }

    #[test]
    fn ed25519_small_order_and_non_canonical() {
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(ed25519_weakness(&id).is_some());
        id[31] = 0x80; // the same y with the sign bit set
        assert!(ed25519_weakness(&id).is_some());
        assert!(ed25519_weakness(&[0u8; 32]).is_some());
        for y in ED25519_ORDER8_Y {
            assert!(ed25519_weakness(&y).is_some());
        }
        assert!(ed25519_weakness(&ED25519_P).is_some(), "y = p");
        assert!(ed25519_weakness(&[0xff; 32]).is_some(), "y > p");
        // RFC 8037 A.2's public key is fine.
        let good =
            crate::crypto::b64::decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").expect("b64");
        assert_eq!(ed25519_weakness(&good), None);
    }
}

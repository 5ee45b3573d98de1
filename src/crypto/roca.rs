//! Detection of RSA moduli made by the vulnerable Infineon generator (ROCA, CVE-2017-15361).
//! Such a modulus is, for every small prime p below, in the subgroup that 65537 generates mod p;
//! for a random modulus that happens with negligible probability (Nemec et al., CCS 2017).

const PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// True when the big-endian modulus `n` has the ROCA fingerprint.
pub fn is_vulnerable(n: &[u8]) -> bool {
    PRIMES.iter().all(|&p| {
        let residue = n.iter().fold(0u32, |r, &b| (r * 256 + u32::from(b)) % p);
        in_subgroup_of_65537(residue, p)
    })
}

fn in_subgroup_of_65537(residue: u32, p: u32) -> bool {
    let g = 65537 % p;
    let mut x = 1;
    for _ in 0..p {
        if x == residue {
            return true;
        }
        x = x * g % p;
        if x == 1 {
            break;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn ordinary_modulus_is_not_flagged() {
        // RFC 7515 A.2's modulus (any honestly generated key).
        let n = crate::crypto::b64::decode("ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ").expect("b64");
        assert!(!super::is_vulnerable(&n));
    }
}

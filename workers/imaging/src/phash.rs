//! A 64-bit perceptual hash (pHash's construction: the frequencies 1–8 in each direction of a
//! 64×64 luminance image's DCT, the zero-frequency row and column left out, each bit whether
//! its coefficient is above their median), made for finding the same photo re-encoded, resized, lightly cropped or
//! brightened. Hamming distance compares two hashes: 0 is the same picture, about 32 two
//! unrelated ones. Only the lowest frequencies: a crop shifts the picture, which turns the
//! phase of a frequency in proportion to it (PDQ's 16×16, tried first, lost a 5 % crop).
//!
//! Computed from the upright image the thumbnail stage already decoded, so it costs a resize
//! to 64×64 and an 8×64 DCT: microseconds.
use image::RgbImage;

use crate::{resize, Region};

/// Side of the luminance image the DCT runs on.
const SIDE: usize = 64;
/// Coefficients kept per dimension (the lowest, the DC term left out).
const KEPT: usize = 8;
/// Bands the index looks hashes up by: four of two rows of coefficients, four of two columns,
/// four 4×4 quarters.
pub const BANDS: usize = 12;

/// 64 bits: coefficient (row `k`, column `j`) is bit `63 - (8k + j)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerceptualHash(pub u64);

/// Why an image has no hash worth comparing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HashError {
    /// Almost no contrast (a flat colour, a blank page): every such image would look alike.
    #[error("the image is nearly featureless (contrast {0:.1}): its hash would match any other")]
    Featureless(f32),
    /// The image could not be resized.
    #[error("{0}")]
    Resize(String),
}

/// The smallest spread of DCT energy a hash is trusted at: below it, the median threshold
/// turns noise into bits.
const MIN_CONTRAST: f32 = 1.0;

impl PerceptualHash {
    /// Hamming distance: how many of the 64 bits differ.
    pub fn distance(&self, other: &Self) -> u32 {
        (self.0 ^ other.0).count_ones()
    }

    /// 16 hex digits.
    pub fn to_hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// From [`PerceptualHash::to_hex`].
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 16 || !hex.is_ascii() {
            return None;
        }
        u64::from_str_radix(hex, 16).ok().map(Self)
    }

    /// The `n`th 16-bit band (0–11): bands 0–3 are two rows of coefficients each, 4–7 two
    /// columns, 8–11 the four 4×4 quarters. Near-duplicates mostly agree on one band whole, which the index looks them up
    /// by (measured: see the README).
    pub fn band(&self, n: usize) -> u16 {
        let n = n % BANDS;
        let (rows, columns) = match n {
            0..=3 => (2 * n..2 * n + 2, 0..KEPT),
            4..=7 => (0..KEPT, 2 * (n - 4)..2 * (n - 4) + 2),
            _ => {
                let (r, c) = ((n - 8) / 2 * 4, (n - 8) % 2 * 4);
                (r..r + 4, c..c + 4)
            }
        };
        let mut band = 0u16;
        for row in rows {
            for column in columns.clone() {
                let bit = (self.0 >> (63 - (row * KEPT + column))) & 1;
                band = (band << 1) | bit as u16;
            }
        }
        band
    }
}

/// The band values a lookup of `hash` asks an index for: each band's own value, and for the
/// four quarter bands (the lowest frequencies, the most crop-tolerant) every value one bit
/// away. 76 keys; with them an index finds 0.967 of the benchmark's near-duplicate pairs
/// (0.936 with the twelve exact bands alone).
pub fn probes(hash: &PerceptualHash) -> Vec<(usize, u16)> {
    let mut keys: Vec<(usize, u16)> = (0..BANDS).map(|n| (n, hash.band(n))).collect();
    for n in BANDS - 4..BANDS {
        let band = hash.band(n);
        keys.extend((0..16).map(|bit| (n, band ^ (1 << bit))));
    }
    keys
}

/// Whether a lookup of `probe` finds an index entry of `stored` ([`probes`]).
pub fn found_by(probe: &PerceptualHash, stored: &PerceptualHash) -> bool {
    probes(probe)
        .iter()
        .any(|(n, value)| stored.band(*n) == *value)
}

/// The hash of `image` (upright, any size).
pub fn perceptual_hash(image: &RgbImage) -> Result<PerceptualHash, HashError> {
    let side = SIDE as u32;
    let small = resize(image, Region::whole(image), side, side).map_err(HashError::Resize)?;
    let luma: Vec<f32> = small
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let basis = dct_basis();
    // Rows first: T = B · X (8 × 64), then D = T · Bᵀ (8 × 8).
    let mut rows = [[0f32; SIDE]; KEPT];
    for (k, row) in rows.iter_mut().enumerate() {
        for (n, weight) in basis[k].iter().enumerate() {
            let line = &luma[n * SIDE..(n + 1) * SIDE];
            for (out, value) in row.iter_mut().zip(line) {
                *out += weight * value;
            }
        }
    }
    let mut coefficients = [0f32; KEPT * KEPT];
    for (k, row) in rows.iter().enumerate() {
        for (j, column) in basis.iter().enumerate() {
            coefficients[k * KEPT + j] = row.iter().zip(column).map(|(a, b)| a * b).sum();
        }
    }
    let mut sorted = coefficients;
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[KEPT * KEPT / 2 - 1] + sorted[KEPT * KEPT / 2]) / 2.0;
    let contrast =
        coefficients.iter().map(|c| (c - median).abs()).sum::<f32>() / (KEPT * KEPT) as f32;
    if contrast < MIN_CONTRAST {
        return Err(HashError::Featureless(contrast));
    }
    let mut bits = 0u64;
    for (i, c) in coefficients.iter().enumerate() {
        if *c > median {
            bits |= 1 << (63 - i);
        }
    }
    Ok(PerceptualHash(bits))
}

/// DCT-II basis rows 1..=8 over 64 samples, scaled so coefficients stay in pixel units.
fn dct_basis() -> [[f32; SIDE]; KEPT] {
    let mut basis = [[0f32; SIDE]; KEPT];
    let scale = (2.0 / SIDE as f64).sqrt();
    for (k, row) in basis.iter_mut().enumerate() {
        for (n, weight) in row.iter_mut().enumerate() {
            let angle =
                std::f64::consts::PI * (2 * n + 1) as f64 * (k + 1) as f64 / (2 * SIDE) as f64;
            *weight = (scale * angle.cos()) as f32;
        }
    }
    basis
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(seed: u32) -> RgbImage {
        RgbImage::from_fn(200, 150, |x, y| {
            let v = ((x * (3 + seed) + y * (5 + 2 * seed)) % 256) as u8;
            image::Rgb([v, v / 2, 255 - v])
        })
    }

    #[test]
    fn the_same_picture_hashes_alike_at_another_size_and_unlike_another_picture() {
        let a = gradient(1);
        let small = image::imageops::resize(&a, 100, 75, image::imageops::FilterType::Triangle);
        let (ha, hs) = (
            perceptual_hash(&a).unwrap(),
            perceptual_hash(&small).unwrap(),
        );
        assert!(ha.distance(&hs) <= 4, "{}", ha.distance(&hs));
        let other = perceptual_hash(&gradient(7)).unwrap();
        assert!(ha.distance(&other) > 16, "{}", ha.distance(&other));
    }

    #[test]
    fn a_flat_image_has_no_hash() {
        let flat = RgbImage::from_pixel(100, 100, image::Rgb([120, 120, 120]));
        assert!(matches!(
            perceptual_hash(&flat),
            Err(HashError::Featureless(_))
        ));
    }

    #[test]
    fn hex_and_bands_round_trip() {
        let h = PerceptualHash(0x0123_4567_89ab_cdef);
        assert_eq!(h.to_hex(), "0123456789abcdef");
        assert_eq!(PerceptualHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(h.band(0), 0x0123);
        assert_eq!(h.band(3), 0xcdef);
        assert_eq!(PerceptualHash::from_hex("zz"), None);
        assert_eq!(PerceptualHash::from_hex("0123456789abcdeg"), None);
    }
}

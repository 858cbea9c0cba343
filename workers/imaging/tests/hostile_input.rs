//! Random and mutated files thrown at the decoder: every case ends in an image or a clear
//! error, never a panic, and nothing over the budget is decoded.
use std::io::Cursor;

use image::{DynamicImage, RgbImage};
use imgflow_imaging::{decode_scaled, DecodeError};
use proptest::prelude::*;

/// Small enough that a forged header over it is refused, large enough for the seeds.
const BUDGET: u64 = 4_000_000;

fn seed(format: image::ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(120, 90, |x, y| {
        image::Rgb([x as u8, y as u8, (x ^ y) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn check(bytes: &[u8]) {
    match decode_scaled(bytes, 64, BUDGET) {
        Ok(image) => assert!(image.width().max(image.height()) <= 64),
        Err(DecodeError::OverBudget { needed, budget, .. }) => assert!(needed > budget),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Applies `(position, byte)` overwrites, then cuts the file at `cut` (as a fraction).
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<f64>) -> Vec<u8> {
    for (at, value) in edits {
        let len = bytes.len();
        bytes[at % len] = *value;
    }
    if let Some(cut) = cut {
        bytes.truncate((bytes.len() as f64 * cut) as usize);
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_behind_either_signature(
        png in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let magic: &[u8] = if png { b"\x89PNG\r\n\x1a\n" } else { &[0xFF, 0xD8, 0xFF] };
        check(&[magic, &body].concat());
    }

    #[test]
    fn mutated_jpegs(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16),
        cut in proptest::option::of(0.0f64..1.0),
    ) {
        check(&mutate(seed(image::ImageFormat::Jpeg), &edits, cut));
    }

    #[test]
    fn mutated_pngs(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16),
        cut in proptest::option::of(0.0f64..1.0),
    ) {
        check(&mutate(seed(image::ImageFormat::Png), &edits, cut));
    }

    #[test]
    fn jpeg_frame_headers_declaring_any_size(width in 1u16.., height in 1u16.., progressive in any::<bool>()) {
        // The seed's SOF0 with its dimensions replaced (and SOF2 for progressive).
        let mut jpeg = seed(image::ImageFormat::Jpeg);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        if progressive { jpeg[sof + 1] = 0xC2; }
        jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        check(&jpeg);
    }
}

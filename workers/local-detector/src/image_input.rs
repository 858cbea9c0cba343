//! From encoded bytes to the two models' input tensors.
use image::RgbImage;

use crate::engine::Input;

/// Longest side kept after decoding: both models look at far fewer pixels (416 and 224), and
/// a fast downscale first keeps the exact resizes cheap for camera-sized photos.
pub const WORKING_SIDE: u32 = 832;

/// A decoded, upright, downscaled RGB image.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The pixels.
    pub rgb: RgbImage,
}

/// Decodes a JPEG or PNG under `budget` bytes of pixels (see `imgflow_imaging`), applies its
/// EXIF orientation (so boxes match the picture as people see it) and downscales it to at most
/// [`WORKING_SIDE`], in the decoder where the format allows.
pub fn decode(encoded: &[u8], budget: u64) -> Result<Prepared, imgflow_imaging::DecodeError> {
    Ok(Prepared {
        rgb: imgflow_imaging::decode_scaled(encoded, WORKING_SIDE, budget)?,
    })
}

pub use imgflow_imaging::Region;

/// An NCHW model input: `region` of `image` resized to `side`×`side` (bilinear, SIMD), each
/// channel (taken in `order` from RGB) normalised as (x − mean) / std.
pub fn tensor(
    image: &RgbImage,
    region: Region,
    side: u32,
    order: [usize; 3],
    mean: [f32; 3],
    std: [f32; 3],
) -> Result<Input, String> {
    let resized = imgflow_imaging::resize(image, region, side, side)
        .map_err(|e| format!("model input: {e}"))?;
    let plane = side as usize * side as usize;
    let scale = std.map(|s| 1.0 / s);
    let mut values = vec![0.0f32; 3 * plane];
    let (first, rest) = values.split_at_mut(plane);
    let (second, third) = rest.split_at_mut(plane);
    for (i, pixel) in resized.as_raw().chunks_exact(3).enumerate() {
        let channel = |c: usize| (f32::from(pixel[order[c]]) - mean[c]) * scale[c];
        first[i] = channel(0);
        second[i] = channel(1);
        third[i] = channel(2);
    }
    Ok(Input {
        side: side as usize,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = imgflow_imaging::DEFAULT_MAX_DECODED_BYTES;

    fn encode(image: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn large_images_are_downscaled_keeping_their_shape() {
        let big = RgbImage::new(2000, 1000);
        let prepared = decode(&encode(&big, image::ImageFormat::Png), BUDGET).unwrap();
        assert_eq!(prepared.rgb.dimensions(), (832, 416));
    }

    #[test]
    fn tensors_are_nchw_in_the_requested_channel_order() {
        let mut img = RgbImage::new(4, 4);
        for p in img.pixels_mut() {
            *p = image::Rgb([10, 20, 30]);
        }
        let t = tensor(&img, Region::whole(&img), 2, [2, 1, 0], [0.0; 3], [1.0; 3]).unwrap();
        assert_eq!((t.side, t.values.len()), (2, 3 * 2 * 2));
        // [channel][y][x] → channel × 4 + y × 2 + x
        assert_eq!(
            (t.values[0], t.values[4 + 2 + 1], t.values[8 + 1]),
            (30.0, 20.0, 10.0)
        );
        let normalised = tensor(
            &img,
            Region::whole(&img),
            2,
            [0, 1, 2],
            [10.0, 0.0, 0.0],
            [2.0, 4.0, 1.0],
        )
        .unwrap();
        assert_eq!(
            (
                normalised.values[0],
                normalised.values[4],
                normalised.values[8]
            ),
            (0.0, 5.0, 30.0)
        );
    }

    #[test]
    fn a_region_is_what_gets_resized() {
        // Left half black, right half white: the right half comes out white (the bilinear
        // kernel at its edge reaches a pixel beyond it, as a crop of a larger picture should).
        let img = RgbImage::from_fn(8, 4, |x, _| image::Rgb([if x < 4 { 0 } else { 255 }; 3]));
        let right = Region {
            left: 4,
            top: 0,
            width: 4,
            height: 4,
        };
        let t = tensor(&img, right, 2, [0, 1, 2], [0.0; 3], [1.0; 3]).unwrap();
        assert!(t.values.iter().all(|&v| v >= 200.0), "{:?}", t.values);
        let whole = tensor(&img, Region::whole(&img), 2, [0, 1, 2], [0.0; 3], [1.0; 3]).unwrap();
        assert!(
            whole.values[0] < 50.0 && whole.values[1] > 200.0,
            "{:?}",
            whole.values
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"\x89PNG\r\n\x1a\nnot really", BUDGET).is_err());
        assert!(decode(b"hello", BUDGET).is_err());
    }
}

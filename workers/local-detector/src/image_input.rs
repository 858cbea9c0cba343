//! From encoded bytes to the two models' input tensors.
use image::{imageops::FilterType, RgbImage};
use tract_onnx::prelude::tract_ndarray::Array4;
use tract_onnx::prelude::*;

use crate::LoadError;

/// Loads an ONNX model for a fixed NCHW input of `side`×`side` and optimises it once.
pub fn load_model(
    path: &std::path::Path,
    side: usize,
) -> Result<std::sync::Arc<TypedRunnableModel>, LoadError> {
    tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, side, side]).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| LoadError::Model {
            path: path.to_owned(),
            message: format!("{e:#}"),
        })
}

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

/// An NCHW float tensor of `image` resized to `side`×`side`, each channel (taken in `order`
/// from RGB) normalised as (x − mean) / std.
pub fn tensor(
    image: &RgbImage,
    side: u32,
    order: [usize; 3],
    mean: [f32; 3],
    std: [f32; 3],
) -> Tensor {
    let resized = image::imageops::resize(image, side, side, FilterType::Triangle);
    let side = side as usize;
    let array = Array4::from_shape_fn((1, 3, side, side), |(_, c, y, x)| {
        let value = f32::from(resized.get_pixel(x as u32, y as u32)[order[c]]);
        (value - mean[c]) / std[c]
    });
    array.into()
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
        let t = tensor(&img, 2, [2, 1, 0], [0.0; 3], [1.0; 3]);
        assert_eq!(t.shape(), &[1, 3, 2, 2]);
        let v = t.to_plain_array_view::<f32>().unwrap();
        assert_eq!(
            (v[[0, 0, 0, 0]], v[[0, 1, 1, 1]], v[[0, 2, 0, 1]]),
            (30.0, 20.0, 10.0)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"\x89PNG\r\n\x1a\nnot really", BUDGET).is_err());
        assert!(decode(b"hello", BUDGET).is_err());
    }
}

//! How well the perceptual hash finds the same photo changed, and keeps different photos
//! apart (`scripts/bench near-duplicates`; run in release).
//!
//! Every photo of the corpus (`target/photos/corpus`, from `scripts/fetch-photos`) is changed as
//! people's tools change photos: re-encoded as JPEG at quality 50, 65, 80 and 95; resized to
//! 0.5×, 0.75×, 1.5× and 2×; its metadata stripped; cropped by 2 % and 5 % (a corner, and the
//! centre kept); brightened and darkened by 10 %. Each changed photo is encoded as an upload
//! would be and hashed the way the thumbnail stage hashes (decoded upright to at most 320 px),
//! then compared with its original: a near-duplicate pair. Every pair of two different photos
//! of the corpus is a distinct pair. For each threshold the report gives recall (near-duplicate
//! pairs within it), the distinct pairs within it, and precision (of all pairs within it, the
//! share that are near-duplicates).
use std::{io::Cursor, path::PathBuf, time::Instant};

use image::{codecs::jpeg::JpegEncoder, DynamicImage, ImageFormat, RgbImage};
use imgflow_imaging::{
    decode_scaled,
    phash::{found_by, perceptual_hash, PerceptualHash},
    DEFAULT_MAX_DECODED_BYTES,
};

const THUMBNAIL_SIDE: u32 = 320;

/// Whether the index finds the pair, whichever of the two is hashed second.
fn shares_band(a: &PerceptualHash, b: &PerceptualHash) -> bool {
    found_by(a, b) || found_by(b, a)
}

fn hash_upload(bytes: &[u8]) -> Option<PerceptualHash> {
    let image = decode_scaled(bytes, THUMBNAIL_SIDE, DEFAULT_MAX_DECODED_BYTES).ok()?;
    perceptual_hash(&image).ok()
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .unwrap();
    out
}

/// The JPEG without its APP1..APP15 segments (EXIF, XMP, ICC): what "strip metadata" tools do.
fn stripped(bytes: &[u8]) -> Vec<u8> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return bytes.to_vec();
    }
    let mut out = bytes[..2].to_vec();
    let mut at = 2;
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        if marker == 0xDA {
            break;
        }
        if !(0xE1..=0xEF).contains(&marker) {
            out.extend_from_slice(&bytes[at..at + 2 + length]);
        }
        at += 2 + length;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

fn cropped(image: &RgbImage, share: f64, centre: bool) -> RgbImage {
    let (w, h) = image.dimensions();
    let (cw, ch) = ((w as f64 * share) as u32, (h as f64 * share) as u32);
    let (x, y) = if centre { (cw / 2, ch / 2) } else { (cw, ch) };
    image::imageops::crop_imm(image, x, y, w - cw, h - ch).to_image()
}

fn brightened(image: &RgbImage, factor: f32) -> RgbImage {
    let mut out = image.clone();
    for p in out.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (f32::from(*c) * factor).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn resized(image: &RgbImage, scale: f64) -> RgbImage {
    let (w, h) = image.dimensions();
    image::imageops::resize(
        image,
        ((w as f64 * scale) as u32).max(1),
        ((h as f64 * scale) as u32).max(1),
        image::imageops::FilterType::CatmullRom,
    )
}

/// The changed uploads of one photo, named.
fn changes(bytes: &[u8], image: &RgbImage) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for quality in [50, 65, 80, 95] {
        out.push((format!("jpeg q{quality}"), jpeg(image, quality)));
    }
    for scale in [0.5, 0.75, 1.5, 2.0] {
        out.push((format!("resize {scale}x"), png(&resized(image, scale))));
    }
    out.push(("metadata stripped".into(), stripped(bytes)));
    for share in [0.02, 0.05] {
        out.push((
            format!("crop {:.0}% corner", share * 100.0),
            png(&cropped(image, share, false)),
        ));
        out.push((
            format!("crop {:.0}% centre", share * 100.0),
            png(&cropped(image, share, true)),
        ));
    }
    for factor in [0.9, 1.1] {
        out.push((
            format!("brightness {:+.0}%", (factor - 1.0) * 100.0),
            png(&brightened(image, factor)),
        ));
    }
    out
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/photos/corpus"));
    let mut photos: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-photos", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let synthetic = ["chessboard", "skimage-color."]
                .iter()
                .any(|s| name.contains(s));
            (!name.starts_with('.') && !synthetic)
                .then(|| Some((name, std::fs::read(&path).ok()?)))?
        })
        .collect();
    photos.sort();

    let mut originals = Vec::new();
    let mut near = Vec::new();
    let mut featureless = Vec::new();
    let mut per_change: std::collections::BTreeMap<String, Vec<(u32, bool)>> = Default::default();
    for (name, bytes) in &photos {
        let Ok(full) = image::load_from_memory(bytes).map(DynamicImage::into_rgb8) else {
            continue;
        };
        let Some(original) = hash_upload(bytes) else {
            featureless.push(name.clone());
            continue;
        };
        originals.push((name.clone(), original));
        for (change, upload) in changes(bytes, &full) {
            if let Some(hash) = hash_upload(&upload) {
                let d = original.distance(&hash);
                near.push((
                    name.clone(),
                    change.clone(),
                    d,
                    shares_band(&original, &hash),
                ));
                per_change
                    .entry(change)
                    .or_default()
                    .push((d, shares_band(&original, &hash)));
            }
        }
    }
    let mut distinct = Vec::new();
    for (i, (a, ha)) in originals.iter().enumerate() {
        for (b, hb) in &originals[i + 1..] {
            distinct.push((a.clone(), b.clone(), ha.distance(hb), shares_band(ha, hb)));
        }
    }

    // Hashing cost: the thumbnail stage's decoded image in, the hash out.
    let samples: Vec<RgbImage> = photos
        .iter()
        .filter_map(|(_, b)| decode_scaled(b, THUMBNAIL_SIDE, DEFAULT_MAX_DECODED_BYTES).ok())
        .collect();
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        for image in &samples {
            let _ = std::hint::black_box(perceptual_hash(image));
        }
    }
    let per_hash = started.elapsed().as_secs_f64() * 1e3 / (rounds * samples.len()) as f64;
    let full: Vec<RgbImage> = photos
        .iter()
        .filter_map(|(_, b)| decode_scaled(b, 100_000, DEFAULT_MAX_DECODED_BYTES).ok())
        .collect();
    let started = Instant::now();
    for image in &full {
        let _ = std::hint::black_box(perceptual_hash(image));
    }
    let per_full = started.elapsed().as_secs_f64() * 1e3 / full.len() as f64;

    println!(
        "corpus: {} photos ({} hashed, featureless: {:?}); {} near-duplicate pairs, {} distinct pairs",
        photos.len(),
        originals.len(),
        featureless,
        near.len(),
        distinct.len()
    );
    println!(
        "hashing: {per_hash:.3} ms per image from the thumbnail stage's decoded image (≤ 320 px), \
         {per_full:.2} ms from a full-size one"
    );
    println!("\nper change: distance median / max, and the share sharing a band");
    for (change, pairs) in per_change {
        let mut d: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        d.sort();
        let banded = pairs.iter().filter(|p| p.1).count() as f64 / pairs.len() as f64;
        println!(
            "  {change:<20} {:>3} / {:>3}   {banded:.2}",
            d[d.len() / 2],
            d[d.len() - 1]
        );
    }
    if std::env::var_os("NEAR_DEBUG").is_some() {
        let mut worst: std::collections::BTreeMap<&str, u32> = Default::default();
        for (name, change, d, _) in &near {
            if !change.starts_with("crop") {
                let w = worst.entry(name.as_str()).or_default();
                *w = (*w).max(*d);
            }
        }
        println!("worst non-crop distance per photo: {worst:?}");
    }
    distinct.sort_by_key(|p| p.2);
    println!("\nclosest distinct pairs:");
    for (a, b, d, _) in distinct.iter().take(5) {
        println!("  {d:>3}  {a} / {b}");
    }
    let banded = near.iter().filter(|p| p.3).count();
    let distinct_banded = distinct.iter().filter(|p| p.3).count();
    println!(
        "\nfound through the index (a band equal, or a quarter band one bit off): {banded} of {} near-duplicate pairs \
         ({:.3}), {distinct_banded} of {} distinct pairs",
        near.len(),
        banded as f64 / near.len() as f64,
        distinct.len()
    );
    println!("\nthreshold  recall  found  distinct-within  precision");
    for t in 0..=32 {
        let tp = near.iter().filter(|p| p.2 <= t).count();
        let found = near.iter().filter(|p| p.2 <= t && p.3).count();
        let fp = distinct.iter().filter(|p| p.2 <= t).count();
        println!(
            "{t:>9}  {:>6.3}  {:>5.3}  {fp:>15}  {:>9.3}",
            tp as f64 / near.len() as f64,
            found as f64 / near.len() as f64,
            if tp + fp == 0 {
                1.0
            } else {
                tp as f64 / (tp + fp) as f64
            }
        );
    }
}

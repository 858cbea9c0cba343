//! Peak memory of decoding an interlaced PNG at exactly the decode budget, in a process of its
//! own so the peak is this test's: a 10,000 × 10,000 RGBA8 Adam7 PNG (400 MB decoded, counted
//! at exactly the 400 MB budget, a few hundred KB on disk), two decoded at once, as two
//! thumbnail or label workers' concurrent messages would.
use std::io::Write;

use imgflow_imaging::{decode_scaled, DEFAULT_MAX_DECODED_BYTES};

const SIDE: u32 = 10_000;

/// VmHWM: the process's peak resident memory, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A single-colour RGBA8 Adam7 PNG, its scanlines deflated as they are made.
fn interlaced_bomb() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&SIDE.to_be_bytes());
    header.extend_from_slice(&SIDE.to_be_bytes());
    header.extend_from_slice(&[8, 6, 0, 0, 1]);
    chunk(&mut out, b"IHDR", &header);
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let passes = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    for (x0, y0, dx, dy) in passes {
        let samples = (SIDE - x0).div_ceil(dx) as usize;
        let mut line = vec![0u8];
        line.extend([0x40u8, 0x80, 0xC0, 0xFF].repeat(samples));
        for _ in 0..(SIDE - y0).div_ceil(dy) {
            deflate.write_all(&line).unwrap();
        }
    }
    chunk(&mut out, b"IDAT", &deflate.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn two_interlaced_pngs_at_the_budget_decode_at_once_in_little_memory() {
    let bomb = interlaced_bomb();
    assert!(bomb.len() < 2_000_000, "{} bytes", bomb.len());
    let before = peak_rss();
    std::thread::scope(|scope| {
        let decodes: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| decode_scaled(&bomb, 832, DEFAULT_MAX_DECODED_BYTES)))
            .collect();
        for decode in decodes {
            let image = decode.join().unwrap().expect("decodes within the budget");
            assert_eq!(image.width(), 832);
            assert_eq!(image.get_pixel(0, 0).0, [0x40, 0x80, 0xC0]);
        }
    });
    let grown = peak_rss().saturating_sub(before);
    println!(
        "two 10,000² RGBA8 interlaced PNGs ({} KB each) decoded at once: peak RSS grew {:.1} MB",
        bomb.len() / 1024,
        grown as f64 / 1e6
    );
    assert!(grown < 100 * 1024 * 1024, "peak RSS grew {grown} bytes");
}

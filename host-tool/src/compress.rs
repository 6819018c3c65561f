//! Block compressors, independent of the filesystem that stores the blocks.
//!
//! Two uses:
//! - **fixed input** ([`Compressor::compress`]): this whole block, as small
//!   as it gets (squashfs: a data, fragment or metadata block);
//! - **fixed output** ([`Compressor::compress_to_fit`]): as much of the input
//!   as fits in N bytes (EROFS: a physical cluster of N bytes).
//!
//! Every encoder here is single-threaded per call and deterministic: the same
//! input and settings give the same bytes (the images are reproducible).

use std::ffi::{c_char, c_int, c_void};

use anyhow::{anyhow, bail, ensure, Result};
use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};

/// The algorithms, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Algorithm {
    /// xz (LZMA2), the smallest; squashfs.
    #[default]
    Xz,
    /// zstd frames; squashfs (EROFS from Linux 6.10).
    Zstd,
    /// LZ4, the fast encoder; squashfs and EROFS.
    Lz4,
    /// LZ4 written by the high-compression encoder (the same format).
    Lz4hc,
    /// microLZMA, EROFS' LZMA; compresses to a destination size only.
    #[value(skip)]
    MicroLzma,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Xz => "xz",
            Algorithm::Zstd => "zstd",
            Algorithm::Lz4 => "lz4",
            Algorithm::Lz4hc => "lz4hc",
            Algorithm::MicroLzma => "lzma",
        }
    }

    /// The level used when none is given, and the range allowed.
    fn levels(self) -> (u32, std::ops::RangeInclusive<u32>) {
        match self {
            // liblzma presets; 6 is docs/design.md's measured choice.
            Algorithm::Xz | Algorithm::MicroLzma => (6, 0..=9),
            // Packing is done once per kernel: the strongest level that
            // still packs the 6.12 headers in seconds.
            Algorithm::Zstd => (19, 1..=22),
            // The fast encoder has no levels.
            Algorithm::Lz4 => (0, 0..=0),
            Algorithm::Lz4hc => (LZ4HC_CLEVEL_MAX, 1..=LZ4HC_CLEVEL_MAX),
        }
    }
}

/// `LZ4HC_CLEVEL_MAX` (lz4hc.h).
const LZ4HC_CLEVEL_MAX: u32 = 12;

/// One compressor with its settings, for every block of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressor {
    pub algorithm: Algorithm,
    /// xz/microLZMA preset (with `PRESET_EXTREME` if asked), zstd or LZ4HC level.
    pub level: u32,
    /// LZMA dictionary size: the block size, so the kernel's decoder (one
    /// block's dictionary per CPU) accepts every block.
    pub dict_size: u32,
}

impl Compressor {
    /// `level` is checked against the algorithm's range; `None` is its default.
    pub fn new(algorithm: Algorithm, level: Option<u32>, block_size: u32) -> Result<Compressor> {
        let (default, range) = algorithm.levels();
        let level = match level {
            None => default,
            Some(l) => {
                let plain = l & !liblzma::stream::PRESET_EXTREME;
                let extreme_ok = matches!(algorithm, Algorithm::Xz | Algorithm::MicroLzma) || plain == l;
                ensure!(
                    range.contains(&plain) && extreme_ok && *range.end() > 0,
                    "{} has {}, not {l}",
                    algorithm.name(),
                    if *range.end() == 0 {
                        "no levels".to_string()
                    } else {
                        format!("levels {} to {}", range.start(), range.end())
                    }
                );
                l
            }
        };
        Ok(Compressor { algorithm, level, dict_size: block_size })
    }

    /// Compress all of `input` into one independently decompressible unit:
    /// an xz stream, a zstd frame, a raw LZ4 block.
    pub fn compress(&self, input: &[u8]) -> Result<Vec<u8>> {
        match self.algorithm {
            Algorithm::Xz => xz(input, self.level, self.dict_size),
            Algorithm::Zstd => {
                zstd::bulk::compress(input, self.level as i32).map_err(|e| anyhow!("zstd: {e}"))
            }
            Algorithm::Lz4 | Algorithm::Lz4hc => lz4(input, self.algorithm, self.level),
            Algorithm::MicroLzma => {
                bail!("microLZMA compresses to a destination size only (compress_to_fit)")
            }
        }
    }

    /// Compress as much of `input` as fits in `capacity` bytes; returns the
    /// input bytes consumed and the output. For LZ4 (EROFS' lz4/lz4hc).
    pub fn compress_to_fit(&self, input: &[u8], capacity: usize) -> Result<(usize, Vec<u8>)> {
        match self.algorithm {
            Algorithm::Lz4 | Algorithm::Lz4hc => lz4_to_fit(input, capacity, self.algorithm, self.level),
            // Not built yet: EROFS' microLZMA and zstd clusters (issue 21, item 2).
            Algorithm::MicroLzma | Algorithm::Zstd => {
                bail!("compressing to a destination size is not implemented for {}", self.algorithm.name())
            }
            Algorithm::Xz => bail!("xz has no fixed-output use (EROFS stores LZMA as microLZMA)"),
        }
    }
}

/// One xz stream the kernel's decoder accepts: LZMA2 only (BCJ gains
/// nothing on headers), CRC32 check (CRC64 is refused).
fn xz(input: &[u8], preset: u32, dict_size: u32) -> Result<Vec<u8>> {
    let err = |e: liblzma::stream::Error| anyhow!("xz: {e}");
    let mut opts = LzmaOptions::new_preset(preset).map_err(err)?;
    opts.dict_size(dict_size);
    // Text has no 2^pb-byte structure; pb=0 saves ~0.5% on headers.
    opts.position_bits(0);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    let mut stream = Stream::new_stream_encoder(&filters, Check::Crc32).map_err(err)?;
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 128);
    loop {
        let consumed = stream.total_in() as usize;
        match stream.process_vec(&input[consumed..], &mut out, Action::Finish).map_err(err)? {
            Status::StreamEnd => return Ok(out),
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
}

// In the liblz4 that lz4-sys builds and links, not bound by it.
extern "C" {
    fn LZ4_compress_destSize(
        src: *const c_char,
        dst: *mut c_char,
        src_size: *mut c_int,
        dst_size: c_int,
    ) -> c_int;
    fn LZ4_sizeofStateHC() -> c_int;
    fn LZ4_compress_HC_destSize(
        state: *mut c_void,
        src: *const c_char,
        dst: *mut c_char,
        src_size: *mut c_int,
        dst_size: c_int,
        level: c_int,
    ) -> c_int;
}

fn lz4_len(n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| anyhow!("lz4: {n} bytes is more than one LZ4 call takes"))
}

/// A raw LZ4 block (no frame), as `LZ4_decompress_safe` reads it.
fn lz4(input: &[u8], algorithm: Algorithm, level: u32) -> Result<Vec<u8>> {
    let n = lz4_len(input.len())?;
    // SAFETY: pure function of its argument.
    let bound = unsafe { lz4_sys::LZ4_compressBound(n) };
    ensure!(bound > 0, "lz4: input of {n} bytes too large");
    let mut out = vec![0u8; bound as usize];
    let src = input.as_ptr().cast::<c_char>();
    let dst = out.as_mut_ptr().cast::<c_char>();
    // SAFETY: `src` is valid for `n` bytes and `dst` for `bound` bytes, the
    // most LZ4 writes for `n` input bytes; neither is kept after the call.
    let written = unsafe {
        match algorithm {
            Algorithm::Lz4hc => lz4_sys::LZ4_compress_HC(src, dst, n, bound, level as c_int),
            _ => lz4_sys::LZ4_compress_default(src, dst, n, bound),
        }
    };
    ensure!(written > 0 || input.is_empty(), "lz4: compression failed");
    out.truncate(written.max(0) as usize);
    Ok(out)
}

fn lz4_to_fit(input: &[u8], capacity: usize, algorithm: Algorithm, level: u32) -> Result<(usize, Vec<u8>)> {
    let mut consumed = lz4_len(input.len())?;
    let cap = lz4_len(capacity)?;
    let mut out = vec![0u8; capacity];
    let src = input.as_ptr().cast::<c_char>();
    let dst = out.as_mut_ptr().cast::<c_char>();
    let written = match algorithm {
        Algorithm::Lz4hc => {
            // SAFETY: pure function.
            let words = unsafe { LZ4_sizeofStateHC() } as usize / 8 + 1;
            // u64s: the state must be pointer-aligned.
            let mut state = vec![0u64; words];
            // SAFETY: `state` is at least LZ4_sizeofStateHC() bytes and
            // aligned, `src` valid for `consumed` bytes, `dst` for `cap`;
            // LZ4 lowers `consumed` to what it read. Nothing is kept.
            unsafe {
                LZ4_compress_HC_destSize(
                    state.as_mut_ptr().cast(),
                    src,
                    dst,
                    &mut consumed,
                    cap,
                    level as c_int,
                )
            }
        }
        // SAFETY: as above, without the state (LZ4 keeps its own on the stack).
        _ => unsafe { LZ4_compress_destSize(src, dst, &mut consumed, cap) },
    };
    ensure!(written > 0 || input.is_empty(), "lz4: compression to {capacity} bytes failed");
    out.truncate(written.max(0) as usize);
    Ok((consumed as usize, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        b"#include <linux/types.h>\nstruct x { int a; };\n".repeat(500)
    }

    #[test]
    fn xz_blocks_are_streams_with_crc32_and_block_sized_dictionary() {
        let c = Compressor::new(Algorithm::Xz, None, 131072).unwrap();
        let data = sample();
        let out = c.compress(&data).unwrap();
        assert!(out.len() < data.len() / 10);
        // Stream header: magic, flags 0x00 0x01 (CRC32).
        assert_eq!(&out[..6], b"\xfd7zXZ\0");
        assert_eq!(&out[6..8], &[0, 1]);
        let mut back = Vec::new();
        liblzma::read::XzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn zstd_and_lz4_round_trip_with_independent_decoders() {
        let data = sample();
        let z = Compressor::new(Algorithm::Zstd, None, 131072).unwrap().compress(&data).unwrap();
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
        assert_eq!(zstd::bulk::decompress(&z, data.len()).unwrap(), data);
        for alg in [Algorithm::Lz4, Algorithm::Lz4hc] {
            let c = Compressor::new(alg, None, 131072).unwrap().compress(&data).unwrap();
            // lz4_flex (backhand's reader) decodes raw blocks as the kernel does.
            assert_eq!(lz4_flex::block::decompress(&c, data.len()).unwrap(), data, "{alg:?}");
        }
    }

    #[test]
    fn lz4_to_fit_stops_at_the_capacity() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for alg in [Algorithm::Lz4, Algorithm::Lz4hc] {
            let c = Compressor::new(alg, None, 65536).unwrap();
            let (used, out) = c.compress_to_fit(&data, 4096).unwrap();
            assert!(out.len() <= 4096 && used > 0 && used < data.len(), "{alg:?}: {used} {}", out.len());
            assert_eq!(lz4_flex::block::decompress(&out, used).unwrap(), &data[..used], "{alg:?}");
        }
        let e = Compressor::new(Algorithm::Xz, None, 65536).unwrap().compress_to_fit(&data, 4096);
        assert!(e.unwrap_err().to_string().contains("no fixed-output"));
    }

    #[test]
    fn levels_are_checked() {
        assert_eq!(Compressor::new(Algorithm::Zstd, Some(22), 4096).unwrap().level, 22);
        let e = |a, l| Compressor::new(a, Some(l), 4096).unwrap_err().to_string();
        assert_eq!(e(Algorithm::Zstd, 23), "zstd has levels 1 to 22, not 23");
        assert_eq!(e(Algorithm::Lz4hc, 0), "lz4hc has levels 1 to 12, not 0");
        assert_eq!(e(Algorithm::Lz4, 1), "lz4 has no levels, not 1");
        assert!(Compressor::new(Algorithm::Xz, Some(9 | liblzma::stream::PRESET_EXTREME), 4096).is_ok());
        assert!(Compressor::new(Algorithm::Zstd, Some(9 | liblzma::stream::PRESET_EXTREME), 4096).is_err());
    }
}

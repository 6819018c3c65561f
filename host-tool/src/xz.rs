//! Per-block xz as the kernel's squashfs reads it.

use anyhow::{anyhow, Result};
use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};

use crate::format::COMPRESSOR_XZ;
use crate::squashfs::BlockCompressor;

/// xz settings for every block of one image.
#[derive(Debug, Clone, Copy)]
pub struct Xz {
    /// liblzma preset, optionally with `PRESET_EXTREME`.
    pub preset: u32,
    /// The LZMA2 dictionary: the block size (see [`Xz::for_block_size`]).
    pub dict_size: u32,
}

impl Xz {
    /// The dictionary is the block size: a power of two, as the kernel
    /// requires once compression options are written, and never larger than
    /// the block the decoder preallocates for.
    pub fn for_block_size(block_size: u32, preset: u32) -> Xz {
        Xz { preset, dict_size: block_size }
    }
}

impl BlockCompressor for Xz {
    fn id(&self) -> u16 {
        COMPRESSOR_XZ
    }

    /// `struct squashfs_xz_comp_opts`: dictionary size, no BCJ filters.
    fn options(&self) -> Option<Vec<u8>> {
        let mut o = self.dict_size.to_le_bytes().to_vec();
        o.extend_from_slice(&0u32.to_le_bytes());
        Some(o)
    }

    /// One xz stream the kernel's decoder accepts: LZMA2 only (BCJ gains
    /// nothing on headers), CRC32 check (CRC64 is refused).
    fn compress(&self, input: &[u8]) -> Result<Vec<u8>> {
        let err = |e: liblzma::stream::Error| anyhow!("xz: {e}");
        let mut opts = LzmaOptions::new_preset(self.preset).map_err(err)?;
        opts.dict_size(self.dict_size);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn blocks_are_xz_streams_with_crc32_and_block_sized_dictionary() {
        let xz = Xz::for_block_size(131072, 6);
        let data: Vec<u8> = b"#include <linux/types.h>\nstruct x { int a; };\n".repeat(500);
        let c = xz.compress(&data).unwrap();
        assert!(c.len() < data.len() / 10);
        // Stream header: magic, flags 0x00 0x01 (CRC32).
        assert_eq!(&c[..6], b"\xfd7zXZ\0");
        assert_eq!(&c[6..8], &[0, 1]);
        let mut back = Vec::new();
        liblzma::read::XzDecoder::new(&c[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(xz.options().unwrap(), [0, 0, 2, 0, 0, 0, 0, 0]);
    }
}
